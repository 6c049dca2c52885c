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

/**
 * Sends a GET for a path under the app's own FHIR proxy (`/fhir/r4/...`) and
 * returns the proxy's response. The route passes a function that calls the
 * worker in-process with the patient's cookie, so the page reads exactly what
 * the proxy serves (sessions, refresh, athena's rules) without a second copy
 * of that logic and without a network hop.
 */
export type FhirReader = (path: string) => Promise<Response>;

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
const PROXY_PATH = "/fhir/r4/";
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

/** The proxy's answer in the page's terms (the proxy's session-state bodies are `{ status: ... }`). */
async function read(reader: FhirReader, path: string): Promise<Read> {
	const response = await reader(path);
	if (response.ok) {
		const body = await jsonBody(response);
		return body === undefined ? { ok: false, message: "athenahealth sent something unreadable." } : { ok: true, body };
	}
	const body = (await jsonBody(response)) as { status?: unknown } | undefined;
	if (response.status === 401) {
		const state = body?.status === "revoked" ? "revoked" : "signed_out";
		return { ok: false, state: { state }, message: "Not connected." };
	}
	if (response.status === 429 || (response.status === 503 && body?.status === "unavailable")) {
		return {
			ok: false,
			state: { state: "unavailable", reason: "busy", retryAfterSeconds: retryAfter(response) },
			message: "athenahealth is busy.",
		};
	}
	if (response.status === 502 || response.status === 503 || response.status === 504) {
		return {
			ok: false,
			state: { state: "unavailable", reason: "down", retryAfterSeconds: retryAfter(response) },
			message: "athenahealth did not answer.",
		};
	}
	if (response.status === 403) return { ok: false, message: "Your practice does not share this part of the record." };
	return { ok: false, message: `athenahealth could not provide this (status ${response.status}).` };
}

/** A search with its next pages (up to MAX_PAGES), following only links back into our own proxy. */
async function search(
	reader: FhirReader,
	path: string,
	type: string,
): Promise<{ ok: true; resources: Json[]; more: boolean } | Extract<Read, { ok: false }>> {
	const resources: Json[] = [];
	let next: string | undefined = path;
	for (let page = 0; next !== undefined && page < MAX_PAGES; page++) {
		const result = await read(reader, next);
		if (!result.ok) return result;
		resources.push(...bundleResources(result.body, type));
		const link = nextLink(result.body);
		// The proxy rewrites athena's next links onto its own origin; anything else is not followed.
		const at = link ? link.indexOf(PROXY_PATH) : -1;
		next = link && at >= 0 && /^https?:\/\/[^/]+$/.test(link.slice(0, at)) ? link.slice(at) : undefined;
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
 * Reads everything the record page shows, in parallel, through the proxy.
 * A session state (revoked, signed out, athena busy) anywhere decides the
 * whole page; other failures only empty their own section.
 *
 * @example
 * const outcome = await readRecord(reader, { patient: "a-80000.E-14545", practice: "80000" });
 * if (outcome.state === "record") console.log(outcome.record.name);
 */
export async function readRecord(
	reader: FhirReader,
	session: { patient: string; practice: string },
): Promise<RecordOutcome> {
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
		read(reader, `${PROXY_PATH}Patient/${session.patient}`),
		read(reader, `${PROXY_PATH}Organization/a-1.Practice-${session.practice}`),
		search(reader, `${PROXY_PATH}AllergyIntolerance?_count=100`, "AllergyIntolerance"),
		search(reader, `${PROXY_PATH}Condition?_count=100`, "Condition"),
		// athena requires intent with patient on MedicationRequest searches (athena-reference.md).
		search(reader, `${PROXY_PATH}MedicationRequest?intent=order&_count=100`, "MedicationRequest"),
		search(reader, `${PROXY_PATH}Immunization?_count=100`, "Immunization"),
		search(reader, `${PROXY_PATH}Encounter?_count=100`, "Encounter"),
		search(reader, `${PROXY_PATH}Observation?category=vital-signs&_count=200`, "Observation"),
		search(reader, `${PROXY_PATH}Observation?category=laboratory&_count=200`, "Observation"),
		search(reader, `${PROXY_PATH}DocumentReference?_count=100`, "DocumentReference"),
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
