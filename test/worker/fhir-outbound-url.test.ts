import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors";
import { outboundFhirRequest, PATIENT_COMPARTMENT_TYPES } from "../../src/fhir/outbound-url";

const BASE = "https://api.platform.athenahealth.com/fhir/r4";
const CONTEXT = { fhirBaseUrl: BASE, patient: "a-80000.E-14545", practice: "80000" };
const PRACTICE = "ah-practice=Organization/a-1.Practice-80000";

function refusal(path: string, query = ""): AppError {
	try {
		outboundFhirRequest(path, query, CONTEXT);
	} catch (error) {
		if (error instanceof AppError) return error;
		throw error;
	}
	throw new Error(`expected ${path}?${query} to be refused`);
}

describe("outboundFhirRequest: path forms that could leave the FHIR base", () => {
	const refusedPaths: Array<[string, string]> = [
		["dot-dot segment", "/../oauth2/v1/token"],
		["dot-dot after a type", "/Patient/../../oauth2/v1/token"],
		["trailing dot-dot", "/Patient/.."],
		["single dot segment", "/./Patient"],
		["lower-case encoded dot-dot", "/%2e%2e/oauth2/v1/token"],
		["upper-case encoded dot-dot", "/%2E%2E/oauth2/v1/token"],
		["half-encoded dot-dot", "/%2E./oauth2"],
		["other half-encoded dot-dot", "/.%2e/oauth2"],
		["double-encoded dot-dot", "/%252e%252e/oauth2"],
		["double-encoded slash", "/Patient%252f..%252f..%252foauth2"],
		["encoded slash", "/Patient%2f..%2foauth2"],
		["upper-case encoded slash", "/Patient%2F1"],
		["encoded backslash", "/Patient%5c..%5coauth2"],
		["raw backslash", "/Patient\\..\\oauth2"],
		["leading backslash", "\\\\evil.example/fhir"],
		["absolute URL", "/https://evil.example/fhir/r4/Patient"],
		["absolute URL without a slash", "https://evil.example/"],
		["network-path reference", "//evil.example/Patient"],
		["userinfo", "/Patient@evil.example"],
		["userinfo in an id", "/Patient/a@evil.example"],
		["raw NUL", "/Patient/a\u0000b"],
		["encoded NUL", "/Patient/a%00b"],
		["raw newline", "/Patient/a\nb"],
		["encoded carriage return", "/Patient/a%0db"],
		["encoded DEL", "/Patient/a%7Fb"],
		["OAuth token path", "/oauth2/v1/token"],
		["OAuth path after slashes", "///oauth2/v1/revoke"],
		["smart-configuration", "/.well-known/smart-configuration"],
		["empty path", ""],
		["root path", "/"],
		["lower-case resource type", "/patient/1"],
		["id too long", `/Patient/${"a".repeat(65)}`],
		["id with a space", "/Patient/a b"],
		["trailing slash", "/Patient/"],
		["unknown operation", "/Patient/1/$everything"],
		["type-level history", "/Patient/_history"],
		["too many segments", "/Patient/1/_history/2/extra"],
		["question mark in path", "/Patient?x=1"],
		["fragment in path", "/Patient#x"],
		["percent-encoded letter", "/Pati%65nt"],
	];
	for (const [form, path] of refusedPaths) {
		it(`refuses a ${form} with 400 fhir_path_refused`, () => {
			const error = refusal(path);
			expect(error.status).toBe(400);
			expect(error.code).toBe("fhir_path_refused");
		});
	}
});

