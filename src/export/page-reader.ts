import { AppError } from "../errors";
import { rawTarget } from "../fhir/raw-target";
import { smallBody } from "../fhir/required-parameters";
import type { ReadState, UpstreamRead } from "../fhir/upstream-read";
import type { FhirReader, FhirTarget } from "../pages/read-record";
import { linksAhead, nextUrlOf } from "./bundle-head";
import { type ExportClock, type Pacer, requestedWaitMs } from "./pacing";
import type { Json } from "./record-export";
import type { ExportSearch } from "./searches";

/*
 * Reading one search's pages for an export, politely: each answer judged
 * (a page, a refusal to record, a wait, a failure to retry, or the end of the
 * export), and pages read ahead as they arrive: the next page is asked for
 * as soon as the start of this one names it.
 */

/** What reading a page needs: the reader, the server's FHIR base (next links must lie under it), the clock. */
export interface PageReading {
	read: FhirReader;
	fhirBaseUrl: string;
	clock: ExportClock;
	/** Who holds the record, as the file's outcomes name it ("athenahealth", or a listed server's name). */
	serverName?: string;
}

/** The name outcomes give the server when none is set: the environment's own athena. */
export const ATHENA = "athenahealth";

/** Retries of a page after athena failed (5xx, timeout, unreachable), each after a pause that grows. */
const TRANSIENT_RETRIES = 2;
const TRANSIENT_PAUSE_MS = 1_000;
/** Pages of one search read before the file has written them: enough to keep athena busy, few enough to stay flat. */
const PAGES_AHEAD = 2;
/** Chunks of a page's start looked at for its next link before the page is just read whole. */
const HEAD_LOOKS = 8;
/** Pages followed per search at most (a million resources at 100 a page): a guard against endless paging. */
const MAX_PAGES_PER_SEARCH = 10_000;

/** Told a page's next page (under the server's FHIR base) as soon as the page's start names it. */
export type NextHeard = (next: FhirTarget) => void;

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

/**
 * A page's body parsed, `early` told its next link as soon as the body's
 * start names it (bundle-head.ts), before the rest has arrived. The body is
 * parsed natively from one branch of a tee; only the start of the other is
 * read in JS (workerd hands a JS reader 4 KiB at a time), then let go.
 */
function pageBody(response: Response, early: (url: string) => void): Promise<unknown> {
	const stream = response.body;
	if (!stream) return Promise.resolve(BROKEN);
	const [head, whole] = stream.tee();
	void readHead(head, early);
	return new Response(whole).json().catch(() => BROKEN);
}

/** Reads the start of a body until it names the next link (or cannot), then cancels the rest of this branch. */
async function readHead(head: ReadableStream<Uint8Array>, early: (url: string) => void): Promise<void> {
	const reader = head.getReader();
	const decoder = new TextDecoder();
	let text = "";
	try {
		// A few chunks at most: the head is small, and each look reads it from its start.
		for (let looks = 0; looks < HEAD_LOOKS; looks++) {
			const chunk = await reader.read();
			if (chunk.done) return;
			text += decoder.decode(chunk.value, { stream: true });
			const links = linksAhead(text);
			if (links === "more") continue;
			const url = links === "absent" ? undefined : nextUrlOf(links);
			if (url !== undefined) early(url);
			return;
		}
	} catch {
		// A body that breaks off: the whole branch's parse says so.
	} finally {
		await reader.cancel().catch(() => undefined);
	}
}

