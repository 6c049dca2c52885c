import { describe, expect, it } from "vitest";
import { lineChart, sparkline } from "../../src/pages/chart";
import {
	activeProblems,
	allergies,
	bundleResources,
	conceptText,
	currentName,
	documents,
	nextLink,
	otherReports,
	resultRows,
	visits,
} from "../../src/pages/record-data";

const SNOMED = "http://snomed.info/sct";
const ICD10 = "http://hl7.org/fhir/sid/icd-10-cm";
const concept = (text: string | undefined, ...coding: Array<{ system: string; code: string; display?: string }>) => ({
	coding,
	...(text ? { text } : {}),
});
const coded = (system: string, code: string) => ({ coding: [{ system, code }] });
const category = (code: string) => [coded("http://terminology.hl7.org/CodeSystem/condition-category", code)];
const hypertension = concept(
	"Essential (primary) hypertension",
	{ system: SNOMED, code: "59621000", display: "Essential hypertension" },
	{ system: ICD10, code: "I10", display: "Essential (primary) hypertension" },
);
const loinc = (code: string, display: string) => concept(undefined, { system: "http://loinc.org", code, display });

describe("the patient's name", () => {
	// athena's test patient: two official names, the older one's period ended.
	const names = [
		{ use: "official", family: "Medlock", given: ["John"], period: { start: "2019-07-16", end: "2021-10-06" } },
		{ use: "official", family: "Medlock", given: ["Jake"], suffix: ["Ph.D."], period: { start: "2021-10-06" } },
	];

	it("is the official name whose period has not ended", () => {
		expect(currentName(names, "2026-05-20")).toBe("Jake Medlock");
		expect(currentName([...names].reverse(), "2026-05-20")).toBe("Jake Medlock");
	});

	it("was the older name while its period ran, and falls back sensibly", () => {
		const before = [{ ...names[0], period: { start: "2019-07-16", end: "2021-10-06" } }];
		expect(currentName(before, "2020-01-01")).toBe("John Medlock");
		// Every name ended (a record not kept up to date): the latest official one still names the patient.
		expect(currentName(before, "2026-05-20")).toBe("John Medlock");
		expect(
			currentName(
				[
					{ use: "old", given: ["Old"] },
					{ use: "usual", given: ["Jo"], family: "M" },
				],
				"2026-01-01",
			),
		).toBe("Jo M");
		expect(currentName([{ text: "Ada Example" }], "2026-01-01")).toBe("Ada Example");
		expect(currentName("not a list", "2026-01-01")).toBeUndefined();
	});
});

describe("active problems", () => {
	const problem = (code: unknown, body: Record<string, unknown> = {}) => ({
		code,
		category: category("problem-list-item"),
		clinicalStatus: coded("http://terminology.hl7.org/CodeSystem/condition-clinical", "active"),
		...body,
	});

	it("are problem-list items and health concerns, active or without status; not past visit diagnoses", () => {
		const items = activeProblems([
			problem(hypertension, { onsetDateTime: "2016-05-30" }),
			problem(concept("Obesity, unspecified"), { category: category("health-concern") }),
			problem(concept("Hyperlipidemia, unspecified"), { clinicalStatus: undefined }),
			{ code: concept("Low back pain, unspecified"), category: category("encounter-diagnosis") },
		]);
		expect(items).toEqual([
			{ name: "Essential (primary) hypertension", since: "2016-05-30" },
			{ name: "Obesity, unspecified", since: undefined },
			{ name: "Hyperlipidemia, unspecified", since: undefined },
		]);
	});

	it("leave out conditions entered in error, refuted, inactive, resolved or in remission", () => {
		const status = (code: string) => coded("http://terminology.hl7.org/CodeSystem/condition-clinical", code);
		const verification = (code: string) => coded("http://terminology.hl7.org/CodeSystem/condition-ver-status", code);
		const items = activeProblems([
			problem(concept("Asthma"), { clinicalStatus: undefined, verificationStatus: verification("entered-in-error") }),
			problem(concept("Gout"), { verificationStatus: verification("refuted") }),
			problem(concept("Bronchitis"), { clinicalStatus: status("resolved") }),
			problem(concept("Eczema"), { clinicalStatus: status("inactive") }),
			problem(concept("Lymphoma"), { clinicalStatus: status("remission") }),
			problem(concept("Migraine"), { clinicalStatus: status("recurrence") }),
		]);
		expect(items.map((p) => p.name)).toEqual(["Migraine"]);
	});

	it("are listed once each: the same code (any of its codings), else the same words", () => {
		const icdOnly = concept("HTN", { system: ICD10, code: "I10" });
		const items = activeProblems([
			problem(hypertension, { onsetDateTime: "2018-01-01" }),
			problem(hypertension, { onsetDateTime: "2016-05-30" }),
			problem(icdOnly),
			problem(concept("Knee pain")),
			problem(concept("knee pain"), { category: category("health-concern") }),
		]);
		expect(items).toEqual([
			{ name: "Essential (primary) hypertension", since: "2016-05-30" },
			{ name: "Knee pain", since: undefined },
		]);
	});
});

