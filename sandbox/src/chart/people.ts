/*
 * Who each test record (users.ts RECORDS) is and how big a chart it gets.
 * The main record's counts follow what athena's preview answered for its
 * test patient (shared/athena-observed.md: Condition 43, Observation 491,
 * DiagnosticReport 46, DocumentReference 22, Encounter 12, ...); the others
 * are smaller charts of the same shape. The people are fictional; the SSNs
 * are in the 9xx area, which is never issued.
 */

import { type HealthRecord, LARGE_RECORD } from "../users";
import type { DiagnosisName, VaccineName, VitalName } from "./vocabulary";

export interface HumanName {
	use: "official" | "usual";
	family: string;
	given: string[];
	suffix?: string[];
	period?: { start: string; end?: string };
}

/** How many of each thing a chart holds. */
export interface ChartPlan {
	/** Encounters searches list. */
	visits: number;
	/** Of those, telehealth (class VR, no vitals). */
	virtualVisits: number;
	/** Encounters searches leave out (athena's recorded behaviour), readable directly. */
	hiddenVisits: ReadonlyArray<"cancelled" | "entered-in-error">;
	/** Encounter diagnoses spread over the visits, drawn from `diagnoses` (the first one at every visit). */
	encounterDiagnoses: number;
	diagnoses: readonly DiagnosisName[];
	problems: ReadonlyArray<{ diagnosis: DiagnosisName; status: "active" | "resolved" | "entered-in-error" }>;
	healthConcerns: readonly DiagnosisName[];
	/** Taken at every in-person visit. */
	vitals: readonly VitalName[];
	/** Vital signs sent with a dataAbsentReason instead of a value. */
	absentVitals: number;
	/** Tobacco smoking status observations (social-history), coded in SNOMED CT. */
	smokingStatus?: { count: number; code: string; display: string };
	labReports: number;
	labResults: number;
	labStatuses: { enteredInError: number; unknown: number; cancelled: number };
	/** Lab results with a text-only code, and with a `valueString`, in all. */
	textOnlyLabs: number;
	stringLabs: number;
	/**
	 * Results ordered but not yet in (status registered), counted by searches
	 * toward a page and then left out of it: a run of them makes athena's
	 * empty pages with a next link. Placed at this index of the Observation list.
	 */
	awaitingResults?: { at: number; count: number };
	otherReports: number;
	documents: { html: number; unreleased: number };
	allergies: readonly number[];
	vaccines: readonly VaccineName[];
	procedures: number;
	goals: number;
	devices: number;
	medications: readonly number[];
	/**
	 * Lab and vital-sign Observations made by index on demand (chart/generated.ts),
	 * searched after the chart's own: a chart far bigger than an isolate should hold.
	 */
	generatedObservations?: number;
}

export interface ChartProfile {
	patient: string;
	practice: string;
	seed: number;
	/** Start of this chart's id numbers; charts at one practice get ranges 10,000 apart. */
	idOffset: number;
	names: readonly HumanName[];
	gender: "male" | "female";
	birthDate: string;
	ssn?: string;
	email?: string;
	/** A dependent's parent, named as the Patient's contact. */
	guardian?: { given: string; family: string; relationship: string };
	/** The span the chart's visits fall in. */
	from: string;
	to: string;
	/** Pounds at the first visit and at the last; the chart drifts between them. */
	weightLb: [number, number];
	heightCm: number;
	/** Department index in the practice's directory (0 = first). */
	department: number;
}

/** Jake Medlock's names as athena recorded them: two official names, each with its period. */
const JAKE_NAMES: readonly HumanName[] = [
	{ use: "official", family: "Medlock", given: ["John"], period: { start: "2019-07-16", end: "2021-10-06" } },
	{ use: "official", family: "Medlock", given: ["Jake"], suffix: ["Ph.D."], period: { start: "2021-10-06" } },
];

