import { env, exports } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { app } from "../../src/app";
import { jwksSettings, parseConfig, settings } from "../../src/config";
import { AppError } from "../../src/errors";
import { PRODUCTION_SETTINGS } from "./support/settings";

const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;

function health(bindings: Record<string, unknown>) {
	return app.fetch(new Request("http://localhost:3000/health"), bindings as unknown as Env, ctx);
}

const production = PRODUCTION_SETTINGS;

describe("configuration", () => {
	it("parses the local development settings into a typed config", () => {
		const result = parseConfig(env as unknown as Record<string, unknown>);
		expect(result.ok).toBe(true);
		if (!result.ok) return;
		expect(result.config).toMatchObject({
			environment: "local",
			publicOrigin: "http://localhost:3000",
			callbackPath: "/callback",
			// The issuer is discovered at launch locally, as in preview; production names athena's Okta issuer.
			athena: {
				fhirBaseUrl: "http://localhost:3001/fhir/r4",
				issuer: undefined,
				logoutUrl: "http://localhost:3001/oauth2/v1/logout",
				assertionAudience: undefined,
			},
			jwksMaxAgeSeconds: 300,
			// The test run lifts the budget (test/worker/vitest.config.ts); wrangler.toml says 5.
			tokenRequestsPerMinute: 1000,
		});
		expect(result.config.scopes).toContain("launch/patient");
		expect(result.config.sessionKeys[0]?.key).toHaveLength(32);
	});

	it("GET /health answers ok with the environment and version", async () => {
		const response = await exports.default.fetch("http://localhost:3000/health");
		expect(response.status).toBe(200);
		expect(await response.json()).toEqual({ ok: true, environment: "local", version: expect.any(String) });
	});

	it("GET /health names each missing setting with 503", async () => {
		const { CLIENT_ID, SIGNING_KEY, SESSION_ENCRYPTION_KEYS, FHIR_BASE_URL, ...rest } = env;
		const response = await health(rest);
		expect(response.status).toBe(503);
		const body = (await response.json()) as { ok: boolean; problems: string[] };
		expect(body.ok).toBe(false);
		for (const name of ["CLIENT_ID", "SIGNING_KEY", "SESSION_ENCRYPTION_KEYS", "FHIR_BASE_URL"]) {
			expect(body.problems.some((p) => p.startsWith(`${name}: is not set`))).toBe(true);
		}
	});

	it("refuses http and localhost athena URLs in production, naming each setting", () => {
		const result = parseConfig({
			...production,
			ATHENA_TOKEN_URL: "http://api.platform.athenahealth.com/oauth2/v1/token",
			FHIR_BASE_URL: "https://localhost:3001/fhir/r4",
			ATHENA_ISSUER: "https://127.0.0.1/oauth2",
		});
		expect(result.ok).toBe(false);
		if (result.ok) return;
		expect(result.problems).toEqual(
			expect.arrayContaining([
				"ATHENA_TOKEN_URL: must use https in production",
				"FHIR_BASE_URL: must not point at localhost in production",
				"ATHENA_ISSUER: must not point at localhost in production",
			]),
		);
	});

	it("accepts a production configuration on athena's hosts", () => {
		expect(parseConfig(production)).toMatchObject({ ok: true, config: { environment: "production" } });
	});

	it("refuses the placeholder client ID outside local development", () => {
		const result = parseConfig({ ...production, CLIENT_ID: "replace-with-production-client-id" });
		expect(result).toMatchObject({ ok: false, problems: [expect.stringMatching(/^CLIENT_ID: still the placeholder/)] });
	});

	it("reports a bad signing key on /health by the secret's name, never its value", async () => {
		const badKey = "-----BEGIN PRIVATE KEY-----\nTUlJQkFBQUFBQUFBQUFBQUFBQQ==\n-----END PRIVATE KEY-----";
		const response = await health({ ...env, SIGNING_KEY: badKey });
		expect(response.status).toBe(503);
		const text = await response.text();
		expect(text).toContain("SIGNING_KEY");
		expect(text).not.toContain("TUlJQkFBQUFBQUFBQUFBQUFBQQ");
	});

	it("explains a malformed session key without echoing it", () => {
		const result = parseConfig({ ...production, SESSION_ENCRYPTION_KEYS: "v1:c2hvcnQ=" });
		expect(result).toMatchObject({
			ok: false,
			problems: ['SESSION_ENCRYPTION_KEYS: key "v1" must be 32 bytes (AES-256), got 5'],
		});
		const garbage = parseConfig({ ...production, SESSION_ENCRYPTION_KEYS: "secretvalue" });
		expect(JSON.stringify(garbage)).not.toContain("secretvalue");
	});

	it("refuses a redirect URI off the public origin and an unknown environment", () => {
		const result = parseConfig({
			...production,
			REDIRECT_URI: "https://elsewhere.example.com/cb",
			ENVIRONMENT: "prod",
		});
		expect(result).toMatchObject({ ok: false, problems: [expect.stringMatching(/^ENVIRONMENT: /)] });
		const offOrigin = parseConfig({ ...production, REDIRECT_URI: "https://elsewhere.example.com/cb" });
		expect(offOrigin).toMatchObject({
			ok: false,
			problems: [expect.stringMatching(/^REDIRECT_URI: must be on PUBLIC_ORIGIN/)],
		});
	});
});

