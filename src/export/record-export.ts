import type { FhirReader } from "../pages/read-record";
import { type ExportClock, Pacer } from "./pacing";
import { type PageResult, pageFetcher, pager } from "./page-reader";
import type { ExportPlan } from "./searches";

export type Json = Record<string, unknown>;

/** The name the file's outcomes give the server when none is set: the environment's own athena. */
const ATHENA = "athenahealth";

/** Searches read at once: enough to keep athena's answers coming, few enough to stay polite. */
const DEFAULT_CONCURRENCY = 3;
export interface RecordExportOptions {
	read: FhirReader;
	patient: string;
	/** The Patient resource, already read by the caller (it names the file). */
	patientResource: Json | undefined;
	plan: ExportPlan;
	/** The server's FHIR base without a trailing slash: next links must lie under it. */
	fhirBaseUrl: string;
	clock: ExportClock;
	/** Who holds the record, as the file's outcomes name it; absent: athenahealth. */
	serverName?: string;
	/** Epoch ms after which no more waiting or reading is done. */
	deadline: number;
	concurrency?: number;
	/** Which record this is, for the last entry of a file of several ("the record at practice 80000"). */
	label?: string;
}

/** What a finished (or ended) export read, for its last entry and its log line. */
export interface ExportTally {
	counts: Map<string, number>;
	refused: string[];
	stopped: { code: string; text: string } | undefined;
}

/** An OperationOutcome entry of the file: what was refused, or how the export ended. */
export function outcomeResource(
	severity: "fatal" | "error" | "information",
	code: string,
	text: string,
	expression?: string,
): Json {
	return {
		resourceType: "OperationOutcome",
		issue: [{ severity, code, details: { text }, ...(expression ? { expression: [expression] } : {}) }],
	};
}

/** The patient a resource's `subject` or `patient` reference names, if it names one. */
function referencedPatient(resource: Json): string | undefined {
	for (const field of ["subject", "patient"]) {
		const reference = (resource[field] as { reference?: unknown } | undefined)?.reference;
		if (typeof reference === "string" && reference.startsWith("Patient/")) return reference.slice("Patient/".length);
	}
	return undefined;
}

/**
 * Every search's pages, search after search: `concurrency` searches are read
 * at once (each one page ahead), the next one starting as one finishes.
 * After the consumer stops (a stop page, or its client gone), reads under way
 * are given up and no page that was read ahead asks athena for more.
 */
async function* pagesInOrder(
	options: RecordExportOptions & { serverName: string },
	pacer: Pacer,
): AsyncGenerator<{ type: string; page: PageResult }> {
	const { searches } = options.plan;
	const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
	const pagers: Array<ReturnType<typeof pager> | undefined> = [];
	const ended = new AbortController();
	const startSearch = (index: number) => {
		const search = searches[index];
		if (search)
			pagers[index] = pager(pageFetcher(options, pacer, search.type, ended.signal), search, options.serverName);
	};
	for (let i = 0; i < concurrency; i++) startSearch(i);
	try {
		for (const [index, search] of searches.entries()) {
			const nextPage = pagers[index];
			for (let page = await nextPage?.(); page; page = await nextPage?.()) yield { type: search.type, page };
			pagers[index] = undefined;
			startSearch(index + concurrency);
		}
	} finally {
		// Reads still under way stop, and no page read ahead asks athena for more.
		ended.abort();
	}
}

/**
 * The patient's record, page by page, each resource once: the Patient, then
 * every page of every search in the plan, then an OperationOutcome that says
 * whether the export is complete. A refused search becomes an OperationOutcome
 * entry and the rest goes on; access ending, athena failing after retries or
 * the deadline passing ends it, and the last entry says so. Nothing is kept
 * but the ids written.
 *
 * @example
 * for await (const resources of recordExport(options, tally)) write(resources);
 */
export async function* recordExport(options: RecordExportOptions, tally: ExportTally): AsyncGenerator<Json[]> {
	// Ids written, per type: the one thing an export keeps (athena's own id strings, no copies).
	const written = new Map<string, Set<string>>();
	const server = options.serverName ?? ATHENA;
	const isNew = (resource: Json) => {
		const type = String(resource.resourceType);
		const id = String(resource.id);
		const other = referencedPatient(resource);
		const ids = written.get(type) ?? written.set(type, new Set()).get(type);
		if (!ids || ids.has(id) || (other !== undefined && other !== options.patient)) return false;
		ids.add(id);
		tally.counts.set(type, ids.size);
		return true;
	};
	if (options.patientResource) {
		isNew(options.patientResource);
		yield [options.patientResource];
	} else if (options.plan.readsPatient) {
		tally.refused.push("Patient");
		yield [outcomeResource("error", "processing", `${server} did not provide the Patient resource.`, "Patient")];
	}

	const pacer = new Pacer(options.clock, options.deadline);
	for await (const { type, page } of pagesInOrder({ ...options, serverName: server }, pacer)) {
		if (page.kind === "stop") {
			tally.stopped = { code: page.code, text: page.text };
			break;
		}
		if (page.kind === "refused") {
			tally.refused.push(type);
			yield [outcomeResource("error", page.code, page.text, type)];
			continue;
		}
		const fresh = page.resources.filter(isNew);
		if (fresh.length > 0) yield fresh;
	}
	yield [lastEntry(options.plan, tally, options.label, server)];
}

/** "Condition 43, Observation 491" */
function describeCounts(counts: Map<string, number>): string {
	return [...counts].map(([type, n]) => `${type} ${n}`).join(", ") || "nothing";
}

/** The file's last entry: complete (and what it holds), or ended early (and why). */
function lastEntry(plan: ExportPlan, tally: ExportTally, label: string | undefined, server: string): Json {
	const of = label ? ` of ${label}` : "";
	const total = [...tally.counts.values()].reduce((a, b) => a + b, 0);
	const held = `${total} resources (${describeCounts(tally.counts)})`;
	if (tally.stopped) {
		const text = `Export${of} incomplete: ${tally.stopped.text} This file holds only what was read before: ${held}.`;
		return outcomeResource("fatal", tally.stopped.code, text);
	}
	const refused = tally.refused.length > 0 ? ` ${server} refused: ${tally.refused.join(", ")}.` : "";
	const notShared = plan.notShared.length > 0 ? ` Not shared with this app: ${plan.notShared.join(", ")}.` : "";
	return outcomeResource("information", "informational", `Export${of} complete: ${held}.${refused}${notShared}`);
}
