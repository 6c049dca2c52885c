import { describe, expect, it } from "vitest";
import type { FhirResource } from "../src/data";
import { combinationText, missingCombination, scopeAllows, searchPage } from "../src/fhir-search";

const observation = (id: string): FhirResource => ({ resourceType: "Observation", id });

describe("scopes", () => {
	it("reads SMART v1 .read as read and search, v2 letters one by one, and * as every type", () => {
		const cases: Array<[string, string, "read" | "search", boolean]> = [
			["patient/Observation.read", "Observation", "read", true],
			["patient/Observation.read", "Observation", "search", true],
			["patient/Observation.rs", "Observation", "search", true],
			["patient/Observation.r", "Observation", "search", false],
			["patient/Observation.s", "Observation", "read", false],
			["patient/Observation.rs?category=laboratory", "Observation", "search", true],
			["patient/*.read", "ServiceRequest", "read", true],
			["patient/*.rs", "Encounter", "search", true],
			["patient/Observation.read", "ServiceRequest", "read", false],
			["user/Observation.read", "Observation", "read", false],
			["patient/Observation.write", "Observation", "read", false],
		];
		for (const [scope, type, interaction, allowed] of cases) {
			expect(scopeAllows([scope], type, interaction), `${scope} ${type} ${interaction}`).toBe(allowed);
		}
	});
});

describe("required parameter combinations", () => {
	it("writes athena's text and lets any one full combination through", () => {
		const has = (names: string[]) => (name: string) => names.includes(name);
		expect(combinationText(missingCombination("MedicationRequest", has(["patient"])) ?? [])).toBe(
			"The search query could not be performed because one of the required parameter combinations [[patient,intent],[_id]] was not provided.",
		);
		expect(missingCombination("MedicationRequest", has(["patient", "intent"]))).toBeNull();
		expect(missingCombination("MedicationRequest", has(["_id"]))).toBeNull();
		expect(missingCombination("Patient", has(["family"]))).toEqual([
			["_id"],
			["identifier"],
			["name"],
			["family", "birthdate"],
		]);
		expect(missingCombination("Organization", has([]))).toBeNull();
	});
});

describe("cursor paging", () => {
	const matches = ["a", "b", "c", "d", "e", "f", "g"].map((id) => observation(`a-80000.vitals-${id}`));

	it("starts at the cursor's match and names the match after the page as the next cursor", () => {
		expect(searchPage(matches, { count: 3, unlisted: new Set() })).toEqual({
			ok: true,
			resources: matches.slice(0, 3),
			nextCursor: "a-80000.vitals-d",
		});
		expect(searchPage(matches, { count: 3, cursor: "a-80000.vitals-g", unlisted: new Set() })).toEqual({
			ok: true,
			resources: matches.slice(6),
		});
	});

	it("answers a page of only unlisted matches empty, with a next cursor", () => {
		const unlisted = new Set(["a-80000.vitals-d", "a-80000.vitals-e", "a-80000.vitals-f"]);
		expect(searchPage(matches, { count: 3, cursor: "a-80000.vitals-d", unlisted })).toEqual({
			ok: true,
			resources: [],
			nextCursor: "a-80000.vitals-g",
		});
		expect(searchPage(matches, { count: 2, cursor: "a-80000.vitals-c", unlisted })).toMatchObject({
			resources: [matches[2]],
		});
	});

	it("refuses a cursor that names no match of the search", () => {
		expect(searchPage(matches, { count: 3, cursor: "a-80000.vitals-z", unlisted: new Set() })).toEqual({
			ok: false,
			reason: "unknown-cursor",
		});
	});
});