describe("outboundFhirRequest: allowed shapes", () => {
	it("maps a read to the same path under the FHIR base, with no search parameters added", () => {
		expect(outboundFhirRequest("/Patient/a-80000.E-14545", "", CONTEXT)).toEqual({
			url: `${BASE}/Patient/a-80000.E-14545`,
			interaction: "read",
			resourceType: "Patient",
		});
	});

	it("maps a vread and an instance history", () => {
		expect(outboundFhirRequest("/Observation/a-1.O-2/_history/3", "", CONTEXT)).toMatchObject({
			url: `${BASE}/Observation/a-1.O-2/_history/3`,
			interaction: "vread",
		});
		expect(outboundFhirRequest("/Observation/a-1.O-2/_history", "", CONTEXT)).toMatchObject({
			interaction: "history-instance",
		});
	});

	it("maps /metadata to the capabilities interaction without a resource type", () => {
		expect(outboundFhirRequest("/metadata", "", CONTEXT)).toEqual({
			url: `${BASE}/metadata`,
			interaction: "capabilities",
			resourceType: undefined,
		});
	});

	it("treats /{type}/_search as a type search and applies athena's rules to it", () => {
		const { url, interaction } = outboundFhirRequest("/Condition/_search", "", CONTEXT);
		expect(interaction).toBe("search-type");
		expect(url).toBe(`${BASE}/Condition/_search?${PRACTICE}&patient=a-80000.E-14545`);
	});

	it("keeps the FHIR base's own path when athena's base has one", () => {
		const { url } = outboundFhirRequest("/Patient/1", "", {
			...CONTEXT,
			fhirBaseUrl: "http://localhost:3001/fhir/r4/",
		});
		expect(url).toBe("http://localhost:3001/fhir/r4/Patient/1");
	});
});

describe("outboundFhirRequest: athena's search rules", () => {
	it("adds ah-practice with its slash unencoded and the session's patient to a compartment search", () => {
		const { url } = outboundFhirRequest("/Observation", "category=laboratory", CONTEXT);
		expect(url).toBe(`${BASE}/Observation?category=laboratory&${PRACTICE}&patient=a-80000.E-14545`);
	});

	it("keeps an ah-practice the app already sent", () => {
		const { url } = outboundFhirRequest("/Observation", "ah-practice=Organization/a-1.Practice-80000", CONTEXT);
		expect(url).toBe(`${BASE}/Observation?${PRACTICE}&patient=a-80000.E-14545`);
	});

	for (const pin of [
		"patient=a-80000.E-14545",
		"subject=Patient/a-80000.E-14545",
		"_id=a-1.O-2",
		"patient:Patient=x",
	]) {
		it(`adds no patient when the search already names one (${pin.split("=")[0]})`, () => {
			const { url } = outboundFhirRequest("/Observation", pin, CONTEXT);
			expect(url).toBe(`${BASE}/Observation?${pin}&${PRACTICE}`);
		});
	}

	it("passes a search naming another patient through unchanged, for athena to refuse", () => {
		const { url } = outboundFhirRequest("/Condition", "patient=a-1.E-99", CONTEXT);
		expect(url).toBe(`${BASE}/Condition?patient=a-1.E-99&${PRACTICE}`);
	});

	it("adds patient to every patient-compartment type and to none of the practice-level ones", () => {
		for (const type of PATIENT_COMPARTMENT_TYPES) {
			expect(outboundFhirRequest(`/${type}`, "", CONTEXT).url).toBe(
				`${BASE}/${type}?${PRACTICE}&patient=a-80000.E-14545`,
			);
		}
		for (const type of ["Practitioner", "Organization", "Location", "Medication", "Patient", "Provenance"]) {
			expect(outboundFhirRequest(`/${type}`, "", CONTEXT).url).toBe(`${BASE}/${type}?${PRACTICE}`);
		}
	});

	it("leaves the query of a read alone", () => {
		expect(outboundFhirRequest("/Patient/1", "_format=json", CONTEXT).url).toBe(`${BASE}/Patient/1?_format=json`);
	});

	it("keeps well-formed parameters byte for byte and in order", () => {
		const query = "code=http://loinc.org%7C8867-4&date=ge2024-01-01&date=le2024-12-31&_count=5&name=Jos%C3%A9&flag";
		const { url } = outboundFhirRequest("/Observation", query, CONTEXT);
		expect(url).toBe(`${BASE}/Observation?${query}&${PRACTICE}&patient=a-80000.E-14545`);
	});

	it("percent-encodes bytes that are not safe literally, as UTF-8", () => {
		const { url } = outboundFhirRequest("/Patient", "name=Jos\u00e9 M'x|y\"<>", CONTEXT);
		expect(url).toBe(`${BASE}/Patient?name=Jos%C3%A9%20M%27x%7Cy%22%3C%3E&${PRACTICE}`);
	});

	it("keeps encoded data that merely looks dangerous inside a value, where it cannot move the URL", () => {
		const { url } = outboundFhirRequest("/Patient", "name=%2e%2e%2f%2e%2e%2foauth2&identifier=a%26b%3Dc", CONTEXT);
		expect(new URL(url).pathname).toBe("/fhir/r4/Patient");
		expect(new URL(url).searchParams.get("name")).toBe("../../oauth2");
		expect(new URL(url).searchParams.get("identifier")).toBe("a&b=c");
	});

	const refusedQueries: Array<[string, string]> = [
		["an encoded NUL", "name=a%00b"],
		["a raw control character", "name=a\u0001b"],
		["an encoded newline", "name=a%0Ab"],
		["a malformed escape", "name=%zz"],
		["a truncated escape", "name=%4"],
		["a parameter name with odd bytes", "na%6De=x"],
		["a fragment", "name=x#frag"],
		["a lone surrogate", "name=\ud800"],
	];
	for (const [form, query] of refusedQueries) {
		it(`refuses a query with ${form} with 400 fhir_query_refused`, () => {
			const error = refusal("/Patient", query);
			expect(error.status).toBe(400);
			expect(error.code).toBe("fhir_query_refused");
		});
	}
});

