import { env } from "cloudflare:test";
import fc from "fast-check";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { beforeEach, describe, expect, it } from "vitest";
import type { AppEnv } from "../../src/app-env";
import { AppError } from "../../src/errors";
import { importSigningKey } from "../../src/keys/signing-key";
import { requestLog } from "../../src/middleware/request-log";
import { exchangeCode } from "../../src/oauth/token-client";
import { RANDOM_TOKEN_PATTERN, sha256 } from "../../src/random";
import { BROWSER_COOKIE } from "../../src/routes/auth";
import { fhirProxyRoutes } from "../../src/routes/fhir";
import { SESSION_COOKIE } from "../../src/session/contract";
import { activeSigningKey } from "../../src/signer";
import { statePending, workerWith } from "./support/faults";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	launch,
	PATIENTS,
	sandbox,
	signIn,
	WORKER_ORIGIN,
} from "./support/sign-in";

/*
 * Property-based tests (fast-check) for what faces the internet, through the
 * real routes: the OAuth state at the callback, the launch and session
 * cookies, the proxy's outbound URL, athena's token responses and whatever KV
 * holds for the JWKS. The parsers' own properties (return_to, PEM, the
 * stream rewriter, outbound-url) are in properties.test.ts,
 * fhir-outbound-url.test.ts and fhir-rewrite-stream.test.ts.
 */

const worker = workerWith();
/** The worker without its per-client sign-in limit: these 200 callbacks test the state checks behind it. */
const unlimited = workerWith({ SIGN_IN_LIMITER: { limit: async () => ({ success: true }) } });
const FHIR_BASE = "http://localhost:3001/fhir/r4";
const BASE64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
const hostile = [
	"/",
	"//",
	"\\",
	"..",
	"%2e%2e",
	"%2E.",
	"%2f",
	"%5c",
	"%252e",
	"%00",
	"%0d%0a",
	"@",
	"%40",
	"?",
	"#",
	"=",
	";",
	",",
	" ",
	'"',
	"https:",
	"//evil.example",
	"evil.example",
	"oauth2",
	"v1",
	"token",
	".well-known",
	"Patient",
	"Observation",
	"a-80000.E-14545",
	"_history",
	"$everything",
	"\u3002",
	"%E3%80%82",
];
const hostileText = fc.oneof(
	fc.string({ maxLength: 60 }),
	fc.string({ unit: "grapheme", maxLength: 30 }),
	fc.array(fc.constantFrom(...hostile), { maxLength: 8 }).map((parts) => parts.join("")),
);

/** A header value as a browser could send it, or undefined when no browser could (Headers refuses it). */
function headerValue(value: string): string | undefined {
	try {
		new Headers({ Cookie: value });
		return value;
	} catch {
		return undefined;
	}
}

async function counts(): Promise<Record<string, number>> {
	return (await sandbox<{ counts: Record<string, number> }>("received")).counts;
}

