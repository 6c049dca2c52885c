/*
 * The sandbox's clinical data: one synthetic chart per health record in
 * users.ts, generated in code (src/chart/) from a fixed seed, so every run
 * and every isolate serves identical data, and the bundle stays small. The
 * shape follows athena's recorded preview answers (shared/athena-observed.md);
 * the people and their values are invented, never copied from a record. A
 * chart may also have Observations made by index on demand (the large
 * record's), which are never held.
 */

import { buildChart, type Chart } from "./chart/build";
import { generatedObservations } from "./chart/generated";
import { chartProfile } from "./chart/people";
import { concatSequences, listSequence, type ResourceSequence } from "./chart/resource";
import { RECORDS } from "./users";

export { chartSharingGroupReference, practiceReference, practiceResources } from "./chart/practice";
export type { BinaryContent, FhirResource, ResourceSequence } from "./chart/resource";
export { listSequence } from "./chart/resource";

export interface PatientRecord extends Chart {
	patient: { id: string; practiceId: string };
	/** Observations made by index, searched after the chart's own (chart/generated.ts); none for most charts. */
	generatedObservations?: ResourceSequence;
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
	const chart: PatientRecord = {
		...buildChart(profile, plan),
		patient: { id: record.patient, practiceId: record.practice },
		...(plan.generatedObservations
			? { generatedObservations: generatedObservations(profile, plan.generatedObservations) }
			: {}),
	};
	charts.set(patientId, chart);
	return chart;
}

/**
 * The resources of one type in the patient's compartment, in search order:
 * the chart's own, then for Observation any generated ones.
 */
export function compartment(record: PatientRecord, type: string): ResourceSequence {
	const own = listSequence(record.byType.get(type) ?? []);
	return type === "Observation" && record.generatedObservations
		? concatSequences(own, record.generatedObservations)
		: own;
}

/** Every record's patient id, in users.ts order. */
export const patientIds = (): string[] => RECORDS.map((r) => r.patient);
