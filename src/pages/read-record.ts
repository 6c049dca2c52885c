import { AppError } from "../errors";
import { rawTarget } from "../fhir/raw-target";
import type { UpstreamRead } from "../fhir/upstream-read";
import {
	type AllergyItem,
	activeConditions,
	allergies,
	bundleResources,
	type ConditionItem,
	currentMedications,
	type DocumentItem,
	documents,
	type EncounterItem,
	type ImmunizationItem,
	immunizations,
	type MedicationItem,
	nextLink,
	observationSeries,
	personName,
	recentEncounters,
	type Series,
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
export type FhirReader = (target: FhirTarget) => Promise<UpstreamRead>;

type Json = Record<string, unknown>;

/** A section of the page: its entries, or why they could not be read. */
export type Section<T> = { ok: true; items: T[]; more: boolean } | { ok: false; message: string };

export interface RecordView {
	patientId: string;
	name: string;
	birthDate: string | undefined;
	practiceId: string;
	practiceName: string | undefined;
	allergies: Section<AllergyItem>;
	conditions: Section<ConditionItem>;
	medications: Section<MedicationItem>;
	immunizations: Section<ImmunizationItem>;
	encounters: Section<EncounterItem>;
	vitals: Section<Series>;
	labs: Section<Series>;
	documents: Section<DocumentItem>;
}

/** What the page can show: the record, or the session's state that stands in its way. */
export type RecordOutcome =
	| { state: "record"; record: RecordView }
	| { state: "revoked" }
	| { state: "signed_out" }
	/** `busy`: athena or our token budget asks us to wait; `down`: athena failed or timed out. */
	| { state: "unavailable"; reason: "busy" | "down"; retryAfterSeconds: number };

type SessionState = Exclude<RecordOutcome, { state: "record" }>;

type Read = { ok: true; body: unknown } | { ok: false; state?: SessionState; message: string };

/** Pages followed per search at most: enough for years of quarterly vitals, bounded for a slow athena. */
const MAX_PAGES = 5;
const RECENT_ENCOUNTERS = 5;
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
async function read(reader: FhirReader, target: FhirTarget): Promise<Read> {
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
 * A search with its next pages (up to MAX_PAGES). athena's next links are
 * absolute URLs on its host; only those under the FHIR base are followed, and
 * they go through the outbound rules again like any other read.
 */
async function search(
	reader: FhirReader,
	first: FhirTarget,
	type: string,
	fhirBaseUrl: string,
): Promise<{ ok: true; resources: Json[]; more: boolean } | Extract<Read, { ok: false }>> {
	const resources: Json[] = [];
	let next: FhirTarget | undefined = first;
	for (let page = 0; next !== undefined && page < MAX_PAGES; page++) {
		const result = await read(reader, next);
		if (!result.ok) return result;
		resources.push(...bundleResources(result.body, type));
		const link = nextLink(result.body);
		next = link?.startsWith(`${fhirBaseUrl}/`) ? rawTarget(link, new URL(fhirBaseUrl).pathname) : undefined;
	}
	return { ok: true, resources, more: next !== undefined };
}

function section<T>(result: Awaited<ReturnType<typeof search>>, toItems: (resources: Json[]) => T[]): Section<T> {
	return result.ok
		? { ok: true, items: toItems(result.resources), more: result.more }
		: { ok: false, message: result.message };
}

const STATE_PRIORITY: SessionState["state"][] = ["revoked", "signed_out", "unavailable"];

/**
 * Reads everything the record page shows from athena, in parallel. A session
 * state (revoked, signed out, athena busy) anywhere decides the whole page;
 * other failures only empty their own section.
 *
 * @example
 * const outcome = await readRecord(reader, {
 *   patient: "a-80000.E-14545",
 *   practice: "80000",
 *   fhirBaseUrl: "https://api.platform.athenahealth.com/fhir/r4",
 * });
 * if (outcome.state === "record") console.log(outcome.record.name);
 */
export async function readRecord(
	reader: FhirReader,
	session: {
		patient: string;
		practice: string;
		/** The configured FHIR base, without a trailing slash: athena's next links must lie under it. */
		fhirBaseUrl: string;
	},
): Promise<RecordOutcome> {
	const at = (path: string, query = ""): FhirTarget => ({ path, query });
	const searchOf = (type: string, query: string) => search(reader, at(`/${type}`, query), type, session.fhirBaseUrl);
	const [
		patient,
		practice,
		allergyResult,
		conditionResult,
		medicationResult,
		immunizationResult,
		encounterResult,
		vitalResult,
		labResult,
		documentResult,
	] = await Promise.all([
		read(reader, at(`/Patient/${session.patient}`)),
		read(reader, at(`/Organization/a-1.Practice-${session.practice}`)),
		searchOf("AllergyIntolerance", "_count=100"),
		searchOf("Condition", "_count=100"),
		// athena requires intent with patient on MedicationRequest searches (athena answers 403 without it).
		searchOf("MedicationRequest", "intent=order&_count=100"),
		searchOf("Immunization", "_count=100"),
		searchOf("Encounter", "_count=100"),
		searchOf("Observation", "category=vital-signs&_count=200"),
		searchOf("Observation", "category=laboratory&_count=200"),
		searchOf("DocumentReference", "_count=100"),
	]);
	const all = [
		patient,
		practice,
		allergyResult,
		conditionResult,
		medicationResult,
		immunizationResult,
		encounterResult,
		vitalResult,
		labResult,
		documentResult,
	];
	const states = all.flatMap((r) => (!r.ok && r.state ? [r.state] : []));
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
			name: personName(patientResource.name) ?? "Name not recorded",
			birthDate: typeof patientResource.birthDate === "string" ? patientResource.birthDate : undefined,
			practiceId: session.practice,
			practiceName: typeof organization?.name === "string" ? organization.name : undefined,
			allergies: section(allergyResult, allergies),
			conditions: section(conditionResult, activeConditions),
			medications: section(medicationResult, currentMedications),
			immunizations: section(immunizationResult, immunizations),
			encounters: section(encounterResult, (r) => recentEncounters(r, RECENT_ENCOUNTERS)),
			vitals: section(vitalResult, observationSeries),
			labs: section(labResult, observationSeries),
			documents: section(documentResult, documents),
		},
	};
}
