import { AppError } from "../errors";
import { rawTarget } from "../fhir/raw-target";
import { smallBody } from "../fhir/required-parameters";
import type { ReadState, UpstreamRead } from "../fhir/upstream-read";
import type { FhirReader, FhirTarget } from "../pages/read-record";
import { type ExportClock, Pacer, requestedWaitMs } from "./pacing";
import type { ExportPlan, ExportSearch } from "./searches";

export type Json = Record<string, unknown>;

/** Searches read at once: enough to keep athena's answers coming, few enough to stay polite. */
const DEFAULT_CONCURRENCY = 3;
/** Retries of a page after athena failed (5xx, timeout, unreachable), each after a pause that grows. */
const TRANSIENT_RETRIES = 2;
const TRANSIENT_PAUSE_MS = 1_000;
/** Pages of one search read before the file has written them: enough to keep athena busy, few enough to stay flat. */
const PAGES_AHEAD = 2;
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

/** What one answer means: a result to hand out, a wait before asking again, or a failure worth a retry. */
type Verdict = PageResult | { kind: "wait"; ms: number } | { kind: "failed"; what: string };

const stopped = (code: string, text: string): PageResult => ({ kind: "stop", code, text });
const BROKEN = Symbol("broken body");

function stateVerdict(state: ReadState): Verdict {
	switch (state.status) {
		case "revoked":
			return stopped("security", "Access to the record was revoked during the export.");
		case "signed_out":
			return stopped("security", "The session ended during the export.");
		case "unavailable":
			// Our token budget or the session's Durable Object: wait as it says.
			return { kind: "wait", ms: (state.retryAfterSeconds ?? 1) * 1_000 };
		case "timeout":
			return { kind: "failed", what: "did not answer in time" };
		default:
			return { kind: "failed", what: "could not be reached" };
	}
}

/** athena's answer to a page read, its body consumed. */
async function responseVerdict(
	response: Response,
	type: string,
	options: RecordExportOptions,
	basePath: string,
): Promise<Verdict> {
	if (response.ok) {
		const body = await response.json().catch(() => BROKEN);
		if (body === BROKEN) return { kind: "failed", what: "sent a page that broke off or was not JSON" };
		const page = searchsetPage(body);
		if (!page) return { kind: "refused", code: "exception", text: `athenahealth sent an unreadable ${type} page.` };
		const next = page.next?.startsWith(`${options.fhirBaseUrl}/`) ? rawTarget(page.next, basePath) : undefined;
		if (page.next !== undefined && next === undefined) {
			const text = `athenahealth's next ${type} page is outside its FHIR base.`;
			return { kind: "refused", code: "not-supported", text };
		}
		return { kind: "page", resources: page.resources, next };
	}
	if (response.status >= 400 && response.status < 500 && response.status !== 401 && response.status !== 429) {
		const said = outcomeText(response.body ? await smallBody(response.body) : undefined);
		const text = `athenahealth refused the ${type} search (status ${response.status})${said ? `: ${said}` : "."}`;
		return { kind: "refused", code: response.status === 403 ? "forbidden" : "processing", text };
	}
	await response.body?.cancel();
	if (response.status === 429) return { kind: "wait", ms: requestedWaitMs(response.headers, options.clock.now()) };
	// 401 after the reader's refreshes: athena refuses even a new token.
	if (response.status === 401) return stopped("security", "athenahealth refused the refreshed access token.");
	return { kind: "failed", what: `answered ${response.status}` };
}

/**
 * Reads one page, politely: waits out athena's rate limits, retries a
 * failing athena twice, and turns every answer into a PageResult (it never
 * throws, so a page read ahead and never awaited cannot fail unheard).
 */
