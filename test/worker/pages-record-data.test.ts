import { describe, expect, it } from "vitest";
import { LineChart } from "../../src/pages/chart";
import {
	activeConditions,
	bundleResources,
	currentMedications,
	documents,
	nextLink,
	observationSeries,
	personName,
	recentEncounters,
} from "../../src/pages/record-data";

const coded = (code: string, text?: string) => ({ coding: [{ system: "http://loinc.org", code }], text });
const status = (code: string) => ({ coding: [{ code }] });

describe("what the record page reads from FHIR resources", () => {
	it("lists active, recurring and relapsed conditions and leaves resolved ones out, newest onset first", () => {
		const items = activeConditions([
			{ code: { text: "Asthma" }, clinicalStatus: status("active"), onsetDateTime: "2001-01-01" },
			{ code: { text: "Fracture" }, clinicalStatus: status("resolved"), onsetDateTime: "2019-01-01" },
			{ code: { text: "Migraine" }, clinicalStatus: status("recurrence"), onsetDateTime: "2015-06-01" },
		]);
		expect(items.map((c) => c.name)).toEqual(["Migraine", "Asthma"]);
	});

	it("keeps active and on-hold medications, drops stopped and completed ones", () => {
		const items = currentMedications([
			{ status: "active", medicationCodeableConcept: { text: "A" }, dosageInstruction: [{ text: "daily" }] },
			{ status: "stopped", medicationCodeableConcept: { text: "B" } },
			{ status: "on-hold", medicationReference: { display: "C" } },
			{ status: "completed", medicationCodeableConcept: { text: "D" } },
		]);
		expect(items.map((m) => [m.name, m.instructions])).toEqual([
			["A", "daily"],
			["C", undefined],
		]);
	});

	it("marks a document whose content athena withholds (data-absent-reason) as not released", () => {
		const items = documents([
			{ date: "2025-01-02T00:00:00Z", content: [{ attachment: { title: "Note", data: "aGk=" } }] },
			{
				date: "2026-01-20T12:00:00Z",
				content: [{ attachment: { title: "Held", _data: { extension: [{ valueCode: "masked" }] } } }],
			},
		]);
		expect(items).toEqual([
			{ title: "Held", date: "2026-01-20T12:00:00Z", released: false },
			{ title: "Note", date: "2025-01-02T00:00:00Z", released: true },
		]);
	});

	it("splits a blood pressure panel into systolic and diastolic series, oldest point first, skipping entered-in-error", () => {
		const panel = (at: string, systolic: number, diastolic: number, state = "final") => ({
			status: state,
			code: coded("85354-9", "Blood pressure"),
			effectiveDateTime: at,
			component: [
				{ code: coded("8480-6", "Systolic"), valueQuantity: { value: systolic, unit: "mmHg" } },
				{ code: coded("8462-4", "Diastolic"), valueQuantity: { value: diastolic, unit: "mmHg" } },
			],
		});
		const series = observationSeries([
			panel("2024-05-01", 130, 85),
			panel("2023-01-01", 120, 80),
			panel("2024-09-01", 200, 120, "entered-in-error"),
		]);
		expect(series.map((s) => [s.key, s.points.map((p) => p.value)])).toEqual([
			["8480-6", [120, 130]],
			["8462-4", [80, 85]],
		]);
	});

	it("shows the five most recent encounters, newest first", () => {
		const visits = Array.from({ length: 8 }, (_, i) => ({
			type: [{ text: `Visit ${i}` }],
			period: { start: `2020-0${i + 1}-01` },
		}));
		expect(recentEncounters(visits, 5).map((e) => e.type)).toEqual([
			"Visit 7",
			"Visit 6",
			"Visit 5",
			"Visit 4",
			"Visit 3",
		]);
	});

	it("reads names, bundle entries of one type and the next link defensively", () => {
		expect(
			personName([
				{ use: "usual", given: ["J"] },
				{ use: "official", given: ["Jane", "Q"], family: "Doe" },
			]),
		).toBe("Jane Q Doe");
		const bundle = {
			entry: [{ resource: { resourceType: "Condition", id: "1" } }, { resource: { resourceType: "OperationOutcome" } }],
			link: [{ relation: "next", url: "http://localhost:3000/fhir/r4/Condition?cursor=x" }],
		};
		expect(bundleResources(bundle, "Condition")).toHaveLength(1);
		expect(nextLink(bundle)).toBe("http://localhost:3000/fhir/r4/Condition?cursor=x");
		expect(bundleResources("not a bundle", "Condition")).toEqual([]);
		expect(nextLink({ link: [{ relation: "self", url: "x" }] })).toBeUndefined();
	});

	it("draws no chart for fewer than two points, and an accessible one otherwise", async () => {
		const one = { key: "k", name: "Weight", unit: "kg", points: [{ at: "2024-01-01", value: 70 }] };
		expect(LineChart({ id: "c", title: "Weight", series: [one] })).toBeNull();
		const two = { ...one, points: [...one.points, { at: "2025-01-01", value: 72 }] };
		const svg = String(await LineChart({ id: "c", title: "Weight over time", series: [two] }));
		expect(svg).toContain('role="img" aria-labelledby="c-title c-desc"');
		expect(svg).toContain("Weight: latest 72 kg on Jan 1, 2025");
		expect(svg).not.toContain("style=");
	});
});
