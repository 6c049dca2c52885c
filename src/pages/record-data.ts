/**
 * What the record page shows, pulled out of FHIR R4 resources as athena sends
 * them (shared/athena-observed.md "The data is messy"). Pure functions over
 * parsed JSON: no network, no `env`. Every field is optional in practice, so
 * each reader falls back to "not recorded" rather than throwing, and a code
 * is never shown without the words for it.
 */

type Json = Record<string, unknown>;

/** One dated number, oldest first in a series. `at` is an ISO date or date-time. */
export interface Point {
	at: string;
	value: number;
}

/** A test or vital sign: its newest reading, and its numeric history for a trend. */
export interface ResultRow {
	key: string;
	name: string;
	/** The newest value as a patient reads it: "6.1 %", "Negative", "128/82 mmHg", "198.2 lb (89.9 kg)". */
	latest: string;
	at: string;
	range: string | undefined;
	flag: string | undefined;
	/** Numeric readings, oldest first; two lines for blood pressure (systolic, diastolic). */
	series: Point[][];
	unit: string;
}

export interface Problem {
	name: string;
	since: string | undefined;
}

export interface AllergyItem {
	substance: string;
	reactions: string[];
}

export interface MedicationItem {
	name: string;
	instructions: string | undefined;
}

export interface ImmunizationItem {
	vaccine: string;
	date: string | undefined;
}

export interface EncounterItem {
	type: string;
	date: string | undefined;
	practitioner: string | undefined;
	/** The visit's diagnoses (athena's encounter-diagnosis Conditions), named once each. */
	diagnoses: string[];
}

export interface ReportItem {
	name: string;
	category: string | undefined;
	date: string | undefined;
	/** The report's own text (presentedForm text/plain), if athena sent it inline. */
	text: string | undefined;
}

export interface DocumentItem {
	id: string;
	title: string;
	date: string | undefined;
	/** False when athena sends no content, only a data-absent-reason (not released to the portal). */
	released: boolean;
}

export const LOINC_BLOOD_PRESSURE = "85354-9";
export const LOINC_WEIGHT = "29463-7";
export const LOINC_HEART_RATE = "8867-4";
/** The blood pressure panel's components (US Core vital signs profile). */
const LOINC_SYSTOLIC = "8480-6";
const LOINC_DIASTOLIC = "8462-4";
const POUND_GRAMS = 453.59237;

/** Vital signs by LOINC code, in the order the page lists them, with the names patients use. */
const VITAL_NAMES: Record<string, string> = {
	[LOINC_BLOOD_PRESSURE]: "Blood pressure",
	[LOINC_WEIGHT]: "Weight",
	"8302-2": "Height",
	"39156-5": "BMI",
	"8310-5": "Temperature",
	[LOINC_HEART_RATE]: "Heart rate",
	"9279-1": "Breathing rate",
	"59408-5": "Oxygen saturation",
	"2708-6": "Oxygen saturation",
};

/** UCUM as people write it. */
const UNITS: Record<string, string> = {
	"mm[Hg]": "mmHg",
	"[degF]": "°F",
	Cel: "°C",
	"kg/m2": "kg/m²",
	"/min": "per min",
	"[lb_av]": "lb",
	"[in_i]": "in",
	"10*3/uL": "×10³/µL",
	"10*6/uL": "×10⁶/µL",
};

/** HL7 v3 ObservationInterpretation codes athena may send without a display. */
const FLAGS: Record<string, string> = { H: "High", HH: "Critical high", L: "Low", LL: "Critical low", A: "Abnormal" };

function isObject(value: unknown): value is Json {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
	return Array.isArray(value) ? value : [];
}

function objects(value: unknown): Json[] {
	return list(value).filter(isObject);
}