describe("outboundFhirRequest: properties", () => {
	const base = new URL(BASE);
	const pathPieces = fc.constantFrom(
		"/",
		"..",
		".",
		"%2e",
		"%2E",
		"%2f",
		"%5c",
		"\\",
		"//",
		"@",
		":",
		"%00",
		"%25",
		"?",
		"#",
		"Patient",
		"Observation",
		"a-80000.E-14545",
		"_history",
		"_search",
		"metadata",
		"oauth2",
		"evil.example",
		"https:",
		"\u0000",
		"\n",
		" ",
	);
	const arbitraryPath = fc.oneof(
		fc.array(pathPieces, { maxLength: 8 }).map((pieces) => pieces.join("")),
		fc.string({ unit: "binary", maxLength: 40 }),
	);
	const arbitraryQuery = fc.oneof(
		fc.string({ unit: "binary", maxLength: 60 }),
		fc
			.array(fc.tuple(fc.string({ maxLength: 8 }), fc.string({ unit: "binary", maxLength: 12 })))
			.map((pairs) => pairs.map(([k, v]) => `${k}=${v}`).join("&")),
	);

	it("for any path and query, the outbound URL is under the FHIR base or the request is refused with 400", () => {
		fc.assert(
			fc.property(arbitraryPath, arbitraryQuery, (path, query) => {
				let url: URL;
				try {
					url = new URL(outboundFhirRequest(path, query, CONTEXT).url);
				} catch (error) {
					expect(error).toBeInstanceOf(AppError);
					expect((error as AppError).status).toBe(400);
					return;
				}
				expect(url.origin).toBe(base.origin);
				expect(url.username).toBe("");
				expect(url.pathname.startsWith(`${base.pathname}/`)).toBe(true);
				const segments = url.pathname.slice(base.pathname.length + 1).split("/");
				expect(segments.every((s) => /^[A-Za-z0-9._-]+$/.test(s) && !/^\.+$/.test(s))).toBe(true);
				expect(url.hash).toBe("");
			}),
			{ numRuns: 2_000 },
		);
	});

	it("every accepted search carries an ah-practice", () => {
		fc.assert(
			fc.property(fc.constantFrom(...PATIENT_COMPARTMENT_TYPES, "Patient"), arbitraryQuery, (type, query) => {
				let url: URL;
				try {
					url = new URL(outboundFhirRequest(`/${type}`, query, CONTEXT).url);
				} catch {
					return;
				}
				const practices = [...url.searchParams.keys()].filter((k) => k.split(/[:.]/)[0] === "ah-practice");
				expect(practices.length).toBeGreaterThanOrEqual(1);
			}),
			{ numRuns: 1_000 },
		);
	});
});
