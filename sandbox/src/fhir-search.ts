/*
 * athena's search rules as pure functions over a chart: which scope grants
 * what, the required parameter combinations, the filters the sandbox
 * supports, and cursor paging (shared/athena-observed.md "FHIR R4, as
 * recorded").
 */

import { type FhirResource, listSequence, type ResourceSequence } from "./data";

/** Types whose resources belong to a practice rather than a patient's compartment. */
export const PRACTICE_LEVEL = new Set<string>(["Organization", "Practitioner", "Location", "Medication"]);

/**
 * Whether a granted scope allows the interaction: SMART v1 `patient/X.read`
 * covers read and search, v2 `patient/X.rs` names each (r read, s search);
 * `*` stands for every type. A v2 scope's query (`?category=...`) narrows
 * what athena returns; the sandbox grants the type and ignores the narrowing.
 */
export function scopeAllows(scope: readonly string[], type: string, interaction: "read" | "search"): boolean {
	const letter = interaction === "read" ? "r" : "s";
	return scope.some((s) => {
		const match = /^patient\/([A-Za-z]+|\*)\.(read|[cruds]+)(\?.*)?$/.exec(s);
		if (!match || (match[1] !== type && match[1] !== "*")) return false;
		return match[2] === "read" || (match[2] ?? "").includes(letter);
	});
}

/** athena's documented combinations (athena-reference.md); one of them must be present in full. */
const REQUIRED_COMBINATIONS: Record<string, string[][]> = {
	AllergyIntolerance: [["patient"]],
	MedicationRequest: [["patient", "intent"], ["_id"]],
	Patient: [["_id"], ["identifier"], ["name"], ["family", "birthdate"]],
	Provenance: [["target"]],
};
/** Assumed (unrecorded): other compartment searches name the patient or ids. */
const COMPARTMENT_COMBINATIONS = [["patient"], ["subject"], ["_id"]];

/** The combinations the search failed to provide, or null when one is present. */
export function missingCombination(type: string, has: (name: string) => boolean): string[][] | null {
	if (PRACTICE_LEVEL.has(type)) return null;
	const combinations = REQUIRED_COMBINATIONS[type] ?? COMPARTMENT_COMBINATIONS;
	return combinations.some((names) => names.every(has)) ? null : combinations;
}

/**
 * athena's words, verbatim for MedicationRequest:
 * "The search query could not be performed because one of the required
 * parameter combinations [[patient,intent],[_id]] was not provided."
 */
export function combinationText(combinations: string[][]): string {
	const list = `[${combinations.map((names) => `[${names.join(",")}]`).join(",")}]`;
	return `The search query could not be performed because one of the required parameter combinations ${list} was not provided.`;
}

const tokens = (value: string | undefined) =>
	(value ?? "")
		.split(",")
		.map((v) => v.trim())
		.filter(Boolean);

function codings(value: unknown): Array<{ system?: string; code?: string }> {
	const list = Array.isArray(value) ? value : value ? [value] : [];
	return list.flatMap((cc) => (cc as { coding?: Array<{ system?: string; code?: string }> }).coding ?? []);
}

function matchesToken(value: unknown, wanted: string[]): boolean {
	return codings(value).some((coding) =>
		wanted.some((w) => {
			const [system, code] = w.includes("|") ? w.split("|") : [undefined, w];
			return coding.code === code && (system === undefined || system === "" || coding.system === system);
		}),
	);
}

export function resourceDate(resource: FhirResource): string | undefined {
	const r = resource as Record<string, unknown>;
	const candidates = [
		r.effectiveDateTime,
		(r.period as { start?: string } | undefined)?.start,
		r.onsetDateTime,
		r.occurrenceDateTime,
		r.authoredOn,
		r.date,
		r.performedDateTime,
		r.recordedDate,
	];
	return candidates.find((v): v is string => typeof v === "string");
}

/** FHIR date search with ge/gt/le/lt/eq prefixes, compared on the ISO prefix. */
function matchesDate(resource: FhirResource, filters: string[]): boolean {
	const date = resourceDate(resource);
	if (!date) return false;
	return filters.every((filter) => {
		const match = /^(ge|gt|le|lt|eq)?(.+)$/.exec(filter);
		const prefix = match?.[1] ?? "eq";
		const target = match?.[2] ?? "";
		const value = date.slice(0, target.length);
		switch (prefix) {
			case "ge":
				return value >= target;
			case "gt":
				return value > target;
			case "le":
				return value <= target;
			case "lt":
				return value < target;
			default:
				return value === target;
		}
	});
}