/** athena's answer to a page read, its body consumed; `early` hears the next page's target before the body is all in. */
async function responseVerdict(
	response: Response,
	type: string,
	options: PageReading,
	basePath: string,
	early: NextHeard | undefined,
): Promise<Verdict> {
	const server = options.serverName ?? ATHENA;
	const inBase = (url: string) => (url.startsWith(`${options.fhirBaseUrl}/`) ? rawTarget(url, basePath) : undefined);
	if (response.ok) {
		const body = await pageBody(response, (url) => {
			const target = inBase(url);
			if (target) early?.(target);
		});
		if (body === BROKEN) return { kind: "failed", what: "sent a page that broke off or was not JSON" };
		const page = searchsetPage(body);
		if (!page) return { kind: "refused", code: "exception", text: `${server} sent an unreadable ${type} page.` };
		const next = page.next === undefined ? undefined : inBase(page.next);
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
	const server = options.serverName ?? ATHENA;
	async function readOnce(target: FhirTarget, early: NextHeard | undefined, signal: AbortSignal): Promise<Verdict> {
		let result: UpstreamRead;
		try {
			result = await options.read(target, signal);
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
		return responseVerdict(result.response, type, options, basePath, early);
	}
	/** `dropped`: the page's search has ended, so the page is no longer wanted either. */
	return async function fetchPage(target: FhirTarget, early?: NextHeard, dropped?: AbortSignal): Promise<PageResult> {
		const unwanted = dropped ? AbortSignal.any([exportEnded, dropped]) : exportEnded;
		for (let failures = 0; ; ) {
			if (!(await pacer.ready())) return stopped("throttled", `The export ran out of time waiting for ${server}.`);
			// A page read ahead for an export or a search that has ended is not asked for, and a read under way stops.
			if (unwanted.aborted) return stopped("exception", "The export had ended.");
			const verdict = await readOnce(target, early, unwanted);
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
 * A search's pages, read ahead: the next page is asked for as soon as this
 * one's start names it (or, failing that, once it has arrived), with at most
 * PAGES_AHEAD pages asked for and not yet taken, so athena's paging never
 * waits on the file being written and memory stays a few pages per search.
 * Pages are handed out in order. A next link that repeats the page, paging
 * past MAX_PAGES_PER_SEARCH, or a page whose parsed next link is not the one
 * its start named, ends the search with a refusal; after a refusal or a stop
 * nothing more of the search is handed out, and pages asked for after it stop
 * being read.
 */
export function pager(
	fetchPage: (target: FhirTarget, early?: NextHeard, dropped?: AbortSignal) => Promise<PageResult>,
	search: ExportSearch,
	serverName = ATHENA,
) {
	const key = (t: FhirTarget) => `${t.path}?${t.query}`;
	/** Pages asked for and not yet taken, in order, each with what follows it (a refusal when paging ends badly). */
	let asked: Array<Promise<PageResult[]>> = [];
	const ready: PageResult[] = [];
	let next: FhirTarget | undefined = { path: `/${search.type}`, query: search.query };
	let pages = 0;
	let over = false;
	/** Aborted once the search is over: pages asked for after that stop being read. */
	const dropped = new AbortController();
	const refusal = (text: string): PageResult => ({ kind: "refused", code: "too-costly", text });

	/** Whether paging may go on from `target` to `following`; counts the page. */
	const mayFollow = (target: FhirTarget, following: FhirTarget) =>
		key(following) !== key(target) && pages + 1 < MAX_PAGES_PER_SEARCH;

	const ask = () => {
		if (over || next === undefined || asked.length >= PAGES_AHEAD) return;
		const target = next;
		next = undefined;
		let started: FhirTarget | undefined;
		let arrived = false;
		const early = (following: FhirTarget) => {
			// Too late once the page itself has arrived: its own next link has been followed (or not).
			if (arrived || started !== undefined || over || !mayFollow(target, following)) return;
			started = following;
			pages++;
			next = following;
			ask();
		};
		asked.push(
			fetchPage(target, early, dropped.signal).then((page): PageResult[] => {
				arrived = true;
				const following = page.kind === "page" ? page.next : undefined;
				if (started !== undefined) {
					if (following !== undefined && key(following) === key(started)) return [page];
					const text = `${serverName} sent a ${search.type} page whose links disagree; the export stopped following them.`;
					return [page, refusal(text)];
				}
				if (following === undefined) return [page];
				if (!mayFollow(target, following)) {
					const text = `${serverName} kept sending ${search.type} pages; the export stopped following them after ${pages + 1}.`;
					return [page, refusal(text)];
				}
				pages++;
				next = following;
				ask();
				return [page];
			}),
		);
	};
	ask();

	return async function nextPage(): Promise<PageResult | undefined> {
		if (ready.length === 0) {
			const first = asked[0];
			if (first === undefined) return undefined;
			const results = await first;
			asked.shift();
			ready.push(...results);
		}
		const page = ready.shift();
		if (page && page.kind !== "page") {
			// Pages asked for after this one are not handed out (their answers are read and dropped).
			over = true;
			dropped.abort();
			asked = [];
			ready.length = 0;
		}
		ask();
		return page;
	};
}
