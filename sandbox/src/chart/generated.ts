/*
 * A chart's bulk of Observations, made by index instead of held: the large
 * test record (users.ts LARGE_RECORD) has more than 100,000, which a Worker
 * isolate (128 MB) must not keep as objects. Resource `i` is a pure function
 * of the chart and `i`, so a search page is made on demand from its cursor,
 * and an id names its index: `a-{practice}.vitals-{n}` or
 * `a-{practice}.resultamb-{n}` with n = ID_BASE + i, above any number the
 * ordinary charts use.
 *
 * Every visit day holds VISIT_SIZE of them: the seven vital signs (LOINC and
 * UCUM, date only, weight in grams, blood pressure as components, a few with
 * a dataAbsentReason), then lab results (athena's codes, text-only ones,
 * bare units, strings, text ranges, some entered-in-error), the days spread
 * evenly over the profile's years.
 */

import { labValue } from "./build";
import type { ChartProfile } from "./people";
import { chartSharingGroupReference, practiceReference } from "./practice";
import { seededRandom } from "./random";
import { concept, type FhirResource, type ResourceSequence } from "./resource";
import {
	BLOOD_PRESSURE_PARTS,
	EXTENSION,
	LAB_PANELS,
	type LabTest,
	SYSTEM,
	VITALS,
	type VitalName,
} from "./vocabulary";

const ID_BASE = 1_000_000;
const VITAL_ORDER: readonly VitalName[] = [
	"bloodPressure",
	"weight",
	"height",
	"bmi",
	"temperature",
	"heartRate",
	"oxygen",
];
const LABS_PER_VISIT = 13;
const VISIT_SIZE = VITAL_ORDER.length + LABS_PER_VISIT;
/** Every test of every panel, in vocabulary order; a visit takes the next LABS_PER_VISIT of them. */
const LAB_TESTS: readonly LabTest[] = Object.values(LAB_PANELS).flatMap((panel) => panel.tests);
const DAY_MS = 86_400_000;
const HOUR_MS = 3_600_000;
const POUND_GRAMS = 453.59237;

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const instant = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;

/** Whether position `index` of a visit is a vital sign (the rest are lab results). */
const isVital = (index: number) => index % VISIT_SIZE < VITAL_ORDER.length;
const kindOf = (index: number) => (isVital(index) ? "vitals" : "resultamb");

/**
 * The generated Observations of one chart, each made afresh when asked for.
 *
 * @example
 * const observations = generatedObservations(profile, 110_000);
 * observations.at(7)?.id; // "a-80000.resultamb-1000007"
 * observations.indexOf("a-80000.resultamb-1000007"); // 7
 */
export function generatedObservations(profile: ChartProfile, count: number): ResourceSequence {
	const { practice } = profile;
	const subject = { reference: `Patient/${profile.patient}` };
	const extension = [
		{ url: EXTENSION.practice, valueReference: { reference: practiceReference(practice) } },
		{ url: EXTENSION.chartSharingGroup, valueReference: { reference: chartSharingGroupReference(practice) } },
	];
	const visits = Math.ceil(count / VISIT_SIZE);
	const from = Date.parse(`${profile.from}T00:00:00Z`);
	const days = Math.max(1, (Date.parse(`${profile.to}T00:00:00Z`) - from) / DAY_MS);
	const idOf = (index: number) => `a-${practice}.${kindOf(index)}-${ID_BASE + index}`;
	const pattern = new RegExp(`^a-${practice}\\.(?:vitals|resultamb)-(\\d+)$`);

	const make = (index: number): FhirResource => {
		const visit = Math.floor(index / VISIT_SIZE);
		const position = index % VISIT_SIZE;
		const dayStart = from + Math.floor((visit * days) / visits) * DAY_MS;
		// One source per resource: any page can be made alone and is the same every time.
		const random = seededRandom(profile.seed * 1_000_003 + index);
		const common = { resourceType: "Observation", id: idOf(index), extension };
		const vital = VITAL_ORDER[position];
		if (vital !== undefined) {
			const { code, display } = VITALS[vital];
			return {
				...common,
				status: "final",
				category: [concept([{ system: SYSTEM.observationCategory, code: "vital-signs", display: "Vital Signs" }])],
				code: concept([{ system: SYSTEM.loinc, code, display }]),
				subject,
				// athena records vitals by date only.
				effectiveDateTime: day(dayStart),
				...(random.next() < 0.01
					? {
							dataAbsentReason: concept([
								{ system: SYSTEM.dataAbsentReason, code: "not-performed", display: "Not Performed" },
							]),
						}
					: vitalValue(vital, profile, visit / visits, random)),
			};
		}
		const test = LAB_TESTS[(visit * LABS_PER_VISIT + position - VITAL_ORDER.length) % LAB_TESTS.length];
		if (!test) throw new Error("the vocabulary has no lab tests");
		const at = dayStart + (13 + (visit % 8)) * HOUR_MS;
		return {
			...common,
			status: random.next() < 0.03 ? "entered-in-error" : "final",
			category: [concept([{ system: SYSTEM.observationCategory, code: "laboratory", display: "Laboratory" }])],
			code: test.code
				? concept([{ system: SYSTEM.loinc, code: test.code, display: test.display }])
				: { text: test.display },
			subject,
			effectiveDateTime: instant(at),
			issued: instant(at + 26 * HOUR_MS),
			...labValue(test, random),
		};
	};

	return {
		length: count,
		at: (index) => (Number.isInteger(index) && index >= 0 && index < count ? make(index) : undefined),
		indexOf: (id) => {
			const number = pattern.exec(id)?.[1];
			if (number === undefined) return -1;
			const index = Number(number) - ID_BASE;
			// The id must be exactly the one made there: right kind, no leading zeros.
			return index >= 0 && index < count && idOf(index) === id ? index : -1;
		},
	};
}

/** A vital sign's value at `progress` (0 to 1) through the chart's years: weight drifts, height stays. */
function vitalValue(
	vital: VitalName,
	profile: ChartProfile,
	progress: number,
	random: ReturnType<typeof seededRandom>,
): Record<string, unknown> {
	const { unit } = VITALS[vital];
	const quantity = (value: number) => ({ valueQuantity: { value, unit, system: SYSTEM.ucum, code: unit } });
	const pounds = profile.weightLb[0] + (profile.weightLb[1] - profile.weightLb[0]) * progress + random.next() * 3 - 1.5;
	const grams = Math.round(pounds * POUND_GRAMS * 100) / 100;
	switch (vital) {
		case "bloodPressure":
			return {
				component: [
					{
						code: concept([{ system: SYSTEM.loinc, ...BLOOD_PRESSURE_PARTS.systolic }]),
						...quantity(random.int(112, 150)),
					},
					{
						code: concept([{ system: SYSTEM.loinc, ...BLOOD_PRESSURE_PARTS.diastolic }]),
						...quantity(random.int(68, 94)),
					},
				],
			};
		case "weight":
			return quantity(grams);
		case "height":
			return quantity(profile.heightCm);
		case "bmi":
			return quantity(Math.round((grams / 1000 / (profile.heightCm / 100) ** 2) * 10) / 10);
		case "temperature":
			return quantity(random.decimal(97.2, 99.1, 1));
		case "heartRate":
			return quantity(random.int(56, 92));
		case "oxygen":
			return quantity(random.int(93, 99));
	}
}
