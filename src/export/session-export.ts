import type { Read } from "../pages/read-record";
import type { ExportPage } from "./export-body";
import { type ExportTally, type Json, outcomeResource, type RecordExportOptions, recordExport } from "./record-export";

/** One connected record of the session, ready to export. */
export interface ExportPart {
	/** "the record at practice 80000": how the file names this record in its outcomes. */
	label: string;
	/** The connection's server FHIR base, and this worker's base for it (where its `fullUrl`s lie). */
	fhirBaseUrl: string;
	proxyBaseUrl: string;
	/** Revoked at its server: named in the file, not read. */
	revoked: boolean;
	/** Why the record could not be read at all just now (athena busy or down): named in the file, which is then incomplete. */
	unreadable?: string;
	/** Everything recordExport needs but the shared clock and deadline. */
	record: Omit<RecordExportOptions, "clock" | "deadline" | "label">;
	tally: ExportTally;
}

/** The Patient resource a read returned, if it is the patient's own. */
export function patientOf(read: Read, patient: string): Json | undefined {
	const body = read.ok ? (read.body as Json) : undefined;
	return body?.resourceType === "Patient" && body.id === patient ? body : undefined;
}

/** The file's last entry when it holds several records: complete only when every connected one is. */
function overallEntry(parts: ExportPart[]): Json {
	const incomplete = parts.filter((p) => p.tally.stopped);
	const revoked = parts.filter((p) => p.revoked);
	const exported = parts.length - revoked.length;
	const notes = revoked.length > 0 ? ` Not exported, access revoked: ${revoked.map((p) => p.label).join("; ")}.` : "";
	if (incomplete.length > 0) {
		const which = incomplete.map((p) => `${p.label} (${p.tally.stopped?.text})`).join("; ");
		return outcomeResource("fatal", "incomplete", `Export incomplete: ${which}.${notes}`);
	}
	return outcomeResource(
		"information",
		"informational",
		`Export complete: ${exported} of ${parts.length} records.${notes}`,
	);
}

/**
 * The session's records one after another, each exported whole
 * (recordExport: its Patient, its searches, its own last entry) with its own
 * ids and its own base, so every resource's `fullUrl` says which record it
 * came from and nothing of one record is taken for another's. A revoked
 * record is an OperationOutcome entry saying so. With several records the
 * file ends with an entry for all of them.
 *
 * @example
 * exportBody(sessionExport(parts, { clock, deadline }), writing);
 */
export async function* sessionExport(
	parts: ExportPart[],
	shared: Pick<RecordExportOptions, "clock" | "deadline">,
): AsyncGenerator<ExportPage> {
	const several = parts.length > 1;
	for (const part of parts) {
		const page = (resources: Json[]): ExportPage => ({
			resources,
			fhirBaseUrl: part.fhirBaseUrl,
			proxyBaseUrl: part.proxyBaseUrl,
		});
		if (part.revoked) {
			const text = `${part.label} was not exported: access to it was revoked. Connect it again to include it.`;
			yield page([outcomeResource("error", "security", text.charAt(0).toUpperCase() + text.slice(1))]);
			continue;
		}
		if (part.unreadable) {
			part.tally.stopped = { code: "transient", text: part.unreadable };
			yield page([outcomeResource("error", "transient", `${part.label} was not exported: ${part.unreadable}`)]);
			continue;
		}
		const options = { ...part.record, ...shared, ...(several ? { label: part.label } : {}) };
		for await (const resources of recordExport(options, part.tally)) yield page(resources);
	}
	const [first] = parts;
	if (several && first) {
		yield { resources: [overallEntry(parts)], fhirBaseUrl: first.fhirBaseUrl, proxyBaseUrl: first.proxyBaseUrl };
	}
}