function text(value: unknown): string | undefined {
	return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function codings(concept: unknown): Json[] {
	return isObject(concept) ? objects(concept.coding) : [];
}

function codes(concept: unknown): string[] {
	return codings(concept).flatMap((c) => (text(c.code) ? [String(c.code)] : []));
}

/** A CodeableConcept as a person reads it: its text, else a coding's display; never a bare code. */
export function conceptText(concept: unknown): string | undefined {
	if (!isObject(concept)) return undefined;
	return (
		text(concept.text) ??
		codings(concept)
			.map((c) => text(c.display))
			.find(Boolean)
	);
}

/** The resources of a searchset Bundle, only those of `type` (athena may add OperationOutcome entries). */
export function bundleResources(bundle: unknown, type: string): Json[] {
	if (!isObject(bundle)) return [];
	return objects(bundle.entry)
		.map((entry) => entry.resource)
		.filter((resource): resource is Json => isObject(resource) && resource.resourceType === type);
}

/** The next page's URL of a searchset Bundle, if there is one. */
export function nextLink(bundle: unknown): string | undefined {
	if (!isObject(bundle)) return undefined;
	return text(objects(bundle.link).find((link) => link.relation === "next")?.url);
}

/**
 * The name a patient goes by today: an `official` name whose period has not
 * ended (athena keeps the old official names, each with its period), else a
 * current `usual` one, else any current name that is not `old`; the latest
 * started first. `today` is an ISO date.
 */
export function currentName(names: unknown, today: string): string | undefined {
	const all = objects(names).sort((a, b) => periodStart(b).localeCompare(periodStart(a)));
	const ended = (n: Json) => n.use === "old" || (text(isObject(n.period) ? n.period.end : undefined) ?? "9") < today;
	const current = all.filter((n) => !ended(n));
	// Every name ended (a record not kept up to date): the latest one is still the best guess.
	const chosen =
		current.find((n) => n.use === "official") ??
		current.find((n) => n.use === "usual") ??
		current[0] ??
		all.find((n) => n.use === "official") ??
		all[0];
	if (!chosen) return undefined;
	const whole = [...list(chosen.given).map(text), text(chosen.family)].filter(Boolean).join(" ");
	return whole || text(chosen.text);
}

function periodStart(name: Json): string {
	return (isObject(name.period) ? text(name.period.start) : undefined) ?? "";
}

function display(reference: unknown): string | undefined {
	return isObject(reference) ? text(reference.display) : undefined;
}

/** The ISO date-time a resource happened at, from the first of the fields that has one. */
function firstDate(resource: Json, fields: string[]): string | undefined {
	for (const field of fields) {
		const value = resource[field];
		const found = text(value) ?? (isObject(value) ? text(value.start) : undefined);
		if (found) return found;
	}
	return undefined;
}

/** Newest first; undated entries last. ISO 8601 strings sort correctly as text. */
function newestFirst<T>(items: T[], date: (item: T) => string | undefined): T[] {
	return [...items].sort((a, b) => (date(b) ?? "").localeCompare(date(a) ?? ""));
}

/** One entry per key: the first of each, in order. */
function unique<T>(items: T[], keys: (item: T) => string[]): T[] {
	const seen = new Set<string>();
	return items.filter((item) => {
		const own = keys(item);
		const fresh = !own.some((k) => seen.has(k));
		for (const k of own) seen.add(k);
		return fresh;
	});
}

/** What a condition is, for spotting the same one twice: every coding, else its words. */
function conditionKeys(condition: Json): string[] {
	const coded = codings(condition.code).flatMap((c) => (text(c.code) ? [`${c.system}|${c.code}`] : []));
	return coded.length ? coded : [`text:${conceptText(condition.code)?.toLowerCase()}`];
}

/**
 * The active problem list: problem-list items and health concerns (and
 * conditions with no category) whose clinicalStatus is active, recurrence or
 * relapse, or missing (athena leaves most out). Past visit diagnoses,
 * conditions entered in error or refuted, inactive, resolved or in remission
 * are not active problems. One line per condition, by code else by text.
 */
export function activeProblems(resources: Json[]): Problem[] {
	const active = resources.filter((r) => {
		const categories = list(r.category).flatMap(codes);
		const listed =
			categories.length === 0 || categories.includes("problem-list-item") || categories.includes("health-concern");
		const verification = codes(r.verificationStatus);
		const status = codes(r.clinicalStatus);
		return (
			listed &&
			!verification.includes("entered-in-error") &&
			!verification.includes("refuted") &&
			(status.length === 0 || status.some((s) => s === "active" || s === "recurrence" || s === "relapse"))
		);
	});
	// Oldest onset first, undated last: of a condition recorded twice, the line kept says since when.
	const onset = (r: Json) => firstDate(r, ["onsetDateTime", "recordedDate"]) ?? "~";
	const oldestFirst = [...active].sort((a, b) => (onset(a) < onset(b) ? -1 : onset(a) > onset(b) ? 1 : 0));
	return unique(oldestFirst, conditionKeys).map((r) => ({
		name: conceptText(r.code) ?? "Unnamed condition",
		since: firstDate(r, ["onsetDateTime"]),
	}));
}

function refuted(resource: Json): boolean {
	const verification = codes(resource.verificationStatus);
	return verification.includes("entered-in-error") || verification.includes("refuted");
}

/** Active allergies; a reaction without words is left out rather than shown as a code. */
export function allergies(resources: Json[]): AllergyItem[] {
	return resources
		.filter((r) => !refuted(r) && codes(r.clinicalStatus).every((s) => s === "active"))
		.map((r) => ({
			substance: conceptText(r.code) ?? "Unnamed allergy",
			reactions: [
				...new Set(
					objects(r.reaction)
						.flatMap((reaction) => list(reaction.manifestation).map(conceptText))
						.filter((t): t is string => t !== undefined),
				),
			],
		}));
}

/** Medication requests that are active or on hold; completed and stopped ones are history. */
export function currentMedications(resources: Json[]): MedicationItem[] {
	return resources
		.filter((r) => r.status === undefined || r.status === "active" || r.status === "on-hold")
		.map((r) => ({
			name: conceptText(r.medicationCodeableConcept) ?? display(r.medicationReference) ?? "Unnamed medication",
			instructions: objects(r.dosageInstruction)
				.map((d) => text(d.text))
				.find(Boolean),
		}));
}

export function immunizations(resources: Json[]): ImmunizationItem[] {
	return newestFirst(
		resources
			.filter((r) => r.status !== "entered-in-error" && r.status !== "not-done")
			.map((r) => ({
				vaccine: conceptText(r.vaccineCode) ?? "Unnamed vaccine",
				date: firstDate(r, ["occurrenceDateTime", "recorded"]),
			})),
		(i) => i.date,
	);
}

/** Visits newest first, each with its diagnoses from the encounter-diagnosis Conditions that name it. */
export function visits(encounters: Json[], conditions: Json[]): EncounterItem[] {
	const diagnoses = new Map<string, string[]>();
	for (const c of conditions) {
		const reference = isObject(c.encounter) ? text(c.encounter.reference) : undefined;
		const name = conceptText(c.code);
		if (!reference || !name || refuted(c)) continue;
		diagnoses.set(reference, [...new Set([...(diagnoses.get(reference) ?? []), name])]);
	}
	const items = encounters
		.filter((r) => r.status !== "entered-in-error" && r.status !== "cancelled")
		.map((r) => ({
			type:
				list(r.type).map(conceptText).find(Boolean) ??
				(isObject(r.class) && r.class.code === "VR" ? "Virtual visit" : "Visit"),
			date: firstDate(r, ["period"]),
			practitioner: objects(r.participant)
				.map((p) => display(p.individual))
				.find(Boolean),
			diagnoses: diagnoses.get(`Encounter/${r.id}`) ?? [],
		}));
	return newestFirst(items, (e) => e.date);
}

/** Base64 text (FHIR attachment `data`) as UTF-8. */
export function decodeBase64(data: string): Uint8Array | undefined {
	try {
		return Uint8Array.from(atob(data), (c) => c.charCodeAt(0));
	} catch {
		return undefined;
	}
}

const RESULT_GONE = new Set(["entered-in-error", "cancelled"]);

/** Reports that are not lab panels (the lab table shows those), newest first, with their plain text. */
export function otherReports(resources: Json[]): ReportItem[] {
	const items = resources
		.filter((r) => !RESULT_GONE.has(String(r.status)) && !list(r.category).flatMap(codes).includes("LAB"))
		.map((r) => {
			const form = objects(r.presentedForm).find((a) => String(a.contentType).startsWith("text/plain"));
			const bytes = typeof form?.data === "string" ? decodeBase64(form.data) : undefined;
			return {
				name: conceptText(r.code) ?? "Report",
				category: list(r.category).map(conceptText).find(Boolean),
				date: firstDate(r, ["effectiveDateTime", "effectivePeriod", "issued"]),
				text: bytes ? text(new TextDecoder().decode(bytes)) : undefined,
			};
		});
	return newestFirst(items, (r) => r.date);
}

export function documents(resources: Json[]): DocumentItem[] {
	return newestFirst(
		resources
			.filter((r) => r.status !== "entered-in-error")
			.map((r) => {
				const attachments = objects(r.content)
					.map((c) => c.attachment)
					.filter(isObject);
				return {
					id: String(r.id),
					title: text(attachments[0]?.title) ?? conceptText(r.type) ?? text(r.description) ?? "Note",
					date: text(r.date) ?? firstDate(isObject(r.context) ? r.context : {}, ["period"]),
					// athena withholds notes not released to the portal: no data, a data-absent-reason instead.
					released: attachments.some((a) => typeof a.data === "string"),
				};
			}),
		(d) => d.date,
	);
}

function round(value: number, places = 2): number {
	const scale = 10 ** places;
	return Math.round(value * scale) / scale;
}

/** A UCUM unit as people write it; athena's bare lab units pass through. */
export function readableUnit(unit: string): string {
	return UNITS[unit] ?? unit;
}

function quantity(value: unknown): { value: number; unit: string } | undefined {
	if (!isObject(value) || typeof value.value !== "number" || !Number.isFinite(value.value)) return undefined;
	return { value: value.value, unit: text(value.unit) ?? text(value.code) ?? "" };
}

/** A mass in pounds (athena sends body weight in grams). */
function pounds(q: { value: number; unit: string }): number | undefined {
	const factor: Record<string, number> = { g: 1 / POUND_GRAMS, kg: 1000 / POUND_GRAMS, "[lb_av]": 1, lb: 1 };
	const f = factor[q.unit];
	return f === undefined ? undefined : q.value * f;
}

interface Reading {
	at: string;
	shown: string;
	numbers: number[];
	range: string | undefined;
	flag: string | undefined;
	unit: string;
}

function rangeText(resource: Json): string | undefined {
	const range = objects(resource.referenceRange)[0];
	if (!range) return undefined;
	const low = quantity(range.low);
	const high = quantity(range.high);
	const unit = readableUnit(high?.unit ?? low?.unit ?? "");
	const bounds = low && high ? `${low.value}–${high.value}` : low ? `≥ ${low.value}` : high ? `≤ ${high.value}` : "";
	return text(range.text) ?? text(`${bounds} ${bounds ? unit : ""}`);
}

function flagText(resource: Json): string | undefined {
	const concept = list(resource.interpretation)[0];
	const shown =
		conceptText(concept) ??
		codes(concept)
			.map((c) => FLAGS[c])
			.find(Boolean);
	return shown === "Normal" || shown === "N" ? undefined : shown;
}

/**
 * One observation's value as a patient reads it, or undefined when it has
 * none (pending, data-absent). A `valueString` is shown as athena wrote it; if
 * it is a bare number (athena sends some numeric results as strings, "5.4 %")
 * it still counts toward the trend.
 */
function reading(resource: Json, vital: string | undefined, at: string): Reading | undefined {
	const base = { at, range: rangeText(resource), flag: flagText(resource) };
	if (vital === LOINC_BLOOD_PRESSURE) {
		const part = (loinc: string) =>
			quantity(objects(resource.component).find((c) => codes(c.code).includes(loinc))?.valueQuantity);
		const [systolic, diastolic] = [part(LOINC_SYSTOLIC), part(LOINC_DIASTOLIC)];
		if (!systolic || !diastolic) return undefined;
		const unit = readableUnit(systolic.unit);
		return {
			...base,
			shown: `${systolic.value}/${diastolic.value} ${unit}`,
			numbers: [systolic.value, diastolic.value],
			unit,
		};
	}
	const q = quantity(resource.valueQuantity);
	if (q) {
		const lb = vital === LOINC_WEIGHT ? pounds(q) : undefined;
		if (lb !== undefined) {
			return {
				...base,
				shown: `${round(lb, 1)} lb (${round(lb / 2.20462262, 1)} kg)`,
				numbers: [round(lb, 1)],
				unit: "lb",
			};
		}
		const unit = readableUnit(q.unit);
		return { ...base, shown: `${round(q.value)}${unit ? ` ${unit}` : ""}`, numbers: [q.value], unit };
	}
	const said = text(resource.valueString) ?? conceptText(resource.valueCodeableConcept);
	if (said === undefined) return undefined;
	const number = /^(-?\d+(?:\.\d+)?)(?:\s*(\S+))?$/.exec(said);
	return { ...base, shown: said, numbers: number ? [Number(number[1])] : [], unit: readableUnit(number?.[2] ?? "") };
}

/**
 * Observations as one row per test or vital sign: the newest reading, its
 * range and flag, and the numeric history. Results entered in error or
 * cancelled are never shown, nor ones with no value yet. Tests are grouped by
 * code; a text-only result (athena sends some) joins the coded test of the
 * same name. LOINC's bracketed property ("[Mass/volume]") is dropped from names.
 */
export function resultRows(resources: Json[], kind: "lab" | "vital"): ResultRow[] {
	const groups = new Map<string, { name: string; readings: Reading[] }>();
	const byName = new Map<string, string>();
	const coded = (r: Json) => codings(r.code).find((c) => text(c.code));
	// Coded results first, so a text-only one can find its coded test by name.
	const ordered = [...resources].sort((a, b) => Number(!coded(a)) - Number(!coded(b)));
	for (const r of ordered) {
		if (RESULT_GONE.has(String(r.status)) || r.status === "registered") continue;
		const at = firstDate(r, ["effectiveDateTime", "effectivePeriod", "issued"]);
		const name = conceptText(r.code);
		const code = coded(r);
		const vital = kind === "vital" ? codes(r.code).find((c) => VITAL_NAMES[c]) : undefined;
		if (!at || !name || (kind === "vital" && !vital)) continue;
		const value = reading(r, vital, at);
		if (!value) continue;
		const lower = name.toLowerCase();
		const key = vital ?? (code ? `${code.system}|${code.code}` : (byName.get(lower) ?? `text|${lower}`));
		const group = groups.get(key) ?? { name: vital ? (VITAL_NAMES[vital] ?? name) : name, readings: [] };
		groups.set(key, group);
		if (!byName.has(lower)) byName.set(lower, key);
		group.readings.push(value);
	}
	const rows = [...groups].map(([key, { name, readings }]) => {
		readings.sort((a, b) => a.at.localeCompare(b.at));
		const latest = readings[readings.length - 1] as Reading;
		const counted = readings.filter((r) => r.numbers.length && r.unit === latest.unit);
		return {
			key,
			name: name.replace(/\s*\[[^\]]*\]/g, ""),
			latest: latest.shown,
			at: latest.at,
			range: latest.range,
			flag: latest.flag,
			series: (key === LOINC_BLOOD_PRESSURE ? [0, 1] : [0]).map((i) =>
				counted.map((r) => ({ at: r.at, value: r.numbers[i] as number })),
			),
			unit: latest.unit,
		};
	});
	if (kind === "vital") {
		const order = Object.keys(VITAL_NAMES);
		return rows.sort((a, b) => order.indexOf(a.key) - order.indexOf(b.key));
	}
	return rows.sort((a, b) => b.at.slice(0, 10).localeCompare(a.at.slice(0, 10)) || a.name.localeCompare(b.name));
}