describe("results", () => {
	const lab = (at: string, body: Record<string, unknown>) => ({
		resourceType: "Observation",
		status: "final",
		code: loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
		effectiveDateTime: at,
		...body,
	});

	it("never show a result entered in error or cancelled, nor one with no value yet", () => {
		const [row] = resultRows(
			[
				lab("2024-01-01", { valueQuantity: { value: 6.1, unit: "%" } }),
				lab("2025-01-01", { valueQuantity: { value: 6.4, unit: "%" } }),
				lab("2026-01-01", { status: "entered-in-error", valueQuantity: { value: 99.9, unit: "%" } }),
				lab("2026-02-01", { status: "cancelled" }),
				lab("2026-03-01", { status: "registered" }),
			],
			"lab",
		);
		expect(row).toMatchObject({ name: "Hemoglobin A1c/Hemoglobin.total in Blood", latest: "6.4 %", at: "2025-01-01" });
		expect(row?.series[0]?.map((p) => p.value)).toEqual([6.1, 6.4]);
		expect(resultRows([lab("2026-01-01", { status: "entered-in-error", valueString: "Positive" })], "lab")).toEqual([]);
	});

	it("show one row per test: a text-only result joins its coded test, LOINC's bracketed property is dropped", () => {
		const rows = resultRows(
			[
				{ ...lab("2025-01-01", { valueQuantity: { value: 95, unit: "mg/dL" } }), code: loinc("12809", "Glucose") },
				{ ...lab("2026-01-01", { valueQuantity: { value: 104, unit: "mg/dL" } }), code: { text: "Glucose" } },
				{
					...lab("2025-06-01", { valueQuantity: { value: 0.9, unit: "mg/dL" } }),
					code: loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma"),
				},
			],
			"lab",
		);
		expect(rows.map((r) => [r.name, r.latest])).toEqual([
			["Glucose", "104 mg/dL"],
			["Creatinine in Serum or Plasma", "0.9 mg/dL"],
		]);
		expect(rows[0]?.series[0]?.map((p) => p.value)).toEqual([95, 104]);
	});

	it("show a valueString as given, text ranges and flags, and a bare unit as it came", () => {
		const rows = resultRows(
			[
				lab("2026-01-01", {
					code: loinc("33914-3", "Glomerular filtration rate/1.73 sq M.predicted"),
					valueString: ">60",
					referenceRange: [{ text: ">60 mL/min/1.73m2" }],
				}),
				lab("2026-01-01", {
					code: { text: "COVID-19 ANTIGEN, RAPID" },
					valueString: "Negative",
					referenceRange: [{ text: "Negative" }],
				}),
				lab("2025-12-01", {
					code: loinc("777-3", "Platelets [#/volume] in Blood by Automated count"),
					valueQuantity: { value: 452, unit: "10*3/uL" },
					referenceRange: [{ low: { value: 150 }, high: { value: 400, unit: "10*3/uL" } }],
					interpretation: [{ coding: [{ code: "H" }] }],
				}),
				lab("2025-11-01", { valueString: "5.4 %" }),
				lab("2025-12-01", { valueQuantity: { value: 5.9, unit: "%" }, interpretation: [{ text: "High" }] }),
			],
			"lab",
		);
		expect(rows.map((r) => [r.name, r.latest, r.range, r.flag])).toEqual([
			["COVID-19 ANTIGEN, RAPID", "Negative", "Negative", undefined],
			["Glomerular filtration rate/1.73 sq M.predicted", ">60", ">60 mL/min/1.73m2", undefined],
			["Hemoglobin A1c/Hemoglobin.total in Blood", "5.9 %", undefined, "High"],
			["Platelets in Blood by Automated count", "452 ×10³/µL", "150–400 ×10³/µL", "High"],
		]);
		// A string that is a number in the test's unit still counts toward the trend.
		expect(rows[2]?.series[0]?.map((p) => p.value)).toEqual([5.4, 5.9]);
	});

	it("give body weight in pounds with kilograms, never grams; blood pressure as one reading; vitals in a fixed order", () => {
		const vital = (code: string, at: string, body: Record<string, unknown>) => ({
			status: "final",
			code: loinc(code, "athena's display"),
			effectiveDateTime: at,
			...body,
		});
		const ucum = (value: number, unit: string) => ({ value, unit, system: "http://unitsofmeasure.org", code: unit });
		const rows = resultRows(
			[
				vital("8310-5", "2026-01-01", { valueQuantity: ucum(98.6, "[degF]") }),
				vital("29463-7", "2025-01-01", { valueQuantity: ucum(93440.01, "g") }),
				vital("29463-7", "2026-01-01", { valueQuantity: ucum(90718.47, "g") }),
				vital("29463-7", "2026-02-01", { dataAbsentReason: { text: "Not performed" } }),
				vital("85354-9", "2026-01-01", {
					component: [
						{ code: loinc("8480-6", "Systolic"), valueQuantity: ucum(128, "mm[Hg]") },
						{ code: loinc("8462-4", "Diastolic"), valueQuantity: ucum(82, "mm[Hg]") },
					],
				}),
				vital("8867-4", "2026-01-01", { valueQuantity: ucum(72, "/min") }),
				vital("9999-9", "2026-01-01", { valueQuantity: ucum(1, "1") }),
			],
			"vital",
		);
		expect(rows.map((r) => [r.name, r.latest, r.unit])).toEqual([
			["Blood pressure", "128/82 mmHg", "mmHg"],
			["Weight", "200 lb (90.7 kg)", "lb"],
			["Temperature", "98.6 °F", "°F"],
			["Heart rate", "72 per min", "per min"],
		]);
		expect(rows[0]?.series.map((line) => line.map((p) => p.value))).toEqual([[128], [82]]);
		expect(rows[1]?.series[0]?.map((p) => p.value)).toEqual([206, 200]);
	});
});