describe("one reader of settings", () => {
	it("names each new number setting that is out of range, and takes the defaults when they are absent", () => {
		const bad = parseConfig({
			...(env as unknown as Record<string, unknown>),
			SIGN_IN_SHARE_PERCENT: "5",
			TOKEN_TIMEOUT_MS: "99",
			FHIR_TIMEOUT_MS: "abc",
			JWKS_KV_CACHE_SECONDS: "11",
			SESSION_REFRESHES_PER_MINUTE: "0",
		});
		expect(bad.ok).toBe(false);
		if (bad.ok) return;
		for (const name of [
			"SIGN_IN_SHARE_PERCENT",
			"TOKEN_TIMEOUT_MS",
			"FHIR_TIMEOUT_MS",
			"JWKS_KV_CACHE_SECONDS",
			"SESSION_REFRESHES_PER_MINUTE",
		]) {
			expect(bad.problems.some((p) => p.startsWith(`${name}:`))).toBe(true);
		}
		expect(bad.environment).toBe("local");
		const {
			SIGN_IN_SHARE_PERCENT: _share,
			TOKEN_TIMEOUT_MS: _token,
			FHIR_TIMEOUT_MS: _fhir,
			JWKS_KV_CACHE_SECONDS: _cache,
			SESSION_REFRESHES_PER_MINUTE: _refreshes,
			...rest
		} = env as unknown as Record<string, unknown>;
		const defaults = parseConfig(rest);
		expect(defaults.ok && defaults.config).toMatchObject({
			signInShare: 0.6,
			tokenTimeoutMs: 10_000,
			fhirTimeoutMs: 20_000,
			jwksKvCacheSeconds: 10,
			sessionRefreshesPerMinute: 3,
		});
	});

	it("settings() gives the config or throws the one config_invalid error, naming settings but no secret", () => {
		expect(settings(env).clientId).toBe("local-dev-client");
		const { CLIENT_ID: _c, ...rest } = env as unknown as Record<string, unknown>;
		let thrown: unknown;
		try {
			settings({ ...rest });
		} catch (error) {
			thrown = error;
		}
		expect(thrown).toBeInstanceOf(AppError);
		expect(thrown).toMatchObject({ code: "config_invalid", status: 503 });
		expect((thrown as AppError).detail).toContain("CLIENT_ID: is not set");
		expect((thrown as AppError).detail).not.toContain(String(env.SIGNING_KEY).slice(40, 80));
	});

	it("serves the JWKS settings even when the rest is not configured, an invalid number falling back to its default", () => {
		const { CLIENT_ID: _c, ...rest } = env as unknown as Record<string, unknown>;
		expect(jwksSettings({ ...rest, JWKS_MAX_AGE_SECONDS: "120", JWKS_KV_CACHE_SECONDS: "99" })).toEqual({
			signingKeyPem: env.SIGNING_KEY,
			maxAgeSeconds: 120,
			kvCacheSeconds: 10,
		});
	});
});