/** Patient search by identifier (`system|value` or value), name, family (prefix) and birthdate. */
function matchesPatient(resource: FhirResource, get: (name: string) => string | undefined): boolean {
	const identifiers = (resource.identifier as Array<{ system?: string; value?: string }> | undefined) ?? [];
	const names = (resource.name as Array<{ family?: string; given?: string[] }> | undefined) ?? [];
	const identifier = get("identifier");
	const name = get("name")?.toLowerCase();
	const family = get("family")?.toLowerCase();
	const birthdate = get("birthdate");
	return (
		(identifier === undefined ||
			identifiers.some((i) => {
				const [system, value] = identifier.includes("|") ? identifier.split("|") : [undefined, identifier];
				return i.value === value && (!system || i.system === system);
			})) &&
		(name === undefined ||
			names.some((n) => [...(n.given ?? []), n.family ?? ""].some((part) => part.toLowerCase().startsWith(name)))) &&
		(family === undefined || names.some((n) => (n.family ?? "").toLowerCase().startsWith(family))) &&
		(birthdate === undefined || resource.birthDate === birthdate)
	);
}

/**
 * The search's own filters as one test of a resource, in the order athena's
 * documentation lists them per type; a search without filters matches all.
 */
export function resourceFilter(type: string, params: Array<[string, string]>): (resource: FhirResource) => boolean {
	const get = (name: string) => params.find(([k]) => k === name)?.[1];
	const ids = tokens(get("_id"));
	const category = tokens(get("category"));
	const code = tokens(get("code"));
	const intent = tokens(get("intent"));
	const status = tokens(get("status"));
	const dates = params.filter(([k]) => k === "date").map(([, v]) => v);
	return (r) =>
		(ids.length === 0 || ids.includes(r.id)) &&
		(type !== "Patient" || matchesPatient(r, get)) &&
		(category.length === 0 || matchesToken(r.category, category)) &&
		(code.length === 0 || matchesToken(r.code ?? r.vaccineCode ?? r.medicationCodeableConcept, code)) &&
		(intent.length === 0 || intent.includes(String(r.intent))) &&
		(status.length === 0 || status.includes(String(r.status))) &&
		(dates.length === 0 || matchesDate(r, dates));
}

/**
 * The candidates a search with `_id` can match, found by id rather than by
 * reading every candidate (a generated sequence has 100,000), in search order.
 */
export function candidatesWithIds(candidates: ResourceSequence, params: Array<[string, string]>): ResourceSequence {
	const ids = tokens(params.find(([k]) => k === "_id")?.[1]);
	if (ids.length === 0) return candidates;
	const positions = [...new Set(ids.map((id) => candidates.indexOf(id)).filter((i) => i >= 0))].sort((a, b) => a - b);
	return listSequence(positions.flatMap((i) => candidates.at(i) ?? []));
}

export type SearchPage =
	| { ok: true; resources: FhirResource[]; nextCursor?: string }
	| { ok: false; reason: "unknown-cursor" };

/**
 * One page of a search, as athena pages: `count` matches from the cursor (the
 * id of the page's first match), then the unlisted ones are dropped, so a
 * page can come back short, or empty, and still have a next page. The next
 * cursor is the id of the match after the page.
 *
 * The candidates are read in order from the cursor and tested with
 * `matches` (everything by default) only as far as the page and the next
 * match: a page of a sequence made on demand costs the page, not the search.
 *
 * @example
 * searchPage(matches, { count: 20, cursor: "a-80000.resultamb-13899", unlisted: new Set() });
 * // { ok: true, resources: [...up to 20], nextCursor: "a-80000.resultamb-13950" }
 */
export function searchPage(
	candidates: readonly FhirResource[] | ResourceSequence,
	options: {
		count: number;
		cursor?: string;
		unlisted: ReadonlySet<string>;
		matches?: (resource: FhirResource) => boolean;
	},
): SearchPage {
	const sequence = Array.isArray(candidates) ? listSequence(candidates) : (candidates as ResourceSequence);
	const matches = options.matches ?? (() => true);
	let position = 0;
	if (options.cursor !== undefined) {
		position = sequence.indexOf(options.cursor);
		const first = position < 0 ? undefined : sequence.at(position);
		if (!first || !matches(first)) return { ok: false, reason: "unknown-cursor" };
	}
	const page: FhirResource[] = [];
	let next: FhirResource | undefined;
	for (; position < sequence.length && next === undefined; position++) {
		const resource = sequence.at(position);
		if (!resource || !matches(resource)) continue;
		if (page.length < options.count) page.push(resource);
		else next = resource;
	}
	const resources = page.filter((r) => !options.unlisted.has(r.id));
	return next ? { ok: true, resources, nextCursor: next.id } : { ok: true, resources };
}
