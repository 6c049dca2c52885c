/*
 * The sandbox's clinical data: one synthetic chart per health record in
 * users.ts, generated in code (src/chart/) from a fixed seed, so every run
 * and every isolate serves identical data, and the bundle stays small. The
 * shape follows athena's recorded preview answers (shared/athena-observed.md);
 * the people and their values are invented, never copied from a record.
 */

import { buildChart, type Chart } from "./chart/build";
import { chartProfile } from "./chart/people";
import { RECORDS } from "./users";

export { chartSharingGroupReference, practiceReference, practiceResources } from "./chart/practice";
export type { BinaryContent, FhirResource } from "./chart/resource";

export interface PatientRecord extends Chart {
	patient: { id: string; practiceId: string };
}

const charts = new Map<string, PatientRecord>();

/** The chart of one users.ts record, built on first use and kept for the isolate's life. */
export function patientRecord(patientId: string): PatientRecord | undefined {
	const cached = charts.get(patientId);
	if (cached) return cached;
	const index = RECORDS.findIndex((r) => r.patient === patientId);
	const record = RECORDS[index];
	if (!record) return undefined;
	const { profile, plan } = chartProfile(record, index);
	const chart = { ...buildChart(profile, plan), patient: { id: record.patient, practiceId: record.practice } };
	charts.set(patientId, chart);
	return chart;
}

/** Every record's patient id, in users.ts order. */
export const patientIds = (): string[] => RECORDS.map((r) => r.patient);
