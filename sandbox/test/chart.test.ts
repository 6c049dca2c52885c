import { describe, expect, it } from "vitest";
import { buildChart } from "../src/chart/build";
import { chartProfile } from "../src/chart/people";
import { type FhirResource, patientIds, patientRecord } from "../src/data";
import { RECORDS } from "../src/users";

/*
 * The synthetic charts against the shape athena's preview recorded for its
 * test patient (shared/athena-observed.md "FHIR R4, as recorded"). These read
 * the generated data directly; fhir.test.ts checks what the API serves.
 */

type Json = Record<string, unknown>;

const JAKE = "a-80000.E-14545";

function chart(patient: string) {
	const record = patientRecord(patient);
	if (!record) throw new Error(`no chart for ${patient}`);
	return record;
}

const of = (patient: string, type: string): FhirResource[] => chart(patient).byType.get(type) ?? [];
const codings = (concept: unknown) => ((concept as Json | undefined)?.coding as Json[] | undefined) ?? [];
const codeOf = (concept: unknown) => codings(concept).map((c) => c.code);
const systemsOf = (concept: unknown) => codings(concept).map((c) => c.system);
const categoryOf = (r: FhirResource) => codeOf((r.category as unknown[] | undefined)?.[0])[0];
const count = <T>(items: T[], key: (item: T) => unknown) =>
	items.reduce<Record<string, number>>((m, item) => {
		const k = String(key(item));
		m[k] = (m[k] ?? 0) + 1;
		return m;
	}, {});
const decode = (base64: string) => new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)));

