import { AppError } from "../errors";
import { rawTarget } from "../fhir/raw-target";
import type { UpstreamRead } from "../fhir/upstream-read";
import { readGrant } from "../oauth/scopes";
import {
	type AllergyItem,
	activeProblems,
	allergies,
	bundleResources,
	currentMedications,
	currentName,
	type DocumentItem,
	documents,
	type EncounterItem,
	type ImmunizationItem,
	immunizations,
	type MedicationItem,
	nextLink,
	otherReports,
	type Problem,
	type ReportItem,
	type ResultRow,
	resultRows,
	visits,
} from "./record-data";

/** A read under athena's FHIR base: the raw path (`/Patient/a-1.E-2`) and the raw query. */
export interface FhirTarget {
	path: string;
	query: string;
}

/**
 * Reads one target from athena with the patient's session. The route passes
 * the FHIR proxy's own upstream reader (src/fhir/upstream-read.ts), so the
 * page reads under the same session, refresh and outbound rules as the proxy
 * and switches on the same typed result.
 */
export type FhirReader = (target: FhirTarget, signal?: AbortSignal) => Promise<UpstreamRead>;

type Json = Record<string, unknown>;

/** The name shown for a record whose Patient has none. */
export const UNNAMED = "Name not recorded";

/**
 * A section of the page: its entries, or why they could not be read.
 * `notGranted`: the patient did not share that type with this app, so it was not asked for.
 */
export type Section<T> = { ok: true; items: T[]; more: boolean } | { ok: false; message: string; notGranted?: true };

export interface RecordView {
	patientId: string;
	name: string;
	birthDate: string | undefined;
	/** athena's practice; other servers have none. */
	practiceId: string | undefined;
	practiceName: string | undefined;
	problems: Section<Problem>;
	medications: Section<MedicationItem>;
	allergies: Section<AllergyItem>;
	labs: Section<ResultRow>;
	vitals: Section<ResultRow>;
	reports: Section<ReportItem>;
	encounters: Section<EncounterItem>;
	documents: Section<DocumentItem>;
	immunizations: Section<ImmunizationItem>;
}

/** What the page can show: the record, or the session's state that stands in its way. */
export type RecordOutcome =
	| { state: "record"; record: RecordView }
	| { state: "revoked" }
	| { state: "signed_out" }
	/** `busy`: athena or our token budget asks us to wait; `down`: athena failed or timed out. */
	| { state: "unavailable"; reason: "busy" | "down"; retryAfterSeconds: number };

export type SessionState = Exclude<RecordOutcome, { state: "record" }>;

export type Read = { ok: true; body: unknown } | { ok: false; state?: SessionState; message: string };

/**
 * Page size asked for: athena honours at least 50 (its default is 20), and
 * fewer pages mean fewer requests against its rate limits.
 */
const PAGE_SIZE = 100;
/** Pages followed per search at most: a whole chart's worth for most types, bounded for a slow athena. */
const MAX_PAGES = 3;
/** Lab results are the bulk of a chart (athena's test patient: 419 of 491 observations). */
const MAX_LAB_PAGES = 10;
/** When athena failed without saying when to retry. */
const DEFAULT_RETRY_SECONDS = 30;

function retryAfter(response: Response): number {
	const value = Number(response.headers.get("Retry-After"));
	return Number.isInteger(value) && value > 0 ? value : DEFAULT_RETRY_SECONDS;
}

async function jsonBody(response: Response): Promise<unknown> {
	try {
		return await response.json();
	} catch {
		return undefined;
	}
}

function busy(retryAfterSeconds: number): Read {
	return {
		ok: false,
		state: { state: "unavailable", reason: "busy", retryAfterSeconds },
		message: "athenahealth is busy.",
	};
}

const DOWN: Read = {
	ok: false,
	state: { state: "unavailable", reason: "down", retryAfterSeconds: DEFAULT_RETRY_SECONDS },
	message: "athenahealth did not answer.",
};

/** The upstream reader's result in the page's terms. */
export async function read(reader: FhirReader, target: FhirTarget): Promise<Read> {
	let result: UpstreamRead;
	try {
		result = await reader(target);
	} catch (error) {
		// A target the outbound rules refuse (say, a next link athena built oddly): that section's problem only.
		if (!(error instanceof AppError)) throw error;
		return { ok: false, message: `athenahealth could not provide this (status ${error.status}).` };
	}
	if (result.kind === "state") {
		const { state } = result;
		if (state.status === "revoked" || state.status === "signed_out") {
			return { ok: false, state: { state: state.status }, message: "Not connected." };
		}
		// A record removed from the session since the page was built: that record's problem, not the session's.
		if (state.status === "unknown_connection") return { ok: false, message: "This record is no longer connected." };
		return state.status === "unavailable" ? busy(state.retryAfterSeconds ?? DEFAULT_RETRY_SECONDS) : DOWN;
	}
	const { response } = result;
	if (response.ok) {
		const body = await jsonBody(response);
		return body === undefined ? { ok: false, message: "athenahealth sent something unreadable." } : { ok: true, body };
	}
	await response.body?.cancel();
	if (response.status === 429) return busy(retryAfter(response));
	// 401 here: athena refused even a refreshed token; a redirect is never followed with the token.
	const failed = response.status === 401 || response.status >= 500 || response.status < 400;
	if (failed) return DOWN;
	if (response.status === 403) return { ok: false, message: "Your practice does not share this part of the record." };
	return { ok: false, message: `athenahealth could not provide this (status ${response.status}).` };
}

