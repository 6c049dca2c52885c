import { AppError } from "../errors";
import { rawTarget } from "../fhir/raw-target";
import { smallBody } from "../fhir/required-parameters";
import type { ReadState, UpstreamRead } from "../fhir/upstream-read";
import type { FhirReader, FhirTarget } from "../pages/read-record";
import { type ExportClock, type Pacer, requestedWaitMs } from "./pacing";
import type { Json } from "./record-export";
import type { ExportSearch } from "./searches";

/*
 * Reading one search's pages for an export, politely: each answer judged
 * (a page, a refusal to record, a wait, a failure to retry, or the end of the
 * export), and pages read ahead as they arrive.
 */

/** What reading a page needs: the reader, the server's FHIR base (next links must lie under it), the clock. */
export interface PageReading {
	read: FhirReader;
	fhirBaseUrl: string;
	clock: ExportClock;
	/** Who holds the record, as the file's outcomes name it ("athenahealth", or a listed server's name). */
	serverName: string;
}

/** Retries of a page after athena failed (5xx, timeout, unreachable), each after a pause that grows. */
const TRANSIENT_RETRIES = 2;
const TRANSIENT_PAUSE_MS = 1_000;
/** Pages of one search read before the file has written them: enough to keep athena busy, few enough to stay flat. */
const PAGES_AHEAD = 2;
/** Pages followed per search at most (a million resources at 100 a page): a guard against endless paging. */
const MAX_PAGES_PER_SEARCH = 10_000;

/** One page of a search as the export sees it. */
export type PageResult =
	| { kind: "page"; resources: Json[]; next: FhirTarget | undefined }
	/** The server refused this search (or the rest of it): recorded, and the export goes on. */
	| { kind: "refused"; code: string; text: string }
	/** Nothing more can be read (access ended, athena down, out of time): the export ends here. */
	| { kind: "stop"; code: string; text: string };

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
	options: PageReading,
	basePath: string,
): Promise<Verdict> {
	const server = options.serverName;
	if (response.ok) {
		const body = await response.json().catch(() => BROKEN);
		if (body === BROKEN) return { kind: "failed", what: "sent a page that broke off or was not JSON" };
		const page = searchsetPage(body);
		if (!page) return { kind: "refused", code: "exception", text: `${server} sent an unreadable ${type} page.` };
		const next = page.next?.startsWith(`${options.fhirBaseUrl}/`) ? rawTarget(page.next, basePath) : undefined;
		if (page.next !== undefined && next === undefined) {
			const text = `${server}'s next ${type} page is outside its FHIR base.`;
			return { kind: "refused", code: "not-supported", text };
		}
		return { kind: "page", resources: page.resources, next };
	}
	if (response.status >= 400 && response.status < 500 && response.status !== 401 && response.status !== 429) {
		const said = outcomeText(response.body ? await smallBody(response.body) : undefined);
		const text = `${server} refused the ${type} search (status ${response.status})${said ? `: ${said}` : "."}`;
		return { kind: "refused", code: response.status === 403 ? "forbidden" : "processing", text };
	}
	await response.body?.cancel();
	if (response.status === 429) return { kind: "wait", ms: requestedWaitMs(response.headers, options.clock.now()) };
	// 401 after the reader's refreshes: athena refuses even a new token.
	if (response.status === 401) return stopped("security", `${server} refused the refreshed access token.`);
	return { kind: "failed", what: `answered ${response.status}` };
}

/**
 * Reads one page, politely: waits out athena's rate limits, retries a
 * failing athena twice, and turns every answer into a PageResult (it never
 * throws, so a page read ahead and never awaited cannot fail unheard).
 */
export function pageFetcher(options: PageReading, pacer: Pacer, type: string, exportEnded: AbortSignal) {
	const basePath = new URL(options.fhirBaseUrl).pathname;
	const server = options.serverName;
	async function readOnce(target: FhirTarget): Promise<Verdict> {
		let result: UpstreamRead;
		try {
			result = await options.read(target, exportEnded);
		} catch (error) {
			if (!(error instanceof AppError)) return stopped("exception", "The export failed on our side.");
			return {
				kind: "refused",
				code: "not-supported",
				text: `${server} sent a ${type} page link this app does not follow.`,
			};
		}
		if (result.kind === "state") return stateVerdict(result.state);
		pacer.noteAnswer(result.response.headers);
		return responseVerdict(result.response, type, options, basePath);
	}
	return async function fetchPage(target: FhirTarget): Promise<PageResult> {
		for (let failures = 0; ; ) {
			if (!(await pacer.ready())) return stopped("throttled", `The export ran out of time waiting for ${server}.`);
			// A page read ahead for an export that has ended (stopped, or its client gone) is not asked for.
			if (exportEnded.aborted) return stopped("exception", "The export had ended.");
			const verdict = await readOnce(target);
			if (verdict.kind === "wait") {
				pacer.pause(verdict.ms);
				continue;
			}
			if (verdict.kind !== "failed") return verdict;
			failures++;
			if (failures > TRANSIENT_RETRIES) return stopped("transient", `${server} ${verdict.what}; the export stopped.`);
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
export function pager(
	fetchPage: (target: FhirTarget) => Promise<PageResult>,
	search: ExportSearch,
	serverName: string,
) {
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
				const text = `${serverName} kept sending ${search.type} pages; the export stopped following them after ${pages}.`;
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