describe("synthetic charts", () => {
	it("are the same on every build (seeded, no wall clock)", () => {
		RECORDS.forEach((record, index) => {
			const { profile, plan } = chartProfile(record, index);
			const once = buildChart(profile, plan);
			const twice = buildChart(profile, plan);
			expect(JSON.stringify([...twice.byType])).toBe(JSON.stringify([...once.byType]));
			expect([...twice.unlisted]).toEqual([...once.unlisted]);
		});
	});

	it("give every record users.ts lists a chart, with athena ids and both athena extensions on every resource", () => {
		expect(patientIds()).toEqual([
			"a-80000.E-14545",
			"a-195900.E-5112",
			"a-80000.E-14600",
			"a-195900.E-3001",
			"a-80000.E-17000",
		]);
		const ids = new Set<string>();
		for (const record of RECORDS) {
			const { practice } = record;
			for (const [type, list] of chart(record.patient).byType) {
				for (const resource of list) {
					expect(resource.resourceType).toBe(type);
					if (type !== "Patient") expect(resource.id).toMatch(new RegExp(`^a-${practice}\\.[A-Za-z]+-\\d+$`));
					expect(resource.extension).toEqual([
						{
							url: "https://fhir.athena.io/StructureDefinition/ah-practice",
							valueReference: { reference: `Organization/a-1.Practice-${practice}` },
						},
						{
							url: "https://fhir.athena.io/StructureDefinition/ah-chart-sharing-group",
							valueReference: { reference: `Organization/a-${practice}.CSG-2` },
						},
					]);
					expect(ids.has(resource.id), resource.id).toBe(false);
					ids.add(resource.id);
				}
			}
		}
	});

	it("hold the main record's counts as athena's preview answered them", () => {
		const listed = (type: string) => of(JAKE, type).filter((r) => !chart(JAKE).unlisted.has(r.id)).length;
		expect({
			AllergyIntolerance: listed("AllergyIntolerance"),
			CarePlan: listed("CarePlan"),
			CareTeam: listed("CareTeam"),
			Condition: listed("Condition"),
			Device: listed("Device"),
			DiagnosticReport: listed("DiagnosticReport"),
			DocumentReference: listed("DocumentReference"),
			Encounter: listed("Encounter"),
			Goal: listed("Goal"),
			Immunization: listed("Immunization"),
			Observation: listed("Observation"),
			Procedure: listed("Procedure"),
		}).toEqual({
			AllergyIntolerance: 4,
			CarePlan: 1,
			CareTeam: 1,
			Condition: 43,
			Device: 5,
			DiagnosticReport: 46,
			DocumentReference: 22,
			Encounter: 12,
			Goal: 10,
			Immunization: 4,
			Observation: 491,
			Procedure: 6,
		});
	});

	it("names Jake Medlock as athena does: two official names with periods, SSN and athena identifiers", () => {
		const [patient] = of(JAKE, "Patient");
		expect(patient).toMatchObject({
			id: JAKE,
			gender: "male",
			birthDate: "1952-01-28",
			name: [
				{ use: "official", family: "Medlock", given: ["John"], period: { start: "2019-07-16", end: "2021-10-06" } },
				{ use: "official", family: "Medlock", given: ["Jake"], suffix: ["Ph.D."], period: { start: "2021-10-06" } },
			],
		});
		// The current name is the one whose period has not ended.
		expect(((patient?.name ?? []) as Json[])[1]?.period).toEqual({ start: "2021-10-06" });
		const identifiers = patient?.identifier as Array<{ system: string; value: string }>;
		expect(identifiers.map((i) => i.system)).toEqual([
			"https://fhir.athena.io/sid/ah-patient",
			"http://hl7.org/fhir/sid/us-ssn",
		]);
		// The 9xx area is never issued: no real person's number.
		expect(identifiers[1]?.value).toMatch(/^9\d\d-\d\d-\d{4}$/);
	});

	it("makes conditions messy: repeated encounter diagnoses without clinicalStatus, problems, health concerns", () => {
		const conditions = of(JAKE, "Condition");
		expect(count(conditions, categoryOf)).toEqual({
			"encounter-diagnosis": 35,
			"problem-list-item": 6,
			"health-concern": 2,
		});
		expect(conditions.filter((c) => c.clinicalStatus === undefined)).toHaveLength(36);
		const diagnoses = conditions.filter((c) => categoryOf(c) === "encounter-diagnosis");
		expect(diagnoses.every((c) => String(c.id).includes(".EncounterDx-") && c.encounter !== undefined)).toBe(true);
		expect(Math.max(...Object.values(count(diagnoses, (c) => codeOf(c.code)[0])))).toBeGreaterThanOrEqual(12);
		for (const condition of conditions) {
			expect(systemsOf(condition.code)).toEqual(["http://snomed.info/sct", "http://hl7.org/fhir/sid/icd-10-cm"]);
		}
		const problems = conditions.filter((c) => categoryOf(c) === "problem-list-item");
		expect(count(problems, (c) => codeOf(c.clinicalStatus)[0] ?? codeOf(c.verificationStatus)[0])).toEqual({
			active: 4,
			resolved: 1,
			"entered-in-error": 1,
		});
	});

	it("records vital signs with LOINC and UCUM: blood pressure components, weight in grams, °F, date-only, some absent", () => {
		const vitals = of(JAKE, "Observation").filter((o) => categoryOf(o) === "vital-signs");
		expect(vitals).toHaveLength(70);
		for (const vital of vitals) {
			expect(systemsOf(vital.code)).toEqual(["http://loinc.org"]);
			expect(vital.effectiveDateTime).toMatch(/^\d{4}-\d\d-\d\d$/);
		}
		const byCode = (code: string) =>
			vitals.filter((v) => codeOf(v.code)[0] === code && v.dataAbsentReason === undefined);
		const bp = byCode("85354-9")[0];
		expect(((bp?.component ?? []) as Json[]).map((c) => codeOf(c.code)[0])).toEqual(["8480-6", "8462-4"]);
		const weight = byCode("29463-7")[0]?.valueQuantity as Json;
		expect(weight).toMatchObject({ unit: "g", system: "http://unitsofmeasure.org", code: "g" });
		expect(weight.value).toBeGreaterThan(85_000);
		expect(byCode("8310-5")[0]?.valueQuantity).toMatchObject({ code: "[degF]" });
		expect(vitals.filter((v) => v.dataAbsentReason !== undefined).length).toBeGreaterThan(0);
	});

	it("reports labs as athena does: athena-local and text-only codes, bare units, strings, text ranges, many entered-in-error", () => {
		const labs = of(JAKE, "Observation").filter(
			(o) => categoryOf(o) === "laboratory" && !chart(JAKE).unlisted.has(o.id),
		);
		expect(labs).toHaveLength(419);
		expect(count(labs, (l) => l.status)).toEqual({ final: 307, "entered-in-error": 89, unknown: 12, cancelled: 11 });
		expect(labs.some((l) => codeOf(l.code)[0] === "12809" && systemsOf(l.code)[0] === "http://loinc.org")).toBe(true);
		expect(labs.filter((l) => codings(l.code).length === 0)).toHaveLength(47);
		expect(labs.filter((l) => typeof l.valueString === "string")).toHaveLength(92);
		for (const lab of labs) {
			const quantity = lab.valueQuantity as Json | undefined;
			if (quantity) expect(Object.keys(quantity).sort()).toEqual(["unit", "value"]);
			for (const range of (lab.referenceRange as Json[] | undefined) ?? [])
				expect(Object.keys(range)).toEqual(["text"]);
			for (const flag of (lab.interpretation as Json[] | undefined) ?? []) expect(Object.keys(flag)).toEqual(["text"]);
		}
		expect(labs.some((l) => l.interpretation !== undefined)).toBe(true);
	});

	it("files reports under LAB or LOINC part categories with their text inline", () => {
		const reports = of(JAKE, "DiagnosticReport");
		expect(new Set(reports.map((r) => codeOf((r.category as unknown[])[0])[0]))).toEqual(
			new Set(["LAB", "LP29684-5", "LP29708-2", "LP7839-6"]),
		);
		for (const report of reports) {
			const [form] = report.presentedForm as Array<{ contentType: string; data: string }>;
			expect(form?.contentType).toBe("text/plain");
			expect(decode(form?.data ?? "").length).toBeGreaterThan(10);
		}
	});

	it("inlines notes as HTML (one hostile) or withholds them with a data-absent-reason, never by URL", () => {
		const documents = of(JAKE, "DocumentReference");
		const attachments = documents.map((d) => ((d.content as Json[])[0]?.attachment ?? {}) as Json);
		expect(documents.every((d) => codeOf((d.category as unknown[])[0])[0] === "clinical-note")).toBe(true);
		expect(attachments.every((a) => a.url === undefined)).toBe(true);
		const html = attachments.filter((a) => a.contentType === "text/html");
		const withheld = attachments.filter((a) => a.contentType === "application/octet-stream");
		expect([html.length, withheld.length]).toEqual([8, 14]);
		for (const a of withheld) {
			expect(a.data).toBeUndefined();
			expect(JSON.stringify(a._data)).toContain("http://hl7.org/fhir/StructureDefinition/data-absent-reason");
		}
		const notes = html.map((a) => decode(String(a.data)));
		const hostile = notes.filter((n) => n.includes("<script>"));
		expect(hostile).toHaveLength(1);
		expect(hostile[0]).toMatch(/<img src="https:\/\/[^"]+"/);
		expect(hostile[0]).toMatch(/ on[a-z]+="/);
	});

	it("codes allergies in RxNorm or SNOMED, one reaction without display or text; immunizations in CVX, not primary source", () => {
		const allergies = of(JAKE, "AllergyIntolerance");
		expect(new Set(allergies.flatMap((a) => systemsOf(a.code)))).toEqual(
			new Set(["http://www.nlm.nih.gov/research/umls/rxnorm", "http://snomed.info/sct"]),
		);
		const manifestations = allergies.flatMap((a) =>
			((a.reaction as Json[] | undefined) ?? []).flatMap((r) => r.manifestation as Json[]),
		);
		const bare = manifestations.filter((m) => m.text === undefined);
		expect(bare).toHaveLength(1);
		expect(codings(bare[0])[0]?.display).toBeUndefined();
		for (const immunization of of(JAKE, "Immunization")) {
			expect(systemsOf(immunization.vaccineCode)).toEqual(["http://hl7.org/fhir/sid/cvx"]);
			expect(immunization.primarySource).toBe(false);
		}
	});

	it("classes encounters AMB or VR, typed by CPT, SNOMED or text alone", () => {
		const encounters = of(JAKE, "Encounter");
		expect(new Set(encounters.map((e) => (e.class as Json).code))).toEqual(new Set(["AMB", "VR"]));
		const kinds = new Set(
			encounters.map((e) => {
				const type = (e.type as Json[])[0];
				return systemsOf(type)[0] ?? "text";
			}),
		);
		expect(kinds).toEqual(new Set(["http://www.ama-assn.org/go/cpt", "http://snomed.info/sct", "text"]));
		expect(encounters.filter((e) => e.id.includes(".encounter-"))).toHaveLength(14);
	});

	it("gives the other records smaller charts of the same shape, and the dependent a child's", () => {
		for (const patient of ["a-195900.E-5112", "a-80000.E-14600", "a-195900.E-3001"]) {
			const observations = of(patient, "Observation").length;
			expect(observations).toBeGreaterThan(20);
			expect(observations).toBeLessThan(of(JAKE, "Observation").length);
			expect(of(patient, "DocumentReference").length).toBeGreaterThan(0);
		}
		const [lily] = of("a-80000.E-14600", "Patient");
		expect(lily).toMatchObject({ birthDate: "2017-03-14", gender: "female" });
		expect(JSON.stringify(lily?.contact)).toContain("Jake");
		expect(of("a-80000.E-14600", "Immunization").length).toBeGreaterThanOrEqual(8);
		const [secondJake] = of("a-195900.E-5112", "Patient");
		expect(secondJake?.name).toEqual(of(JAKE, "Patient")[0]?.name);
	});
});
