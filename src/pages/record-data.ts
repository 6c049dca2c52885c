/**
 * What the record page shows, pulled out of FHIR R4 resources. Pure functions
 * over parsed JSON: no network, no `env`. Every field is optional in practice
 * (athena leaves out what a practice did not record), so each reader falls
 * back to "not recorded" rather than throwing.
 */

type Json = Record<string, unknown>;

export interface Coding {
	system?: string;
	code?: string;
	display?: string;
}

/** One dated numeric value. `at` is an ISO date or date-time. */
export interface Point {
	at: string;
	value: number;
}

/** A measurement over time, e.g. HbA1c in %. */
export interface Series {
	/** Stable key: the LOINC code when there is one, else the name. */
	key: string;
	name: string;
	unit: string;
	points: Point[];
}

export interface AllergyItem {
	substance: string;
	reactions: string[];
	status: string | undefined;
}

export interface ConditionItem {
	name: string;
	onset: string | undefined;
}

export interface MedicationItem {
	name: string;
	instructions: string | undefined;
	authoredOn: string | undefined;
}

export interface ImmunizationItem {
	vaccine: string;
	date: string | undefined;
}

export interface EncounterItem {
	type: string;
	date: string | undefined;
	practitioner: string | undefined;
}

export interface DocumentItem {
	title: string;
	date: string | undefined;
	/** False when athena marks the content with a data-absent-reason (not released to the portal). */
	released: boolean;
}

/** LOINC codes of the blood pressure panel's components, charted together (US Core vital signs profile). */
export const LOINC_SYSTOLIC = "8480-6";
export const LOINC_DIASTOLIC = "8462-4";

function isObject(value: unknown): value is Json {
	return typeof value === "object" && value !== null && !Array.isArray(value);
}

function list(value: unknown): unknown[] {
	return Array.isArray(value) ? value : [];
}