const MAIN_PLAN: ChartPlan = {
	visits: 12,
	virtualVisits: 2,
	hiddenVisits: ["cancelled", "entered-in-error"],
	encounterDiagnoses: 35,
	diagnoses: ["hypertension", "diabetes", "hyperlipidemia", "lowBackPain", "vitaminD", "upperRespiratoryInfection"],
	problems: [
		{ diagnosis: "hypertension", status: "active" },
		{ diagnosis: "diabetes", status: "active" },
		{ diagnosis: "hyperlipidemia", status: "active" },
		{ diagnosis: "kneeArthritis", status: "active" },
		{ diagnosis: "bronchitis", status: "resolved" },
		{ diagnosis: "asthma", status: "entered-in-error" },
	],
	healthConcerns: ["obesity", "formerSmoker"],
	vitals: ["bloodPressure", "weight", "height", "bmi", "temperature", "heartRate", "oxygen"],
	absentVitals: 4,
	smokingStatus: { count: 2, code: "8517006", display: "Ex-smoker" },
	labReports: 38,
	labResults: 419,
	labStatuses: { enteredInError: 89, unknown: 12, cancelled: 11 },
	textOnlyLabs: 47,
	stringLabs: 92,
	awaitingResults: { at: 200, count: 50 },
	otherReports: 8,
	documents: { html: 8, unreleased: 14 },
	allergies: [0, 1, 2, 3],
	vaccines: ["flu", "covid", "pneumococcal", "zoster"],
	procedures: 6,
	goals: 10,
	devices: 5,
	medications: [0, 1, 2, 3, 4],
};

const PROFILES: Record<string, Omit<ChartProfile, "patient" | "practice">> = {
	"a-80000.E-14545": {
		seed: 14545,
		idOffset: 10_000,
		names: JAKE_NAMES,
		gender: "male",
		birthDate: "1952-01-28",
		ssn: "999-52-0128",
		email: "phrtest_preview@mailinator.com",
		from: "2019-08-05",
		to: "2026-05-20",
		weightLb: [206, 198],
		heightCm: 177.8,
		department: 0,
	},
	"a-195900.E-5112": {
		// The same man at a second practice: same name history and SSN, his own (shorter) chart there.
		seed: 5112,
		idOffset: 30_000,
		names: JAKE_NAMES,
		gender: "male",
		birthDate: "1952-01-28",
		ssn: "999-52-0128",
		email: "phrtest_preview@mailinator.com",
		from: "2023-02-01",
		to: "2025-11-15",
		weightLb: [201, 199],
		heightCm: 177.8,
		department: 0,
	},
	"a-80000.E-14600": {
		seed: 14600,
		idOffset: 20_000,
		names: [{ use: "official", family: "Medlock", given: ["Lily"] }],
		gender: "female",
		birthDate: "2017-03-14",
		guardian: { given: "Jake", family: "Medlock", relationship: "Father" },
		from: "2019-04-01",
		to: "2026-04-15",
		weightLb: [27, 62],
		heightCm: 128,
		department: 1,
	},
	"a-195900.E-3001": {
		seed: 3001,
		idOffset: 40_000,
		names: [{ use: "official", family: "Fixturepatient", given: ["Rowan"] }],
		gender: "male",
		birthDate: "1979-11-03",
		ssn: "999-79-1103",
		email: "sandbox_second@mailinator.com",
		from: "2021-01-10",
		to: "2026-03-30",
		weightLb: [172, 178],
		heightCm: 183,
		department: 0,
	},
	[LARGE_RECORD.patient]: {
		// Twenty years of results at one practice: the large record (users.ts LARGE_RECORD).
		seed: 17000,
		idOffset: 60_000,
		names: [{ use: "official", family: "Longchart", given: ["Avery"] }],
		gender: "female",
		birthDate: "1948-05-09",
		ssn: "999-48-0509",
		email: "sandbox_large@mailinator.com",
		from: "2006-01-09",
		to: "2026-05-29",
		weightLb: [164, 151],
		heightCm: 162.6,
		department: 0,
	},
};

