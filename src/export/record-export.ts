import { AppError } from "../errors";
import { rawTarget } from "../fhir/raw-target";
import { smallBody } from "../fhir/required-parameters";
import type { FhirReader, FhirTarget } from "../pages/read-record";
import { type ExportClock, Pacer, requestedWaitMs } from "./pacing";
import type { ExportPlan, ExportSearch } from "./searches";

export type Json = Record<string, unknown>;

/** Searches read at once: enough to keep athena's answers coming, few enough to stay polite. */
const DEFAULT_CONCURRENCY = 3;
/** Retries of a page after athena failed (5xx, timeout, unreachable), each after a pause that grows. */
const TRANSIENT_RETRIES = 2;
const TRANSIENT_PAUSE_MS = 1_000;
/** Pages followed per search at most (a million resources at 100 a page): a guard against endless paging. */
const MAX_PAGES_PER_SEARCH = 10_000;

/** One page of a search as the export sees it. */
type PageResult =
	| { kind: "page"; resources: Json[]; next: FhirTarget | undefined }
	/** The server refused this search (or the rest of it): recorded, and the export goes on. */
	| { kind: "refused"; code: string; text: string }
	/** Nothing more can be read (access ended, athena down, out of time): the export ends here. */
	| { kind: "stop"; code: string; text: string };