/** One character of a 43-character token changed, or the token cut, lengthened or re-cased. */
function mutated(token: string) {
	return fc
		.oneof(
			fc
				.tuple(fc.nat({ max: 42 }), fc.constantFrom(...BASE64URL))
				.map(([at, ch]) => token.slice(0, at) + ch + token.slice(at + 1)),
			fc.nat({ max: 42 }).map((at) => token.slice(0, at)),
			fc.constantFrom(...BASE64URL).map((ch) => token + ch),
			fc.constant(token.toLowerCase()),
			fc.constant(token.toUpperCase()),
			fc.constant(` ${token}`),
			fc.constant(encodeURIComponent(`${token}=`)),
		)
		.filter((value) => value !== token);
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("hostile input: OAuth state", () => {
	it("refuses every state but the real one with a 400, redeems no code, and leaves the real sign-in usable", async () => {
		const jar = new CookieJar();
		const callback = await authorizeAtSandbox((await launch(jar)).toString(), PATIENTS.jane);
		const realState = callback.searchParams.get("state") ?? "";
		const code = callback.searchParams.get("code") ?? "";
		const before = await counts();
		const state = fc.oneof(
			hostileText,
			fc.string({ unit: fc.constantFrom(...BASE64URL), minLength: 43, maxLength: 43 }),
			mutated(realState),
		);
		let runs = 0;
		await fc.assert(
			fc.asyncProperty(state, async (candidate) => {
				fc.pre(candidate !== realState);
				runs++;
				const query = new URLSearchParams({ state: candidate, code, iss: callback.searchParams.get("iss") ?? "" });
				const response = await browserFetch(jar, `/callback?${query}`, {}, unlimited);
				expect(response.status).toBe(400);
				const body = (await response.json()) as { error: string };
				expect(["state_invalid", "state_unknown", "parameter_too_long"]).toContain(body.error);
			}),
			{ numRuns: 200 },
		);
		expect(runs).toBeGreaterThan(150);
		expect((await counts()).token ?? 0).toBe(before.token ?? 0);
		expect(jar.cookies.has(SESSION_COOKIE)).toBe(false);
		// None of them touched the real state: its callback still completes.
		expect(await statePending(callback)).toBe(true);
		expect((await browserFetch(jar, `${callback.pathname}${callback.search}`)).status).toBe(302);
	});

	it("the state object answers 'unknown' for any state it never saw, whatever the browser binding", async () => {
		await fc.assert(
			fc.asyncProperty(hostileText, fc.string({ maxLength: 60 }), async (state, browser) => {
				const stub = env.OAUTH_STATE.get(env.OAUTH_STATE.idFromName(await sha256(`never-issued:${state}`)));
				expect(await stub.consume(await sha256(browser))).toEqual({ ok: false, reason: "unknown" });
			}),
			{ numRuns: 100 },
		);
	});
});

describe("hostile input: the launch cookie", () => {
	it("/launch answers any Cookie header with a redirect to athena and a fresh or reused well-formed binding", async () => {
		const validToken = fc.string({ unit: fc.constantFrom(...BASE64URL), minLength: 43, maxLength: 43 });
		const cookie = fc.oneof(
			hostileText,
			hostileText.map((v) => `${BROWSER_COOKIE}=${v}`),
			validToken.map((v) => `${BROWSER_COOKIE}=${v}`),
			fc.tuple(hostileText, validToken).map(([a, b]) => `${BROWSER_COOKIE}=${a}; ${BROWSER_COOKIE}=${b}`),
		);
		await fc.assert(
			fc.asyncProperty(cookie, async (raw) => {
				const header = headerValue(raw);
				fc.pre(header !== undefined);
				const response = await worker(
					new Request(`${WORKER_ORIGIN}/launch?practice=80000`, { headers: { Cookie: header as string } }),
				);
				expect(response.status).toBe(302);
				expect(response.headers.get("Location")).toMatch(/^http:\/\/localhost:3001\/oauth2\/v1\/authorize\?/);
				const set = response.headers.getSetCookie().find((c) => c.startsWith(`${BROWSER_COOKIE}=`)) ?? "";
				const value = set.slice(BROWSER_COOKIE.length + 1).split(";")[0] ?? "";
				expect(value).toMatch(RANDOM_TOKEN_PATTERN);
				expect(set).toMatch(/; HttpOnly/i);
				// A well-formed binding the browser already had is reused (two tabs), never a malformed one.
				const sent = /__Host-athena_launch=([^;]*)/.exec(header as string)?.[1];
				if (sent !== undefined && value === sent) expect(sent).toMatch(RANDOM_TOKEN_PATTERN);
			}),
			{ numRuns: 150 },
		);
	});

	it("the callback of a real launch refuses any other launch cookie: 4xx, no code redeemed, no session", async () => {
		await fc.assert(
			fc.asyncProperty(fc.oneof(hostileText, fc.constant("")), fc.boolean(), async (raw, mutateReal) => {
				const jar = new CookieJar();
				const callback = await authorizeAtSandbox((await launch(jar)).toString(), PATIENTS.jane);
				const real = jar.cookies.get(BROWSER_COOKIE) ?? "";
				const other = mutateReal ? `${real.slice(0, 42)}${real.endsWith("A") ? "B" : "A"}` : raw;
				fc.pre(other !== real);
				const header = headerValue(`${BROWSER_COOKIE}=${other}`);
				fc.pre(header !== undefined);
				const before = (await counts()).token ?? 0;
				const response = await worker(
					new Request(`${WORKER_ORIGIN}${callback.pathname}${callback.search}`, {
						headers: { Cookie: header as string },
						redirect: "manual",
					}),
				);
				expect(response.status).toBe(400);
				expect(["state_other_browser"]).toContain(((await response.json()) as { error: string }).error);
				expect(response.headers.getSetCookie().some((c) => c.startsWith(`${SESSION_COOKIE}=`))).toBe(false);
				expect((await counts()).token ?? 0).toBe(before);
			}),
			{ numRuns: 30 },
		);
	});
});

describe("hostile input: the session cookie", () => {
	it("no cookie but the real one reaches the session: reads 401 without calling athena, logout and the record page leave it alone", async () => {
		const { jar } = await signIn();
		const real = jar.cookies.get(SESSION_COOKIE) ?? "";
		const before = await counts();
		const cookie = fc.oneof(
			hostileText,
			hostileText.map((v) => `${SESSION_COOKIE}=${v}`),
			mutated(real).map((v) => `${SESSION_COOKIE}=${v}`),
			fc
				.string({ unit: fc.constantFrom(...BASE64URL), minLength: 43, maxLength: 43 })
				.map((v) => `${SESSION_COOKIE}=${v}`),
		);
		await fc.assert(
			fc.asyncProperty(cookie, fc.constantFrom("read", "logout", "record", "session"), async (raw, route) => {
				const header = headerValue(raw);
				fc.pre(header !== undefined && !(header as string).includes(real));
				const headers = { Cookie: header as string, Origin: WORKER_ORIGIN };
				const request =
					route === "read"
						? new Request(`${WORKER_ORIGIN}/fhir/r4/Patient/${PATIENTS.jane.id}`, { headers })
						: route === "logout"
							? new Request(`${WORKER_ORIGIN}/logout`, { method: "POST", headers })
							: new Request(`${WORKER_ORIGIN}/${route === "record" ? "record" : "session"}`, {
									headers,
									redirect: "manual",
								});
				const response = await worker(request);
				const expected = { read: 401, logout: 200, record: 302, session: 200 }[route];
				expect(response.status).toBe(expected);
				if (route !== "record") {
					expect(await response.json()).toMatchObject({ status: "signed_out" });
				}
			}),
			{ numRuns: 200 },
		);
		expect((await counts()).fhir ?? 0).toBe(before.fhir ?? 0);
		expect((await counts()).revoke ?? 0).toBe(before.revoke ?? 0);
		expect(await (await browserFetch(jar, "/session")).json()).toMatchObject({ status: "connected" });
	});
});

describe("hostile input: the proxy's outbound URL, through the real route", () => {
	it("for any path and query, either refuses before calling athena or calls a URL under the FHIR base", async () => {
		const upstream: string[] = [];
		const app = new Hono<AppEnv>();
		// As src/app.ts does: an AppError becomes its status; anything else would be a 500.
		app.onError((error, c) =>
			error instanceof AppError
				? c.json({ error: error.code }, error.status as 400)
				: c.json({ error: "internal_error" }, 500),
		);
		app
			.use(requestId())
			.use(requestLog())
			.route(
				"/",
				fhirProxyRoutes({
					sessionFor: async () => ({
						idHash: "h".repeat(43),
						api: {
							accessToken: async () => ({
								status: "connected",
								accessToken: "t",
								expiresAt: Date.now() + 3_600_000,
								patient: PATIENTS.jane.id,
								practice: PATIENTS.jane.practice,
								fhirBaseUrl: FHIR_BASE,
							}),
							refreshAfterUnauthorized: async () => ({ status: "signed_out" }),
						},
					}),
					fetch: async (input) => {
						upstream.push(String(input instanceof Request ? input.url : input));
						return new Response('{"resourceType":"Bundle"}', { headers: { "Content-Type": "application/fhir+json" } });
					},
				}),
			);
		const segment = fc.oneof(fc.constantFrom(...hostile), fc.string({ maxLength: 12 }));
		const type = fc.constantFrom("Patient", "Observation", "Condition", "Binary", "DocumentReference");
		const path = fc.oneof(
			fc
				.array(fc.tuple(segment, fc.constantFrom("/", "")), { maxLength: 6 })
				.map((parts) => parts.map(([text, separator]) => text + separator).join("")),
			// Plausible reads and searches, with hostile ids.
			fc.tuple(type, fc.oneof(fc.stringMatching(/^[A-Za-z0-9.-]{1,24}$/), segment)).map(([t, id]) => `${t}/${id}`),
			type,
		);
		const query = fc.oneof(
			fc.constant(""),
			fc.array(segment, { maxLength: 6 }).map((parts) => parts.join("")),
			fc
				.dictionary(
					fc.oneof(fc.constantFrom("category", "_count", "patient", "ah-practice", "code"), segment),
					segment,
					{
						maxKeys: 4,
					},
				)
				.map((params) => new URLSearchParams(params).toString()),
		);
		let forwarded = 0;
		let refused = 0;
		await fc.assert(
			fc.asyncProperty(path, query, async (p, q) => {
				let request: Request;
				try {
					request = new Request(`${WORKER_ORIGIN}/fhir/r4/${p}${q ? `?${q}` : ""}`);
				} catch {
					fc.pre(false);
					return;
				}
				upstream.length = 0;
				const response = await app.request(request, undefined, env);
				expect(response.status).toBeLessThan(500);
				if (upstream.length === 0) {
					refused++;
					expect([400, 404]).toContain(response.status);
					return;
				}
				forwarded++;
				expect(upstream).toHaveLength(1);
				const url = new URL(upstream[0] as string);
				expect(upstream[0]?.startsWith(`${FHIR_BASE}/`)).toBe(true);
				expect(url.origin).toBe(new URL(FHIR_BASE).origin);
				expect(url.pathname.startsWith("/fhir/r4/")).toBe(true);
				expect(url.pathname.split("/")).not.toContain("..");
				expect(decodeURIComponent(url.pathname)).not.toMatch(/\/oauth2\/|\\|\/\.\.?\//);
			}),
			{ numRuns: 1000 },
		);
		// Both sides of the property were exercised.
		expect(forwarded).toBeGreaterThan(100);
		expect(refused).toBeGreaterThan(100);
	});
});

describe("hostile input: athena's token responses", () => {
	it("any token-endpoint answer is either a usable token set or an AppError with a 401, 502 or 503, never a crash", async () => {
		const key = await activeSigningKey(env.SIGNING_KEY);
		const field = fc.oneof(
			fc.string({ maxLength: 20 }),
			fc.integer(),
			fc.constant(null),
			fc.boolean(),
			fc.constant(""),
		);
		const tokenJson = fc.record(
			{
				access_token: field,
				token_type: fc.oneof(fc.constantFrom("Bearer", "bearer", "BEARER", "mac"), field),
				expires_in: fc.oneof(fc.nat(), fc.constantFrom("3600", "-1", "1e3", ""), field),
				scope: field,
				patient: field,
				refresh_token: field,
				id_token: field,
				error: fc.constantFrom("invalid_grant", "invalid_client", "invalid_request", "server_error"),
			},
			{ requiredKeys: [] },
		);
		const body = fc.oneof(
			tokenJson.map((j) => JSON.stringify(j)),
			fc.json(),
			fc.string({ maxLength: 200 }),
			fc.constant("<html><body>502 Bad Gateway</body></html>"),
			fc.constant(""),
		);
		const status = fc.oneof(
			fc.constantFrom(200, 201, 204, 400, 401, 403, 429, 500, 502, 503),
			fc.integer({ min: 200, max: 599 }),
		);
		await fc.assert(
			fc.asyncProperty(status, body, fc.constantFrom("application/json", "text/html", ""), async (code, text, type) => {
				const noBody = code === 204 || code === 205 || code === 304;
				const fetcher = (async () =>
					new Response(noBody ? null : text, {
						status: code,
						headers: type ? { "Content-Type": type } : {},
					})) as typeof fetch;
				try {
					const tokens = await exchangeCode(
						{ clientId: "c", key, fetch: fetcher },
						"http://localhost:3001/oauth2/v1/token",
						{ code: "x", redirectUri: "http://localhost:3000/callback", codeVerifier: "v".repeat(43) },
					);
					expect(code).toBeGreaterThanOrEqual(200);
					expect(code).toBeLessThan(300);
					expect(tokens.accessToken.length).toBeGreaterThan(0);
					expect(Number.isFinite(tokens.expiresAt)).toBe(true);
				} catch (error) {
					expect(error).toBeInstanceOf(AppError);
					expect([401, 502, 503]).toContain((error as AppError).status);
					// What a person may see never carries athena's text.
					if (text.length > 8) expect((error as AppError).message).not.toContain(text);
				}
			}),
			{ numRuns: 400 },
		);
	});
});

describe("hostile input: whatever KV holds as the JWKS", () => {
	it("always serves 200 with the signer's key first, public members only, at most five RS384 keys", async () => {
		const signer = (await importSigningKey(env.SIGNING_KEY, "SIGNING_KEY")).publicJwk;
		const second = (await importSigningKey(env.TEST_SECOND_RSA_PEM, "SIGNING_KEY")).publicJwk;
		const entry = fc.oneof(
			fc.anything(),
			fc.constant(second),
			fc.constant({ ...second, d: "AAAA", p: "AAAA" }),
			fc.constant({ ...second, alg: "RS256" }),
			fc.constant({ ...signer, kid: "x" }),
			fc.record({ kty: fc.constantFrom("RSA", "EC", "oct"), n: fc.string(), e: fc.string(), kid: fc.string() }),
		);
		const stored = fc.oneof(
			fc.string({ maxLength: 100 }),
			fc.json(),
			fc.array(entry, { maxLength: 9 }).map((keys) => JSON.stringify({ keys })),
			fc.constant(null),
		);
		await fc.assert(
			fc.asyncProperty(stored, async (text) => {
				const kv = { get: async () => text } as unknown as KVNamespace;
				const response = await workerWith({ JWKS_KV: kv })(new Request(`${WORKER_ORIGIN}/.well-known/jwks.json`));
				expect(response.status).toBe(200);
				const { keys } = (await response.json()) as { keys: Array<Record<string, unknown>> };
				expect(keys[0]).toEqual(signer);
				expect(keys.length).toBeLessThanOrEqual(5);
				for (const key of keys) {
					expect(Object.keys(key).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
					expect(key).toMatchObject({ kty: "RSA", alg: "RS384", use: "sig" });
				}
			}),
			{ numRuns: 200 },
		);
	});
});
