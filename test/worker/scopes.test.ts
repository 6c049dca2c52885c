import { describe, expect, it } from "vitest";
import { readableTypes, readGrant } from "../../src/oauth/scopes";

describe("SMART scopes, v1 and v2", () => {
	it("reads v1 .read and wildcard scopes as read + search", () => {
		expect(readGrant(["patient/Observation.read"], "Observation")).toEqual({ read: true, search: true });
		expect(readGrant(["patient/*.read"], "Condition")).toEqual({ read: true, search: true });
		expect(readGrant(["patient/Observation.read"], "Condition")).toEqual({ read: false, search: false });
	});

	it("reads v2 permissions letter by letter, with or without a query constraint", () => {
		expect(readGrant(["patient/Observation.rs"], "Observation")).toEqual({ read: true, search: true });
		expect(readGrant(["patient/Patient.r"], "Patient")).toEqual({ read: true, search: false });
		expect(readGrant(["patient/Observation.s"], "Observation")).toEqual({ read: false, search: true });
		expect(readGrant(["patient/*.cruds"], "Encounter")).toEqual({ read: true, search: true });
		expect(readGrant(["patient/Observation.rs?category=laboratory"], "Observation")).toEqual({
			read: true,
			search: true,
		});
		expect(readGrant(["patient/Observation.c"], "Observation")).toEqual({ read: false, search: false });
	});

	it("ignores scopes that grant nothing on a patient's record", () => {
		expect(readGrant(["openid", "fhirUser", "launch/patient", "user/Observation.read"], "Observation")).toEqual({
			read: false,
			search: false,
		});
		expect(readGrant(["patient/Observation.sr"], "Observation")).toEqual({ read: false, search: false });
	});

	it("lists the readable types, or all of them for a wildcard", () => {
		expect(readableTypes(["openid", "patient/Observation.rs", "patient/Condition.read", "patient/Goal.c"])).toEqual([
			"Condition",
			"Observation",
		]);
		expect(readableTypes(["patient/*.rs"])).toBe("all");
		expect(readableTypes(["patient/*.read", "patient/Condition.read"])).toBe("all");
	});
});