const PLANS: Record<string, ChartPlan> = {
	"a-80000.E-14545": MAIN_PLAN,
	"a-195900.E-5112": {
		...MAIN_PLAN,
		visits: 3,
		virtualVisits: 0,
		hiddenVisits: [],
		encounterDiagnoses: 5,
		problems: [
			{ diagnosis: "hypertension", status: "active" },
			{ diagnosis: "prostate", status: "active" },
		],
		healthConcerns: ["formerSmoker"],
		absentVitals: 1,
		smokingStatus: { count: 1, code: "8517006", display: "Ex-smoker" },
		labReports: 4,
		labResults: 40,
		labStatuses: { enteredInError: 6, unknown: 1, cancelled: 1 },
		textOnlyLabs: 3,
		stringLabs: 8,
		awaitingResults: undefined,
		otherReports: 1,
		documents: { html: 1, unreleased: 2 },
		allergies: [0, 3],
		vaccines: ["flu"],
		procedures: 1,
		goals: 2,
		devices: 0,
		medications: [0, 2],
	},
	"a-80000.E-14600": {
		...MAIN_PLAN,
		visits: 5,
		virtualVisits: 1,
		hiddenVisits: ["cancelled"],
		encounterDiagnoses: 6,
		diagnoses: ["wellChild", "otitisMedia", "upperRespiratoryInfection", "mildAsthma"],
		problems: [{ diagnosis: "mildAsthma", status: "active" }],
		healthConcerns: ["allergicRhinitis"],
		vitals: ["weight", "height", "temperature", "heartRate"],
		absentVitals: 1,
		smokingStatus: undefined,
		labReports: 3,
		labResults: 12,
		labStatuses: { enteredInError: 2, unknown: 0, cancelled: 1 },
		textOnlyLabs: 2,
		stringLabs: 4,
		awaitingResults: undefined,
		otherReports: 0,
		documents: { html: 1, unreleased: 2 },
		allergies: [4],
		vaccines: ["hepB", "dtap", "polio", "pcv13", "mmr", "varicella", "hepA", "dtap", "flu", "covid"],
		procedures: 0,
		goals: 1,
		devices: 0,
		medications: [5],
	},
	"a-195900.E-3001": {
		...MAIN_PLAN,
		visits: 6,
		virtualVisits: 1,
		hiddenVisits: ["entered-in-error"],
		encounterDiagnoses: 8,
		diagnoses: ["allergicRhinitis", "migraine", "anxiety", "lowBackPain"],
		problems: [
			{ diagnosis: "migraine", status: "active" },
			{ diagnosis: "anxiety", status: "active" },
			{ diagnosis: "bronchitis", status: "resolved" },
		],
		healthConcerns: ["obesity"],
		absentVitals: 2,
		smokingStatus: { count: 1, code: "266919005", display: "Never smoked tobacco" },
		labReports: 6,
		labResults: 60,
		labStatuses: { enteredInError: 9, unknown: 2, cancelled: 2 },
		textOnlyLabs: 5,
		stringLabs: 12,
		awaitingResults: undefined,
		otherReports: 1,
		documents: { html: 2, unreleased: 2 },
		allergies: [1, 5],
		vaccines: ["flu", "tdap", "covid"],
		procedures: 2,
		goals: 2,
		devices: 1,
		medications: [4, 3, 5],
	},
	[LARGE_RECORD.patient]: {
		...MAIN_PLAN,
		diagnoses: ["hypertension", "hyperlipidemia", "kneeArthritis", "reflux", "upperRespiratoryInfection"],
		problems: [
			{ diagnosis: "hypertension", status: "active" },
			{ diagnosis: "hyperlipidemia", status: "active" },
			{ diagnosis: "kneeArthritis", status: "active" },
			{ diagnosis: "bronchitis", status: "resolved" },
		],
		healthConcerns: ["obesity"],
		smokingStatus: { count: 2, code: "266919005", display: "Never smoked tobacco" },
		generatedObservations: LARGE_RECORD.generatedObservations,
	},
};

/** A record added to users.ts without a profile here still gets a small chart. */
function fallbackProfile(record: HealthRecord, index: number): Omit<ChartProfile, "patient" | "practice"> {
	const enterpriseId = Number(record.patient.split(".E-")[1]) || index + 1;
	return {
		seed: enterpriseId,
		idOffset: 50_000 + index * 10_000,
		names: [{ use: "official", family: record.family, given: [record.given] }],
		gender: "female",
		birthDate: "1985-06-15",
		from: "2022-01-10",
		to: "2026-01-10",
		weightLb: [150, 154],
		heightCm: 165,
		department: 0,
	};
}

/** The profile and plan of one users.ts record. */
export function chartProfile(record: HealthRecord, index: number): { profile: ChartProfile; plan: ChartPlan } {
	const known = PROFILES[record.patient];
	const profile = { ...(known ?? fallbackProfile(record, index)), patient: record.patient, practice: record.practice };
	const plan = PLANS[record.patient] ?? PLANS["a-195900.E-5112"];
	if (!plan) throw new Error("the sandbox has no chart plan");
	return { profile, plan };
}
