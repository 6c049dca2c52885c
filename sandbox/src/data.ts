/*
 * Synthetic, deterministic, US Core-shaped records for the sandbox's test
 * patients. Everything is generated from a seeded PRNG and fixed dates, so
 * every run and every isolate serves identical data. The people are
 * fictional; no real person's data is used.
 */

import { JANE, ROWAN, type TestUser } from "./users";

export type FhirResource = { resourceType: string; id: string } & Record<string, unknown>;

/** A test login with what its record is generated from. */
export interface TestPatient extends TestUser {
	birthDate: string;
	gender: "female" | "male";
	seed: number;
}

/** The test logins (users.ts) with their synthetic records' seeds. */
export const TEST_PATIENTS: readonly TestPatient[] = [
	{ ...JANE, birthDate: "1968-04-12", gender: "female", seed: 14545 },
	{ ...ROWAN, birthDate: "1979-11-03", gender: "male", seed: 3001 },
];

export const practiceReference = (practiceId: string) => `Organization/a-1.Practice-${practiceId}`;

/** mulberry32: tiny, seedable, good enough for plausible vitals. */
function prng(seed: number): () => number {
	let a = seed >>> 0;
	return () => {
		a = (a + 0x6d2b79f5) >>> 0;
		let t = a;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

const LOINC = "http://loinc.org";
const SNOMED = "http://snomed.info/sct";
const RXNORM = "http://www.nlm.nih.gov/research/umls/rxnorm";
const CVX = "http://hl7.org/fhir/sid/cvx";
const UCUM = "http://unitsofmeasure.org";
const OBS_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category";
const DATA_ABSENT_REASON = "http://hl7.org/fhir/StructureDefinition/data-absent-reason";

/** Quarterly visits over six years, ending at a fixed date so data never drifts. */
const FIRST_VISIT = Date.UTC(2020, 0, 15, 15, 0, 0);
const VISITS = 24;

const codeable = (system: string, code: string, display: string) => ({
	coding: [{ system, code, display }],
	text: display,
});

const quantity = (value: number, unit: string, code: string) => ({
	value,
	unit,
	system: UCUM,
	code,
});

function toBase64(text: string): string {
	const bytes = new TextEncoder().encode(text);
	let binary = "";
	for (const b of bytes) binary += String.fromCharCode(b);
	return btoa(binary);
}

/** A tiny but well-formed one-page PDF, served raw by Binary reads. */
function samplePdf(title: string): Uint8Array {
	const content = `BT /F1 12 Tf 72 720 Td (${title}) Tj ET`;
	const objects = [
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		`<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	];
	let pdf = "%PDF-1.4\n";
	const offsets: number[] = [];
	objects.forEach((body, i) => {
		offsets.push(pdf.length);
		pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
	});
	const xref = pdf.length;
	pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
	for (const offset of offsets) pdf += `${String(offset).padStart(10, "0")} 00000 n \n`;
	pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
	return new TextEncoder().encode(pdf);
}

export interface BinaryContent {
	contentType: string;
	bytes: Uint8Array;
}

export interface PatientRecord {
	patient: TestPatient;
	/** Resources in the patient's compartment, by type, in a stable order. */
	byType: Map<string, FhirResource[]>;
	binaries: Map<string, BinaryContent>;
}

function buildRecord(p: TestPatient): PatientRecord {
	const random = prng(p.seed);
	const pref = `a-${p.practiceId}`;
	const subject = { reference: `Patient/${p.id}` };
	const practitioner = {
		reference: `Practitioner/${pref}.Provider-1`,
		display: "Sam Sandboxdoctor, MD",
	};
	const department = `Organization/${pref}.Department-1`;
	const byType = new Map<string, FhirResource[]>();
	const add = (resource: FhirResource) => {
		const list = byType.get(resource.resourceType) ?? [];
		list.push(resource);
		byType.set(resource.resourceType, list);
	};
	const binaries = new Map<string, BinaryContent>();

	add({
		resourceType: "Patient",
		id: p.id,
		meta: {
			profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-patient"],
		},
		identifier: [
			{
				system: `urn:oid:2.16.840.1.113883.3.564.${p.practiceId}`,
				value: p.id.split(".E-")[1],
			},
		],
		active: true,
		name: [{ use: "official", family: p.family, given: [p.given] }],
		telecom: [{ system: "email", value: p.username }],
		gender: p.gender,
		birthDate: p.birthDate,
		address: [
			{
				line: ["1 Synthetic Way"],
				city: "Testville",
				state: "MA",
				postalCode: "02000",
				country: "US",
			},
		],
		managingOrganization: { reference: practiceReference(p.practiceId) },
		generalPractitioner: [practitioner],
	});

	const conditions = [
		["38341003", "Hypertensive disorder", "2019-03-02"],
		["44054006", "Type 2 diabetes mellitus", "2020-06-18"],
		["55822004", "Hyperlipidemia", "2021-01-09"],
	] as const;
	conditions.forEach(([code, display, onset], i) => {
		add({
			resourceType: "Condition",
			id: `${pref}.Condition-${p.seed}-${i + 1}`,
			meta: {
				profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-condition-problems-health-concerns"],
			},
			clinicalStatus: codeable("http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active"),
			verificationStatus: codeable(
				"http://terminology.hl7.org/CodeSystem/condition-ver-status",
				"confirmed",
				"Confirmed",
			),
			category: [
				codeable("http://terminology.hl7.org/CodeSystem/condition-category", "problem-list-item", "Problem List Item"),
			],
			code: codeable(SNOMED, code, display),
			subject,
			onsetDateTime: onset,
			recordedDate: onset,
		});
	});

	const medications = [
		["314076", "lisinopril 10 MG Oral Tablet", "Take 1 tablet by mouth daily"],
		["860975", "metformin hydrochloride 500 MG Extended Release Oral Tablet", "Take 1 tablet by mouth with dinner"],
		["617318", "atorvastatin 20 MG Oral Tablet", "Take 1 tablet by mouth at bedtime"],
	] as const;
	medications.forEach(([code, display, sig], i) => {
		add({
			resourceType: "MedicationRequest",
			id: `${pref}.MedicationRequest-${p.seed}-${i + 1}`,
			meta: {
				profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-medicationrequest"],
			},
			status: "active",
			intent: "order",
			medicationCodeableConcept: codeable(RXNORM, code, display),
			subject,
			authoredOn: conditions[i]?.[2] ?? "2021-01-09",
			requester: practitioner,
			dosageInstruction: [{ text: sig }],
		});
	});

	const allergies = [
		["91936005", "Allergy to penicillin", "Hives"],
		["91935009", "Allergy to peanut", "Swelling of lips"],
	] as const;
	allergies.forEach(([code, display, reaction], i) => {
		add({
			resourceType: "AllergyIntolerance",
			id: `${pref}.AllergyIntolerance-${p.seed}-${i + 1}`,
			meta: {
				profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-allergyintolerance"],
			},
			clinicalStatus: codeable("http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active"),
			verificationStatus: codeable(
				"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
				"confirmed",
				"Confirmed",
			),
			code: codeable(SNOMED, code, display),
			patient: subject,
			reaction: [{ manifestation: [{ text: reaction }] }],
		});
	});

	for (let visit = 0; visit < VISITS; visit++) {
		const when = new Date(FIRST_VISIT + visit * 91 * 86_400_000).toISOString();
		const day = when.slice(0, 10);
		const encounterId = `${pref}.Encounter-${p.seed}-${visit + 1}`;
		add({
			resourceType: "Encounter",
			id: encounterId,
			meta: {
				profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-encounter"],
			},
			status: "finished",
			class: {
				system: "http://terminology.hl7.org/CodeSystem/v3-ActCode",
				code: "AMB",
				display: "ambulatory",
			},
			type: [codeable(SNOMED, "185349003", "Encounter for check up")],
			subject,
			participant: [{ individual: practitioner }],
			period: { start: when, end: when },
			serviceProvider: { reference: department },
		});
		const encounter = { reference: `Encounter/${encounterId}` };
		const vital = (n: string, code: string, display: string, extra: Record<string, unknown>) =>
			add({
				resourceType: "Observation",
				id: `${pref}.Observation-${p.seed}-${visit + 1}-${n}`,
				meta: {
					profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-vital-signs"],
				},
				status: "final",
				category: [codeable(OBS_CATEGORY, "vital-signs", "Vital Signs")],
				code: codeable(LOINC, code, display),
				subject,
				encounter,
				effectiveDateTime: when,
				...extra,
			});
		const systolic = Math.round(122 + random() * 24);
		const diastolic = Math.round(74 + random() * 14);
		vital("bp", "85354-9", "Blood pressure panel with all children optional", {
			component: [
				{
					code: codeable(LOINC, "8480-6", "Systolic blood pressure"),
					valueQuantity: quantity(systolic, "mmHg", "mm[Hg]"),
				},
				{
					code: codeable(LOINC, "8462-4", "Diastolic blood pressure"),
					valueQuantity: quantity(diastolic, "mmHg", "mm[Hg]"),
				},
			],
		});
		const weight = Math.round((p.gender === "female" ? 74 : 88) * 10 + (random() - 0.5) * 60) / 10;
		vital("wt", "29463-7", "Body weight", {
			valueQuantity: quantity(weight, "kg", "kg"),
		});
		vital("hr", "8867-4", "Heart rate", {
			valueQuantity: quantity(Math.round(62 + random() * 22), "/min", "/min"),
		});

		if (visit % 2 === 1) {
			const labIds: string[] = [];
			const lab = (n: string, code: string, display: string, value: number, unit: string, ucum: string) => {
				const id = `${pref}.Observation-${p.seed}-${visit + 1}-${n}`;
				labIds.push(id);
				add({
					resourceType: "Observation",
					id,
					meta: {
						profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-observation-lab"],
					},
					status: "final",
					category: [codeable(OBS_CATEGORY, "laboratory", "Laboratory")],
					code: codeable(LOINC, code, display),
					subject,
					encounter,
					effectiveDateTime: when,
					valueQuantity: quantity(value, unit, ucum),
				});
			};
			lab("a1c", "4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", Math.round(60 + random() * 25) / 10, "%", "%");
			lab(
				"ldl",
				"13457-7",
				"Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation",
				Math.round(90 + random() * 60),
				"mg/dL",
				"mg/dL",
			);
			add({
				resourceType: "DiagnosticReport",
				id: `${pref}.DiagnosticReport-${p.seed}-${visit + 1}`,
				meta: {
					profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-diagnosticreport-lab"],
				},
				status: "final",
				category: [codeable("http://terminology.hl7.org/CodeSystem/v2-0074", "LAB", "Laboratory")],
				code: codeable(LOINC, "24331-1", "Lipid and glycemic panel"),
				subject,
				encounter,
				effectiveDateTime: when,
				issued: when,
				result: labIds.map((id) => ({ reference: `Observation/${id}` })),
			});
		}
		if (visit % 4 === 3) {
			add({
				resourceType: "Immunization",
				id: `${pref}.Immunization-${p.seed}-${visit + 1}`,
				meta: {
					profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-immunization"],
				},
				status: "completed",
				vaccineCode: codeable(CVX, "158", "influenza, injectable, quadrivalent"),
				patient: subject,
				encounter,
				occurrenceDateTime: day,
				primarySource: true,
			});
		}
	}

	// Documents: one inline (athena's usual shape), one behind a Binary URL,
	// one not released to the portal, which athena marks with data-absent-reason.
	const visitNote = `Visit note for ${p.given} ${p.family} (synthetic sandbox data).\nBlood pressure reviewed. Continue current medications.\n`;
	const pdfId = `${pref}.Binary-${p.seed}-2`;
	binaries.set(pdfId, {
		contentType: "application/pdf",
		bytes: samplePdf("Sandbox lab summary (synthetic)"),
	});
	const documents: Array<[string, string, Record<string, unknown>]> = [
		["2025-10-14", "Progress note", { contentType: "text/plain", data: toBase64(visitNote) }],
		["2025-11-02", "Lab summary", { contentType: "application/pdf", url: `Binary/${pdfId}` }],
		[
			"2026-01-20",
			"Unreleased result note",
			{
				contentType: "text/plain",
				_data: {
					extension: [{ url: DATA_ABSENT_REASON, valueCode: "masked" }],
				},
			},
		],
	];
	documents.forEach(([date, title, attachment], i) => {
		add({
			resourceType: "DocumentReference",
			id: `${pref}.DocumentReference-${p.seed}-${i + 1}`,
			meta: {
				profile: ["http://hl7.org/fhir/us/core/StructureDefinition/us-core-documentreference"],
			},
			status: "current",
			type: codeable(LOINC, "11506-3", title),
			category: [
				codeable(
					"http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
					"clinical-note",
					"Clinical Note",
				),
			],
			subject,
			date: `${date}T12:00:00Z`,
			author: [practitioner],
			content: [{ attachment: { title, ...attachment } }],
		});
	});

	add({
		resourceType: "Procedure",
		id: `${pref}.Procedure-${p.seed}-1`,
		status: "completed",
		code: codeable(SNOMED, "73761001", "Colonoscopy"),
		subject,
		performedDateTime: "2022-05-10",
	});
	add({
		resourceType: "Goal",
		id: `${pref}.Goal-${p.seed}-1`,
		lifecycleStatus: "active",
		description: { text: "Keep HbA1c below 7%" },
		subject,
	});
	add({
		resourceType: "CarePlan",
		id: `${pref}.CarePlan-${p.seed}-1`,
		status: "active",
		intent: "plan",
		category: [
			codeable("http://hl7.org/fhir/us/core/CodeSystem/careplan-category", "assess-plan", "Assessment and Plan"),
		],
		subject,
		text: {
			status: "generated",
			div: '<div xmlns="http://www.w3.org/1999/xhtml">Diet and exercise; recheck labs in 6 months.</div>',
		},
	});
	add({
		resourceType: "CareTeam",
		id: `${pref}.CareTeam-${p.seed}-1`,
		status: "active",
		subject,
		participant: [{ member: practitioner }],
	});
	add({
		resourceType: "Coverage",
		id: `${pref}.Coverage-${p.seed}-1`,
		status: "active",
		beneficiary: subject,
		payor: [{ display: "Synthetic Health Plan" }],
	});
	add({
		resourceType: "ServiceRequest",
		id: `${pref}.ServiceRequest-${p.seed}-1`,
		status: "active",
		intent: "order",
		code: codeable(LOINC, "4548-4", "Hemoglobin A1c"),
		subject,
		authoredOn: "2026-01-20",
	});
	return { patient: p, byType, binaries };
}

/** Practice-level resources: visible to any patient of that practice. */
export function practiceResources(practiceId: string): FhirResource[] {
	const pref = `a-${practiceId}`;
	return [
		{
			resourceType: "Organization",
			id: `a-1.Practice-${practiceId}`,
			active: true,
			name: `Sandbox Practice ${practiceId}`,
		},
		{
			resourceType: "Organization",
			id: `${pref}.Department-1`,
			active: true,
			name: "Sandbox Family Medicine",
			partOf: { reference: practiceReference(practiceId) },
		},
		{
			resourceType: "Location",
			id: `${pref}.Department-1`,
			status: "active",
			name: "Sandbox Family Medicine",
			managingOrganization: { reference: practiceReference(practiceId) },
		},
		{
			resourceType: "Practitioner",
			id: `${pref}.Provider-1`,
			active: true,
			name: [{ family: "Sandboxdoctor", given: ["Sam"], suffix: ["MD"] }],
		},
	];
}

const records = new Map<string, PatientRecord>();

export function patientRecord(patientId: string): PatientRecord | undefined {
	const cached = records.get(patientId);
	if (cached) return cached;
	const patient = TEST_PATIENTS.find((p) => p.id === patientId);
	if (!patient) return undefined;
	const record = buildRecord(patient);
	records.set(patientId, record);
	return record;
}

export function findUser(username: string): TestPatient | undefined {
	return TEST_PATIENTS.find((p) => p.username.toLowerCase() === username.trim().toLowerCase());
}
