import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { MAX_SMART_SERVERS, parseConfig, serverById } from "../../src/config";
import { PRODUCTION_SETTINGS } from "./support/settings";

const local = env as unknown as Record<string, unknown>;
const production = PRODUCTION_SETTINGS;

const clinic = { id: "city-clinic", name: "City Clinic", fhirBaseUrl: "https://fhir.city.example/r4/", clientId: "c1" };

function problemsOf(settings: Record<string, unknown>): string[] {
	const result = parseConfig(settings);
	return result.ok ? [] : result.problems;
}

describe("SMART_SERVERS", () => {
	it("lists no server when it is [] (wrangler.toml's value in every environment) or unset", () => {
		const result = parseConfig({ ...local, SMART_SERVERS: "[]" });
		expect(result.ok && result.config.smartServers).toEqual([]);
		const { SMART_SERVERS: _unset, ...rest } = production as Record<string, unknown>;
		const unset = parseConfig(rest);
		expect(unset.ok && unset.config.smartServers).toEqual([]);
	});

	it("parses a listed server with the smart profile and the environment's token budget by default", () => {
		const result = parseConfig({
			...production,
			TOKEN_REQUESTS_PER_MINUTE: "50",
			SMART_SERVERS: JSON.stringify([clinic]),
		});
		expect(result.ok).toBe(true);
		if (!result.ok) return;
		expect(result.config.smartServers).toEqual([
			{ ...clinic, fhirBaseUrl: "https://fhir.city.example/r4", profile: "smart", tokenRequestsPerMinute: 50 },
		]);
		expect(serverById(result.config, "city-clinic")?.name).toBe("City Clinic");
		expect(serverById(result.config, "elsewhere")).toBeUndefined();
	});

	it("gives the environment's own server the id athena, with the top-level settings", () => {
		const result = parseConfig({ ...production, SMART_SERVERS: JSON.stringify([clinic]) });
		if (!result.ok) throw new Error(result.problems.join("; "));
		expect(serverById(result.config, "athena")).toEqual({
			id: "athena",
			name: "athenahealth",
			fhirBaseUrl: "https://api.platform.athenahealth.com/fhir/r4",
			clientId: "0oa1prodclient",
			profile: "athena",
			tokenRequestsPerMinute: result.config.tokenRequestsPerMinute,
		});
		expect(serverById(result.config, undefined)?.id).toBe("athena");
	});

	it("keeps a server's own profile and per-minute limit", () => {
		const listed = [{ ...clinic, profile: "athena", tokenRequestsPerMinute: 7 }];
		const result = parseConfig({ ...production, SMART_SERVERS: JSON.stringify(listed) });
		expect(result.ok && result.config.smartServers[0]).toMatchObject({ profile: "athena", tokenRequestsPerMinute: 7 });
	});

	it("refuses what is not a JSON array", () => {
		expect(problemsOf({ ...production, SMART_SERVERS: "{not json" })).toEqual([
			"SMART_SERVERS: must be a JSON array of servers",
		]);
		expect(problemsOf({ ...production, SMART_SERVERS: JSON.stringify(clinic) })).toEqual([
			"SMART_SERVERS: must be a JSON array of servers",
		]);
	});

	it("names the entry and the field of every problem", () => {
		const listed = [
			clinic,
			{ id: "Bad_Id", name: "", fhirBaseUrl: "ftp://x.example", clientId: 3, profile: "epic", colour: "red" },
			{ ...clinic, name: "Again" },
			{ ...clinic, id: "athena" },
			{ ...clinic, id: "plain", fhirBaseUrl: "http://fhir.plain.example/r4", tokenRequestsPerMinute: 0 },
			"a string",
		];
		expect(problemsOf({ ...production, SMART_SERVERS: JSON.stringify(listed) })).toEqual([
			"SMART_SERVERS: entry 2: colour is not a server field",
			"SMART_SERVERS: entry 2: id must be 1 to 32 of a-z, 0-9 and -",
			"SMART_SERVERS: entry 2: name must be a non-empty string",
			"SMART_SERVERS: entry 2: fhirBaseUrl must be an absolute http(s) URL",
			"SMART_SERVERS: entry 2: clientId must be a non-empty string",
			'SMART_SERVERS: entry 2: profile must be "athena" or "smart"',
			'SMART_SERVERS: entry 3 ("city-clinic"): id appears twice',
			'SMART_SERVERS: entry 4 ("athena"): id "athena" is the environment\'s own server',
			'SMART_SERVERS: entry 5 ("plain"): fhirBaseUrl must use https in production',
			'SMART_SERVERS: entry 5 ("plain"): tokenRequestsPerMinute must be a whole number from 1 to 10000',
			"SMART_SERVERS: entry 6 must be an object",
		]);
	});

	it("refuses localhost outside local, and plain http locally unless on localhost", () => {
		const onLaptop = [{ ...clinic, fhirBaseUrl: "https://localhost:3202/fhir" }];
		expect(problemsOf({ ...production, SMART_SERVERS: JSON.stringify(onLaptop) })).toEqual([
			'SMART_SERVERS: entry 1 ("city-clinic"): fhirBaseUrl must not point at localhost in production',
		]);
		const http = (url: string) => JSON.stringify([{ ...clinic, fhirBaseUrl: url }]);
		expect(problemsOf({ ...local, SMART_SERVERS: http("http://localhost:3202/fhir") })).toEqual([]);
		expect(problemsOf({ ...local, SMART_SERVERS: http("http://127.0.0.1:3202/fhir") })).toEqual([]);
		expect(problemsOf({ ...local, SMART_SERVERS: http("http://fhir.city.example/r4") })).toEqual([
			'SMART_SERVERS: entry 1 ("city-clinic"): fhirBaseUrl must use https unless it is on localhost',
		]);
		expect(problemsOf({ ...local, SMART_SERVERS: http("https://user:pw@fhir.city.example/r4") })).toEqual([
			'SMART_SERVERS: entry 1 ("city-clinic"): fhirBaseUrl must not carry credentials',
		]);
	});

	it(`lists at most ${MAX_SMART_SERVERS} servers`, () => {
		const many = Array.from({ length: MAX_SMART_SERVERS + 1 }, (_, i) => ({ ...clinic, id: `s${i}` }));
		expect(problemsOf({ ...production, SMART_SERVERS: JSON.stringify(many) })).toEqual([
			`SMART_SERVERS: lists ${MAX_SMART_SERVERS + 1} servers, at most ${MAX_SMART_SERVERS} are allowed`,
		]);
		const enough = parseConfig({ ...production, SMART_SERVERS: JSON.stringify(many.slice(1)) });
		expect(enough.ok && enough.config.smartServers).toHaveLength(MAX_SMART_SERVERS);
	});
});