function pageFetcher(options: RecordExportOptions, pacer: Pacer, type: string, ended: () => boolean) {
	const basePath = new URL(options.fhirBaseUrl).pathname;
	async function readOnce(target: FhirTarget): Promise<Verdict> {
		let result: UpstreamRead;
		try {
			result = await options.read(target);
		} catch (error) {
			if (!(error instanceof AppError)) return stopped("exception", "The export failed on our side.");
			return {
				kind: "refused",
				code: "not-supported",
				text: `athenahealth sent a ${type} page link this app does not follow.`,
			};
		}
		if (result.kind === "state") return stateVerdict(result.state);
		pacer.noteAnswer(result.response.headers);
		return responseVerdict(result.response, type, options, basePath);
	}
	return async function fetchPage(target: FhirTarget): Promise<PageResult> {
		for (let failures = 0; ; ) {
			if (!(await pacer.ready())) return stopped("throttled", "The export ran out of time waiting for athenahealth.");
			// A page read ahead for an export that has ended (stopped, or its client gone) is not asked for.
			if (ended()) return stopped("exception", "The export had ended.");
			const verdict = await readOnce(target);
			if (verdict.kind === "wait") {
				pacer.pause(verdict.ms);
				continue;
			}
			if (verdict.kind !== "failed") return verdict;
			failures++;
			if (failures > TRANSIENT_RETRIES)
				return stopped("transient", `athenahealth ${verdict.what}; the export stopped.`);
			pacer.pause(TRANSIENT_PAUSE_MS * failures);
		}
	};
}

/**
 * A search's pages, read ahead: as soon as a page arrives its next one is
 * asked for, up to PAGES_AHEAD pages waiting to be written, so athena's
 * paging never waits on the client downloading the file, and memory stays a
 * few pages per search. A next link that repeats the page, or paging past
 * MAX_PAGES_PER_SEARCH, ends the search with a refusal.
 */
function pager(fetchPage: (target: FhirTarget) => Promise<PageResult>, search: ExportSearch) {
	const key = (t: FhirTarget) => `${t.path}?${t.query}`;
	const ready: PageResult[] = [];
	let waiter: ((page: PageResult | undefined) => void) | undefined;
	let next: FhirTarget | undefined = { path: `/${search.type}`, query: search.query };
	let reading = false;
	let pages = 0;
	const deliver = (page: PageResult) => {
		if (waiter) {
			waiter(page);
			waiter = undefined;
		} else ready.push(page);
	};
	const readAhead = () => {
		if (reading || next === undefined || ready.length >= PAGES_AHEAD) return;
		const target = next;
		next = undefined;
		reading = true;
		void fetchPage(target).then((page) => {
			reading = false;
			deliver(page);
			const following = page.kind === "page" ? page.next : undefined;
			if (following && key(following) !== key(target) && ++pages < MAX_PAGES_PER_SEARCH) next = following;
			else if (following) {
				const text = `athenahealth kept sending ${search.type} pages; the export stopped following them after ${pages}.`;
				deliver({ kind: "refused", code: "too-costly", text });
			}
			readAhead();
		});
	};
	readAhead();

	return function nextPage(): Promise<PageResult | undefined> {
		const page = ready.shift();
		readAhead();
		if (page) return Promise.resolve(page);
		if (!reading && next === undefined) return Promise.resolve(undefined);
		return new Promise((resolve) => {
			waiter = resolve;
		});
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
	// Ids written, per type: the one thing an export keeps (athena's own id strings, no copies).
	const written = new Map<string, Set<string>>();
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
	yield [lastEntry(options.plan, tally, options.label)];
}

/** "Condition 43, Observation 491" */
function describeCounts(counts: Map<string, number>): string {
	return [...counts].map(([type, n]) => `${type} ${n}`).join(", ") || "nothing";
}

/** The file's last entry: complete (and what it holds), or ended early (and why). */
function lastEntry(plan: ExportPlan, tally: ExportTally, label: string | undefined): Json {
	const of = label ? ` of ${label}` : "";
	const total = [...tally.counts.values()].reduce((a, b) => a + b, 0);
	const held = `${total} resources (${describeCounts(tally.counts)})`;
	if (tally.stopped) {
		const text = `Export${of} incomplete: ${tally.stopped.text} This file holds only what was read before: ${held}.`;
		return outcomeResource("fatal", tally.stopped.code, text);
	}
	const refused = tally.refused.length > 0 ? ` athenahealth refused: ${tally.refused.join(", ")}.` : "";
	const notShared = plan.notShared.length > 0 ? ` Not shared with this app: ${plan.notShared.join(", ")}.` : "";
	return outcomeResource("information", "informational", `Export${of} complete: ${held}.${refused}${notShared}`);
}