/**
 * A search with its next pages (up to `maxPages`). athena's next links are
 * absolute URLs on its host; only those under the FHIR base are followed, and
 * they go through the outbound rules again like any other read.
 */
async function search(
	reader: FhirReader,
	first: FhirTarget,
	type: string,
	fhirBaseUrl: string,
	maxPages: number,
): Promise<{ ok: true; resources: Json[]; more: boolean } | Failed> {
	const resources: Json[] = [];
	let next: FhirTarget | undefined = first;
	for (let page = 0; next !== undefined && page < maxPages; page++) {
		const result = await read(reader, next);
		if (!result.ok) return result;
		resources.push(...bundleResources(result.body, type));
		const link = nextLink(result.body);
		next = link?.startsWith(`${fhirBaseUrl}/`) ? rawTarget(link, new URL(fhirBaseUrl).pathname) : undefined;
	}
	return { ok: true, resources, more: next !== undefined };
}

type SearchResult = Awaited<ReturnType<typeof search>>;

function section<T>(result: SearchResult, toItems: (resources: Json[]) => T[]): Section<T> {
	if (result.ok) return { ok: true, items: toItems(result.resources), more: result.more };
	return { ok: false, message: result.message, ...(result.notGranted ? { notGranted: true } : {}) };
}

type Failed = Extract<Read, { ok: false }> & { notGranted?: true };

const STATE_PRIORITY: SessionState["state"][] = ["revoked", "signed_out", "unavailable"];

/**
 * Reads everything the record page shows from athena, in parallel, each
 * search with `_count` and at most a few pages. A session state (revoked,
 * signed out, athena busy) anywhere decides the whole page; other failures
 * only empty their own section.
 *
 * @example
 * const outcome = await readRecord(reader, {
 *   patient: "a-80000.E-14545",
 *   practice: "80000",
 *   fhirBaseUrl: "https://api.platform.athenahealth.com/fhir/r4",
 *   today: "2026-05-20",
 * });
 * if (outcome.state === "record") console.log(outcome.record.name);
 */
export async function readRecord(
	reader: FhirReader,
	session: {
		patient: string;
		/** athena's practice id (digits); undefined for servers without practices. */
		practice: string | undefined;
		/** The configured FHIR base, without a trailing slash: athena's next links must lie under it. */
		fhirBaseUrl: string;
		/** ISO date: which of the patient's names is current. */
		today: string;
		/** The scopes athena granted; types they do not cover are not asked for. Undefined: ask for all. */
		scopes?: readonly string[] | undefined;
	},
): Promise<RecordOutcome> {
	const at = (path: string, query = ""): FhirTarget => ({ path, query });
	const notGranted: Failed = { ok: false, message: "Not shared with this app.", notGranted: true };
	const searchOf = async (type: string, query: string, maxPages = MAX_PAGES) =>
		session.scopes && !readGrant(session.scopes, type).search
			? notGranted
			: search(
					reader,
					at(`/${type}`, `patient=${session.patient}${query}&_count=${PAGE_SIZE}`),
					type,
					session.fhirBaseUrl,
					maxPages,
				);
	const noPractice: Read = { ok: false, message: "" };
	const [
		patient,
		practice,
		conditions,
		medications,
		allergyResult,
		labs,
		vitals,
		reports,
		encounters,
		notes,
		vaccines,
	] = await Promise.all([
		read(reader, at(`/Patient/${session.patient}`)),
		session.practice ? read(reader, at(`/Organization/a-1.Practice-${session.practice}`)) : noPractice,
		searchOf("Condition", ""),
		// athena answers 403 to a MedicationRequest search without intent (a required parameter combination).
		searchOf("MedicationRequest", "&intent=order,plan"),
		searchOf("AllergyIntolerance", ""),
		searchOf("Observation", "&category=laboratory", MAX_LAB_PAGES),
		searchOf("Observation", "&category=vital-signs"),
		searchOf("DiagnosticReport", ""),
		searchOf("Encounter", ""),
		searchOf("DocumentReference", ""),
		searchOf("Immunization", ""),
	]);
	const sections = [conditions, medications, allergyResult, labs, vitals, reports, encounters, notes, vaccines];
	const states = [patient, practice, ...sections].flatMap((r) => (!r.ok && r.state ? [r.state] : []));
	for (const wanted of STATE_PRIORITY) {
		const found = states.find((s) => s.state === wanted);
		// athena "down" for one section is that section's problem; for the patient it is the page's.
		if (found && (found.state !== "unavailable" || found.reason === "busy")) return found;
	}
	if (!patient.ok) {
		return patient.state ?? { state: "unavailable", reason: "down", retryAfterSeconds: DEFAULT_RETRY_SECONDS };
	}
	const patientResource = patient.body as Json;
	const organization = practice.ok ? (practice.body as Json) : undefined;
	return {
		state: "record",
		record: {
			patientId: session.patient,
			name: currentName(patientResource.name, session.today) ?? UNNAMED,
			birthDate: typeof patientResource.birthDate === "string" ? patientResource.birthDate : undefined,
			practiceId: session.practice,
			practiceName: typeof organization?.name === "string" ? organization.name : undefined,
			problems: section(conditions, activeProblems),
			medications: section(medications, currentMedications),
			allergies: section(allergyResult, allergies),
			labs: section(labs, (r) => resultRows(r, "lab")),
			vitals: section(vitals, (r) => resultRows(r, "vital")),
			reports: section(reports, otherReports),
			encounters: section(encounters, (r) => visits(r, conditions.ok ? conditions.resources : [])),
			documents: section(notes, documents),
			immunizations: section(vaccines, immunizations),
		},
	};
}
