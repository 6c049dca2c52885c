import { describe, expect, it } from "vitest";
import type { Config } from "../../src/config";
import { ehrProfile } from "../../src/ehr-profile";
import { outboundFhirRequest } from "../../src/fhir/outbound-url";
import { authorizationServer, discoverAll } from "../../src/oauth/discovery";

const UUID = "0b9e3c2c-5a7e-4f55-9d1e-2f1c7b3e8a10";
let baseSeq = 0;

/** A FHIR server of its own per test (discovery is cached per FHIR base), answering `document` and counting reads. */
function server(document: Record<string, unknown> | undefined, status = 200) {
	baseSeq += 1;
	const fhirBaseUrl = `https://ehr-${baseSeq}.example.org/fhir`;
	const seen: string[] = [];
	const fetcher: typeof fetch = async (input) => {
		seen.push(String(input));
		return document === undefined ? new Response("not found", { status: 404 }) : Response.json(document, { status });
	};
	const config = (athena: Partial<Config["athena"]> = {}): Pick<Config, "athena" | "environment"> => ({
		environment: "production",
		athena: { ...discoverAll(fhirBaseUrl), ...athena },
	});
	return { fhirBaseUrl, seen, fetcher, config };
}

const SMART_DOCUMENT = {
	issuer: "https://auth.example.org",
	authorization_endpoint: "https://auth.example.org/authorize",
	token_endpoint: "https://auth.example.org/token",
	revocation_endpoint: "https://auth.example.org/revoke",
	jwks_uri: "https://auth.example.org/jwks",
	code_challenge_methods_supported: ["S256"],
	token_endpoint_auth_methods_supported: ["private_key_jwt", "client_secret_basic"],
};

describe("discovery", () => {
	it("reads every endpoint from {FHIR base}/.well-known/smart-configuration when only the base is set, once", async () => {
		const { fhirBaseUrl, seen, fetcher, config } = server(SMART_DOCUMENT);
		const found = await authorizationServer(config(), fetcher);
		expect(found).toEqual({
			issuer: "https://auth.example.org",
			authorizeUrl: "https://auth.example.org/authorize",
			tokenUrl: "https://auth.example.org/token",
			revokeUrl: "https://auth.example.org/revoke",
			jwksUrl: "https://auth.example.org/jwks",
		});
		await authorizationServer(config(), fetcher);
		expect(seen).toEqual([`${fhirBaseUrl}/.well-known/smart-configuration`]);
	});

	it("lets explicit settings override what discovery says, and fetches nothing when everything is set", async () => {
		const { seen, fetcher, config } = server(SMART_DOCUMENT);
		const partly = await authorizationServer(config({ tokenUrl: "https://gateway.example.org/token" }), fetcher);
		expect(partly.tokenUrl).toBe("https://gateway.example.org/token");
		expect(partly.authorizeUrl).toBe("https://auth.example.org/authorize");
		const all = {
			issuer: "https://i",
			authorizeUrl: "https://a",
			tokenUrl: "https://t",
			revokeUrl: "https://r",
			jwksUrl: "https://j",
		};
		const { seen: none, fetcher: untouched, config: full } = server(SMART_DOCUMENT);
		expect(await authorizationServer(full(all), untouched)).toEqual(all);
		expect(none).toHaveLength(0);
		expect(seen).toHaveLength(1);
	});

	it("treats a server without a revocation endpoint as normal", async () => {
		const { revocation_endpoint: _r, ...withoutRevocation } = SMART_DOCUMENT;
		const { fetcher, config } = server(withoutRevocation);
		expect((await authorizationServer(config(), fetcher)).revokeUrl).toBeUndefined();
	});

	it("refuses a server that lacks PKCE S256 or private_key_jwt, naming what is missing", async () => {
		for (const [document, missing] of [
			[{ ...SMART_DOCUMENT, code_challenge_methods_supported: ["plain"] }, "PKCE S256"],
			[{ ...SMART_DOCUMENT, token_endpoint_auth_methods_supported: ["client_secret_basic"] }, "private_key_jwt"],
			[{ ...SMART_DOCUMENT, code_challenge_methods_supported: undefined }, "PKCE S256"],
		] as const) {
			const { fetcher, config } = server(document);
			await expect(authorizationServer(config(), fetcher)).rejects.toMatchObject({
				code: "server_unsupported",
				status: 503,
				message: expect.stringContaining(missing),
			});
		}
	});

	it("does not keep a failed read, and refuses http endpoints outside local development", async () => {
		const failing = server(undefined);
		await expect(authorizationServer(failing.config(), failing.fetcher)).rejects.toMatchObject({
			code: "discovery_unavailable",
		});
		await expect(authorizationServer(failing.config(), failing.fetcher)).rejects.toMatchObject({
			code: "discovery_unavailable",
		});
		expect(failing.seen).toHaveLength(2);
		const plain = server({ ...SMART_DOCUMENT, token_endpoint: "http://auth.example.org/token" });
		await expect(authorizationServer(plain.config(), plain.fetcher)).rejects.toMatchObject({
			code: "discovery_unavailable",
		});
	});
});

describe("profiles", () => {
	it("athena: the patient id names the practice; another practice than the launch's is a mix-up", () => {
		const athena = ehrProfile("athena");
		expect(athena.acceptPatient("a-80000.E-14545", undefined)).toEqual({ practice: "80000" });
		expect(athena.acceptPatient("a-80000.E-14545", "80000")).toEqual({ practice: "80000" });
		expect(() => athena.acceptPatient("a-195900.E-1", "80000")).toThrow(
			expect.objectContaining({ code: "practice_mismatch" }),
		);
		expect(() => athena.acceptPatient(UUID, undefined)).toThrow(
			expect.objectContaining({ code: "token_response_invalid" }),
		);
	});

	it("smart: any FHIR patient id, no practice", () => {
		const smart = ehrProfile("smart");
		expect(smart.acceptPatient(UUID, undefined)).toEqual({ practice: undefined });
		expect(smart.knowsPractices).toBe(false);
		expect(() => smart.acceptPatient("not/an id", undefined)).toThrow(
			expect.objectContaining({ code: "token_response_invalid" }),
		);
	});

	it("smart: searches go out as the app wrote them (no ah-practice, no added patient)", () => {
		const context = { fhirBaseUrl: "https://ehr.example.org/fhir", patient: UUID, practice: undefined };
		const smart = outboundFhirRequest("/Observation", "category=laboratory", {
			...context,
			completeSearches: ehrProfile("smart").completesSearches,
		});
		expect(smart.url).toBe("https://ehr.example.org/fhir/Observation?category=laboratory");
		const athena = outboundFhirRequest("/Observation", "category=laboratory", {
			fhirBaseUrl: "https://api.platform.athenahealth.com/fhir/r4",
			patient: "a-80000.E-14545",
			practice: "80000",
			completeSearches: ehrProfile("athena").completesSearches,
		});
		expect(athena.url).toContain("ah-practice=Organization/a-1.Practice-80000");
		expect(athena.url).toContain("patient=a-80000.E-14545");
	});
});