describe("codes and documents", () => {
	it("show words for a code, or nothing: never the bare code", () => {
		expect(conceptText({ coding: [{ system: SNOMED, code: "422587007" }] })).toBeUndefined();
		expect(conceptText({ coding: [{ code: "1" }, { code: "2", display: "Rash" }] })).toBe("Rash");
		const items = allergies([
			{
				code: concept(undefined, {
					system: "http://www.nlm.nih.gov/research/umls/rxnorm",
					code: "2670",
					display: "Codeine",
				}),
				reaction: [{ manifestation: [{ coding: [{ system: SNOMED, code: "422587007" }] }] }],
			},
			{
				code: concept("Latex"),
				verificationStatus: coded(
					"http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
					"entered-in-error",
				),
			},
			{ code: { coding: [{ code: "7980" }] }, reaction: [{ manifestation: [concept("Hives"), concept("Hives")] }] },
		]);
		expect(items).toEqual([
			{ substance: "Codeine", reactions: [] },
			{ substance: "Unnamed allergy", reactions: ["Hives"] },
		]);
	});

	it("mark notes athena withholds (a data-absent-reason, no data) as not released", () => {
		const items = documents([
			{
				id: "a",
				date: "2025-01-02T00:00:00Z",
				type: concept("Progress note"),
				content: [{ attachment: { data: "aGk=" } }],
			},
			{
				id: "b",
				date: "2026-01-20T12:00:00Z",
				type: concept("Discharge summary"),
				content: [
					{ attachment: { contentType: "application/octet-stream", _data: { extension: [{ valueCode: "masked" }] } } },
				],
			},
			{ id: "c", status: "entered-in-error", content: [{ attachment: { data: "aGk=" } }] },
		]);
		expect(items).toEqual([
			{ id: "b", title: "Discharge summary", date: "2026-01-20T12:00:00Z", released: false },
			{ id: "a", title: "Progress note", date: "2025-01-02T00:00:00Z", released: true },
		]);
	});

	it("list reports other than lab panels with their text, never one entered in error or cancelled", () => {
		const report = (status: string, categoryCode: string, name: string) => ({
			status,
			category: [concept(categoryCode === "LAB" ? "Laboratory" : "Radiology", { system: "x", code: categoryCode })],
			code: concept(name),
			effectiveDateTime: "2025-03-01",
			presentedForm: [{ contentType: "text/plain", data: btoa("Lungs are clear.\n") }],
		});
		expect(
			otherReports([
				report("final", "LP29684-5", "XR Chest 2 Views"),
				report("entered-in-error", "LP29684-5", "XR Knee"),
				report("cancelled", "LP29684-5", "XR Hip"),
				report("final", "LAB", "Lipid panel"),
			]),
		).toEqual([{ name: "XR Chest 2 Views", category: "Radiology", date: "2025-03-01", text: "Lungs are clear." }]);
	});

	it("name each visit's diagnoses once, newest visit first, leaving out cancelled visits", () => {
		const dx = (encounter: string, text: string) => ({
			category: category("encounter-diagnosis"),
			code: concept(text),
			encounter: { reference: `Encounter/${encounter}` },
		});
		const items = visits(
			[
				{ id: "1", type: [concept("Office visit")], period: { start: "2024-01-01" } },
				{ id: "2", class: { code: "VR" }, period: { start: "2025-01-01" } },
				{ id: "3", status: "cancelled", period: { start: "2025-06-01" } },
			],
			[dx("1", "Hypertension"), dx("1", "Hypertension"), dx("1", "Low back pain"), dx("2", "Cough")],
		);
		expect(items.map((v) => [v.type, v.diagnoses])).toEqual([
			["Virtual visit", ["Cough"]],
			["Office visit", ["Hypertension", "Low back pain"]],
		]);
	});

	it("read bundle entries of one type and the next link defensively", () => {
		const bundle = {
			entry: [{ resource: { resourceType: "Condition", id: "1" } }, { resource: { resourceType: "OperationOutcome" } }],
			link: [{ relation: "next", url: "http://localhost:3000/fhir/r4/Condition?cursor=x" }],
		};
		expect(bundleResources(bundle, "Condition")).toHaveLength(1);
		expect(nextLink(bundle)).toBe("http://localhost:3000/fhir/r4/Condition?cursor=x");
		expect(bundleResources("not a bundle", "Condition")).toEqual([]);
		expect(nextLink({ link: [{ relation: "self", url: "x" }] })).toBeUndefined();
	});
});

describe("charts", () => {
	it("draw nothing for fewer than two points, and an accessible chart with no inline style otherwise", async () => {
		const one = [{ at: "2024-01-01", value: 200 }];
		expect(lineChart({ id: "c", title: "Weight over time", unit: "lb", names: ["Weight"], lines: [one] })).toBe("");
		expect(sparkline(one)).toBe("");
		const two = [...one, { at: "2025-01-01", value: 197.5 }];
		const svg = String(
			await lineChart({ id: "c", title: "Weight over time", unit: "lb", names: ["Weight"], lines: [two] }),
		);
		expect(svg).toContain('role="img" aria-labelledby="c-t c-d"');
		expect(svg).toContain("Jan 1, 2024 to Jan 1, 2025. Weight: latest 197.5 lb.");
		expect(svg).not.toContain("style=");
		expect(String(await sparkline(two))).toMatch(/^<svg class="spark"[^>]*aria-hidden="true"/);
	});
});