export interface RecordExportOptions {
	read: FhirReader;
	patient: string;
	/** The Patient resource, already read by the caller (it names the file). */
	patientResource: Json | undefined;
	plan: ExportPlan;
	/** The server's FHIR base without a trailing slash: next links must lie under it. */
	fhirBaseUrl: string;
	clock: ExportClock;
	/** Epoch ms after which no more waiting or reading is done. */
	deadline: number;
	concurrency?: number;
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

/** The text of athena's OperationOutcome (`details.text` or `diagnostics`), if the body is one. */
function outcomeText(body: string | undefined): string | undefined {
	try {
		const outcome = JSON.parse(body ?? "") as {
			issue?: Array<{ details?: { text?: unknown }; diagnostics?: unknown }>;
		};
		const texts = (outcome.issue ?? []).map((i) => i.details?.text ?? i.diagnostics);
		const found = texts.filter((t): t is string => typeof t === "string");
		return found.length > 0 ? found.join(" ").slice(0, 500) : undefined;
	} catch {
		return undefined;
	}
}

/** The resources of a searchset page and its next link, if the body is one. */
function searchsetPage(body: unknown): { resources: Json[]; next: string | undefined } | undefined {
	if (typeof body !== "object" || body === null || (body as Json).resourceType !== "Bundle") return undefined;
	const { entry, link } = body as { entry?: unknown; link?: unknown };
	const resources = (Array.isArray(entry) ? entry : []).flatMap((e) => {
		const resource = (e as { resource?: unknown } | null)?.resource as Json | undefined;
		const usable = typeof resource?.resourceType === "string" && typeof resource.id === "string";
		// athena's own warnings ride along as outcome entries; the file's outcomes are the export's.
		return usable && resource.resourceType !== "OperationOutcome" ? [resource] : [];
	});
	const next = (Array.isArray(link) ? link : []).find((l) => (l as Json)?.relation === "next") as Json | undefined;
	return { resources, next: typeof next?.url === "string" ? next.url : undefined };
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
 * Reads one page, politely: waits out athena's rate limits, retries a
 * failing athena twice, and turns every answer into a PageResult (it never
 * throws, so a page read ahead and never awaited cannot fail unheard).
 */
function pageFetcher(options: RecordExportOptions, pacer: Pacer, type: string, ended: () => boolean) {
	const basePath = new URL(options.fhirBaseUrl).pathname;
	const stop = (code: string, text: string): PageResult => ({ kind: "stop", code, text });
	return async function fetchPage(target: FhirTarget): Promise<PageResult> {
		for (let failures = 0; ; ) {
			if (!(await pacer.ready())) return stop("throttled", "The export ran out of time waiting for athenahealth.");
			// A page read ahead for an export that has ended (stopped, or its client gone) is not asked for.
			if (ended()) return stop("exception", "The export had ended.");
			let result: Awaited<ReturnType<FhirReader>>;
			try {
				result = await options.read(target);
			} catch (error) {
				if (!(error instanceof AppError)) return stop("exception", "The export failed on our side.");
				return {
					kind: "refused",
					code: "not-supported",
					text: `athenahealth sent a ${type} page link this app does not follow.`,
				};
			}
			let transient: string;
			if (result.kind === "state") {
				const { state } = result;
				if (state.status === "revoked") return stop("security", "Access to the record was revoked during the export.");
				if (state.status === "signed_out") return stop("security", "The session ended during the export.");
				if (state.status === "unavailable") {
					pacer.pause((state.retryAfterSeconds ?? 1) * 1_000);
					continue;
				}
				transient = state.status === "timeout" ? "did not answer in time" : "could not be reached";
			} else {
				const { response } = result;
				pacer.noteAnswer(response.headers);
				if (response.ok) {
					const page = searchsetPage(await response.json().catch(() => undefined));
					if (!page)
						return { kind: "refused", code: "exception", text: `athenahealth sent an unreadable ${type} page.` };
					const next = page.next?.startsWith(`${options.fhirBaseUrl}/`) ? rawTarget(page.next, basePath) : undefined;
					if (page.next !== undefined && next === undefined) {
						return {
							kind: "refused",
							code: "not-supported",
							text: `athenahealth's next ${type} page is outside its FHIR base.`,
						};
					}
					return { kind: "page", resources: page.resources, next };
				}
				if (response.status === 429) {
					await response.body?.cancel();
					pacer.pause(requestedWaitMs(response.headers, options.clock.now()));
					continue;
				}
				if (response.status === 401) {
					await response.body?.cancel();
					return stop("security", "athenahealth refused the refreshed access token.");
				}
				if (response.status >= 400 && response.status < 500) {
					const said = outcomeText(response.body ? await smallBody(response.body) : undefined);
					const text = `athenahealth refused the ${type} search (status ${response.status})${said ? `: ${said}` : "."}`;
					return { kind: "refused", code: response.status === 403 ? "forbidden" : "processing", text };
				}
				await response.body?.cancel();
				transient = `answered ${response.status}`;
			}
			failures++;
			if (failures > TRANSIENT_RETRIES) return stop("transient", `athenahealth ${transient}; the export stopped.`);
			pacer.pause(TRANSIENT_PAUSE_MS * failures);
		}
	};
}

/**
 * A search's pages, one read ahead: the next page is asked for as soon as a
 * page is handed out, so athena works while the previous page is written.
 */
function pager(fetchPage: (target: FhirTarget) => Promise<PageResult>, search: ExportSearch) {
	const key = (t: FhirTarget) => `${t.path}?${t.query}`;
	let pending: Promise<PageResult> | undefined = fetchPage({ path: `/${search.type}`, query: search.query });
	let current = key({ path: `/${search.type}`, query: search.query });
	let pages = 0;
	return async function nextPage(): Promise<PageResult | undefined> {
		if (!pending) return undefined;
		const page = await pending;
		pending = undefined;
		if (page.kind !== "page" || !page.next) return page;
		pages++;
		const following = key(page.next);
		if (following === current || pages >= MAX_PAGES_PER_SEARCH) {
			const text = `athenahealth kept sending ${search.type} pages; the export stopped following them after ${pages}.`;
			const refusal: PageResult = { kind: "refused", code: "too-costly", text };
			pending = Promise.resolve(refusal);
		} else {
			current = following;
			pending = fetchPage(page.next);
		}
		return page;
	};
}

/**
 * Every search's pages, search after search: `concurrency` searches are read
 * at once (each one page ahead), the next one starting as one finishes. After
 * the consumer stops (a stop page, or its client gone), no page that was read
 * ahead asks athena for more.
 */
async function* pagesInOrder(
	options: RecordExportOptions,
	pacer: Pacer,
): AsyncGenerator<{ type: string; page: PageResult }> {
	const { searches } = options.plan;
	const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
	const pagers: Array<ReturnType<typeof pager> | undefined> = [];
	let ended = false;
	const startSearch = (index: number) => {
		const search = searches[index];
		if (search)
			pagers[index] = pager(
				pageFetcher(options, pacer, search.type, () => ended),
				search,
			);
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
		ended = true;
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
	const seen = new Set<string>();
	const count = (type: string) => tally.counts.set(type, (tally.counts.get(type) ?? 0) + 1);
	const isNew = (resource: Json) => {
		const id = `${resource.resourceType}/${resource.id}`;
		const other = referencedPatient(resource);
		if (seen.has(id) || (other !== undefined && other !== options.patient)) return false;
		seen.add(id);
		count(String(resource.resourceType));
		return true;
	};
	if (options.patientResource) {
		isNew(options.patientResource);
		yield [options.patientResource];
	} else if (options.plan.readsPatient) {
		tally.refused.push("Patient");
		yield [outcomeResource("error", "processing", "athenahealth did not provide the Patient resource.", "Patient")];
	}

	for await (const { type, page } of pagesInOrder(options, new Pacer(options.clock, options.deadline))) {
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
	yield [lastEntry(options.plan, tally)];
}

/** "Condition 43, Observation 491" */
function describeCounts(counts: Map<string, number>): string {
	return [...counts].map(([type, n]) => `${type} ${n}`).join(", ") || "nothing";
}

/** The file's last entry: complete (and what it holds), or ended early (and why). */
function lastEntry(plan: ExportPlan, tally: ExportTally): Json {
	const total = [...tally.counts.values()].reduce((a, b) => a + b, 0);
	const held = `${total} resources (${describeCounts(tally.counts)})`;
	if (tally.stopped) {
		const text = `Export incomplete: ${tally.stopped.text} This file holds only what was read before: ${held}.`;
		return outcomeResource("fatal", tally.stopped.code, text);
	}
	const refused = tally.refused.length > 0 ? ` athenahealth refused: ${tally.refused.join(", ")}.` : "";
	const notShared = plan.notShared.length > 0 ? ` Not shared with this app: ${plan.notShared.join(", ")}.` : "";
	return outcomeResource("information", "informational", `Export complete: ${held}.${refused}${notShared}`);
}