function text(value: unknown): string | undefined {
	return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function codings(concept: unknown): Coding[] {
	if (!isObject(concept)) return [];
	return list(concept.coding).filter(isObject) as Coding[];
}

/** A CodeableConcept as a person reads it: its text, else the first coding's display, else its code. */
export function conceptText(concept: unknown): string | undefined {
	if (!isObject(concept)) return undefined;
	const first = codings(concept).find((c) => text(c.display) ?? text(c.code));
	return text(concept.text) ?? text(first?.display) ?? text(first?.code);
}

function loincCode(concept: unknown): string | undefined {
	return codings(concept).find((c) => c.system === "http://loinc.org" && text(c.code))?.code;
}

/** The resources of a searchset Bundle, only those of `type` (athena may add OperationOutcome entries). */
export function bundleResources(bundle: unknown, type: string): Json[] {
	if (!isObject(bundle)) return [];
	return list(bundle.entry)
		.map((entry) => (isObject(entry) ? entry.resource : undefined))
		.filter((resource): resource is Json => isObject(resource) && resource.resourceType === type);
}

/** The next page's URL of a searchset Bundle, if there is one. */
export function nextLink(bundle: unknown): string | undefined {
	if (!isObject(bundle)) return undefined;
	const next = list(bundle.link).find((link) => isObject(link) && link.relation === "next");
	return isObject(next) ? text(next.url) : undefined;
}

/** A HumanName list as "Given Family", preferring the official name. */
export function personName(names: unknown): string | undefined {
	const all = list(names).filter(isObject);
	const chosen = all.find((n) => n.use === "official") ?? all[0];
	if (!chosen) return undefined;
	const given = list(chosen.given).map(text).filter(Boolean).join(" ");
	const whole = [given, text(chosen.family)].filter(Boolean).join(" ");
	return whole || text(chosen.text);
}

function referenceDisplay(reference: unknown): string | undefined {
	return isObject(reference) ? text(reference.display) : undefined;
}

/** The ISO date-time a resource happened at, from the first of the fields that has one. */
function firstDate(resource: Json, fields: string[]): string | undefined {
	for (const field of fields) {
		const value = resource[field];
		if (text(value)) return text(value);
		if (isObject(value) && text(value.start)) return text(value.start);
	}
	return undefined;
}

/** Newest first; undated entries last. ISO 8601 strings sort correctly as text. */
function newestFirst<T>(items: T[], date: (item: T) => string | undefined): T[] {
	return [...items].sort((a, b) => (date(b) ?? "").localeCompare(date(a) ?? ""));
}

export function allergies(resources: Json[]): AllergyItem[] {
	return resources.map((r) => ({
		substance: conceptText(r.code) ?? "Unnamed allergy",
		reactions: list(r.reaction)
			.filter(isObject)
			.flatMap((reaction) => list(reaction.manifestation).map(conceptText))
			.filter((t): t is string => t !== undefined),
		status: conceptText(r.clinicalStatus),
	}));
}

/** Conditions still active: clinicalStatus `active`, `recurrence` or `relapse` (FHIR R4 condition-clinical), or none given. */
export function activeConditions(resources: Json[]): ConditionItem[] {
	const active = resources.filter((r) => {
		const status = codings(r.clinicalStatus).map((c) => c.code);
		return status.length === 0 || status.some((s) => s === "active" || s === "recurrence" || s === "relapse");
	});
	return newestFirst(
		active.map((r) => ({ name: conceptText(r.code) ?? "Unnamed condition", onset: firstDate(r, ["onsetDateTime"]) })),
		(c) => c.onset,
	);
}

/** Medication requests that are active or on hold; completed and stopped ones are history. */
export function currentMedications(resources: Json[]): MedicationItem[] {
	return resources
		.filter((r) => r.status === undefined || r.status === "active" || r.status === "on-hold")
		.map((r) => ({
			name: conceptText(r.medicationCodeableConcept) ?? referenceDisplay(r.medicationReference) ?? "Unnamed medication",
			instructions: list(r.dosageInstruction)
				.filter(isObject)
				.map((d) => text(d.text))
				.find(Boolean),
			authoredOn: text(r.authoredOn),
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

/** The `limit` most recent encounters. */
export function recentEncounters(resources: Json[], limit: number): EncounterItem[] {
	const items = resources.map((r) => ({
		type:
			list(r.type).map(conceptText).find(Boolean) ??
			conceptText(r.class) ??
			text(isObject(r.class) ? r.class.display : undefined) ??
			"Visit",
		date: firstDate(r, ["period"]),
		practitioner: list(r.participant)
			.filter(isObject)
			.map((p) => referenceDisplay(p.individual))
			.find(Boolean),
	}));
	return newestFirst(items, (e) => e.date).slice(0, limit);
}

export function documents(resources: Json[]): DocumentItem[] {
	return newestFirst(
		resources.map((r) => {
			const attachments = list(r.content)
				.filter(isObject)
				.map((c) => c.attachment)
				.filter(isObject);
			const first = attachments[0];
			// athena marks documents not released to the portal with a data-absent-reason on the attachment's data.
			const absent =
				attachments.length === 0 ||
				attachments.every((a) => isObject(a._data) && a.data === undefined && a.url === undefined);
			return {
				title: text(first?.title) ?? conceptText(r.type) ?? text(r.description) ?? "Document",
				date: text(r.date) ?? firstDate(isObject(r.context) ? r.context : {}, ["period"]),
				released: !absent,
			};
		}),
		(d) => d.date,
	);
}

function quantityValue(value: unknown): { value: number; unit: string } | undefined {
	if (!isObject(value) || typeof value.value !== "number" || !Number.isFinite(value.value)) return undefined;
	return { value: value.value, unit: text(value.unit) ?? text(value.code) ?? "" };
}

/**
 * Numeric observations grouped into series, oldest point first. A blood
 * pressure panel becomes two series (systolic and diastolic) from its
 * components, keyed by their LOINC codes.
 */
export function observationSeries(resources: Json[]): Series[] {
	const byKey = new Map<string, Series>();
	const add = (key: string, name: string, unit: string, at: string, value: number) => {
		let series = byKey.get(key);
		if (!series) {
			series = { key, name, unit, points: [] };
			byKey.set(key, series);
		}
		series.points.push({ at, value });
	};
	for (const r of resources) {
		if (r.status === "entered-in-error" || r.status === "cancelled") continue;
		const at = firstDate(r, ["effectiveDateTime", "effectivePeriod", "issued"]);
		if (!at) continue;
		const single = quantityValue(r.valueQuantity);
		const name = conceptText(r.code) ?? "Measurement";
		if (single) {
			add(loincCode(r.code) ?? name, name, single.unit, at, single.value);
			continue;
		}
		for (const component of list(r.component).filter(isObject)) {
			const part = quantityValue(component.valueQuantity);
			const partName = conceptText(component.code);
			if (part && partName) add(loincCode(component.code) ?? partName, partName, part.unit, at, part.value);
		}
	}
	for (const series of byKey.values()) series.points.sort((a, b) => a.at.localeCompare(b.at));
	return [...byKey.values()];
}
