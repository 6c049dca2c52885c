import { createServer, type IncomingMessage, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { decodeProtectedHeader, importJWK, jwtVerify } from "jose";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { run } from "../../scripts/keys/cli.mjs";
import { generateSigningKey, type PublicJwk } from "../../scripts/keys/key-material.mjs";
import { liveCheck } from "../../scripts/keys/live-check.mjs";
import { recordingWrangler, settings, tempDir } from "./helpers.js";

/**
 * A stand-in for the deployed worker (its JWKS and callback) and for athena's
 * discovery and token endpoint, which checks the client assertion as Okta
 * does and answers in Okta's words.
 */
interface TokenCall {
	form: URLSearchParams;
	header: Record<string, unknown>;
	claims: Record<string, unknown>;
}
const T0 = Date.parse("2026-11-28T10:00:00Z");
let server: Server;
let origin: string;
let jwks: { status: number; body: string; headers: Record<string, string> };
/** The keys athena holds for the client (its cached copy of our JWKS). */
let athenaKnows: PublicJwk[] = [];
let athenaClientId = "local-client";
let athenaAudience = "";
const tokenCalls: TokenCall[] = [];

async function bodyOf(req: IncomingMessage): Promise<string> {
	let text = "";
	for await (const chunk of req) text += chunk;
	return text;
}

async function oktaToken(form: URLSearchParams): Promise<{ status: number; body: unknown }> {
	const assertion = form.get("client_assertion") ?? "";
	const header = decodeProtectedHeader(assertion) as Record<string, unknown>;
	const invalid = (error_description: string) => ({
		status: 401,
		body: { error: "invalid_client", error_description },
	});
	if (form.get("client_id") !== athenaClientId) return invalid("Invalid value for 'client_id' parameter.");
	const jwk = athenaKnows.find((k) => k.kid === header.kid);
	if (!jwk) return invalid("The client_assertion JWT kid is invalid.");
	const { payload } = await jwtVerify(assertion, await importJWK(jwk, "RS384"), {
		algorithms: ["RS384"],
		typ: "JWT",
		currentDate: new Date(T0),
	});
	tokenCalls.push({ form, header, claims: payload as Record<string, unknown> });
	if (payload.aud !== athenaAudience) {
		return invalid("The audience claim for client_assertion must be the endpoint invoked for the request.");
	}
	return {
		status: 400,
		body: {
			error: "unauthorized_client",
			error_description: "The client is not authorized to use the provided grant type.",
		},
	};
}

beforeAll(async () => {
	server = createServer(async (req, res) => {
		const path = new URL(req.url ?? "/", "http://x").pathname;
		if (path === "/.well-known/jwks.json") {
			res.writeHead(jwks.status, jwks.headers);
			res.end(jwks.body);
		} else if (path === "/fhir/r4/.well-known/smart-configuration") {
			res.writeHead(200, { "Content-Type": "application/json" });
			res.end(
				JSON.stringify({
					authorization_endpoint: `${origin}/oauth2/v1/authorize`,
					token_endpoint: `${origin}/oauth2/v1/token`,
				}),
			);
		} else if (path === "/callback") {
			res.writeHead(400, { "Content-Type": "application/json" });
			res.end("{}");
		} else if (path === "/oauth2/v1/token" && req.method === "POST") {
			const answer = await oktaToken(new URLSearchParams(await bodyOf(req)));
			res.writeHead(answer.status, { "Content-Type": "application/json" });
			res.end(JSON.stringify(answer.body));
		} else {
			res.writeHead(404, { "Content-Type": "application/json" });
			res.end("{}");
		}
	});
	await new Promise<void>((resolve) => server.listen(0, "localhost", resolve));
	origin = `http://localhost:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

let tmp: ReturnType<typeof tempDir>;
let fake: ReturnType<typeof recordingWrangler>;
let published: PublicJwk;
const lines: string[] = [];
const localSettings = (vars: Record<string, string> = {}) =>
	settings("local", {
		local: {
			PUBLIC_ORIGIN: origin,
			REDIRECT_URI: `${origin}/callback`,
			CLIENT_ID: "local-client",
			FHIR_BASE_URL: `${origin}/fhir/r4`,
			ATHENA_TOKEN_URL: `${origin}/oauth2/v1/token`,
			...vars,
		},
	});
/** `npm run keys -- live check --env local --url <origin> ...` against the stand-in. */
const liveCheckCli = async (...extra: string[]) => {
	lines.length = 0;
	const code = await run(
		["live", "check", "--env", "local", "--url", origin, "--keys-dir", join(tmp.dir, ".keys"), ...extra],
		{
			cwd: tmp.dir,
			wrangler: fake.wrangler,
			settings: localSettings(),
			now: () => T0,
			out: (l) => lines.push(l),
			err: (l) => lines.push(l),
		},
	);
	return { code, text: lines.join("\n"), line: lines.find((l) => l.includes("client authentication")) ?? "" };
};

beforeEach(async () => {
	tmp = tempDir();
	fake = recordingWrangler();
	tokenCalls.length = 0;
	athenaClientId = "local-client";
	athenaAudience = `${origin}/oauth2/v1/token`;
	// The local environment's first key, made by the CLI itself (private copy in .keys/local/).
	const init = await run(
		["init", "--env", "local", "--keys-dir", join(tmp.dir, ".keys"), "--dev-vars", join(tmp.dir, ".dev.vars")],
		{
			cwd: tmp.dir,
			wrangler: fake.wrangler,
			settings: localSettings(),
			now: () => T0,
			out: () => undefined,
			err: () => undefined,
		},
	);
	expect(init).toBe(0);
	published = (JSON.parse(fake.kv.local?.jwks ?? "") as { keys: PublicJwk[] }).keys[0] as PublicJwk;
	athenaKnows = [published];
	jwks = {
		status: 200,
		body: JSON.stringify({ keys: [published] }),
		headers: { "Content-Type": "application/json", "Cache-Control": "public, max-age=300" },
	};
});
afterEach(() => tmp.remove());

describe("live check: client authentication without a patient", () => {
	it("sends one client_credentials request signed as the worker signs, and reports the grant refusal as success", async () => {
		const { code, line, text } = await liveCheckCli();
		expect(code, text).toBe(0);
		expect(line).toMatch(/^ok {4}client authentication: athena answered 400 unauthorized_client/);
		expect(line).toContain("athena accepted our assertion, refused only the grant");
		expect(line).toContain("spent 1 token request of local's per-minute budget at athena (skip with --no-token-call)");
		expect(tokenCalls).toHaveLength(1);
		const [call] = tokenCalls;
		expect(call?.header).toEqual({ alg: "RS384", typ: "JWT", kid: published.kid });
		expect(call?.form.get("grant_type")).toBe("client_credentials");
		expect(call?.form.get("client_id")).toBe("local-client");
		const claims = call?.claims ?? {};
		expect(claims).toMatchObject({ iss: "local-client", sub: "local-client", aud: `${origin}/oauth2/v1/token` });
		expect(typeof claims.jti).toBe("string");
		expect(Number(claims.exp) - Number(claims.iat)).toBeLessThanOrEqual(300);
		expect(claims.iat).toBe(T0 / 1000);
	});

	it("sends nothing with --no-token-call, and says so", async () => {
		const { code, line } = await liveCheckCli("--no-token-call");
		expect(code).toBe(0);
		expect(line).toBe("ok    client authentication: skipped (--no-token-call)");
		expect(tokenCalls).toHaveLength(0);
	});

	it("names the kid athena does not know yet, and how long to wait", async () => {
		athenaKnows = [generateSigningKey().publicJwk];
		const { code, line } = await liveCheckCli();
		expect(code).toBe(1);
		expect(line).toContain('athena answered 401 invalid_client "The client_assertion JWT kid is invalid."');
		expect(line).toContain("Cause kid_unknown");
		expect(line).toContain(
			`Portal "JWKS URL" = ${origin}/.well-known/jwks.json; wait JWKS_MAX_AGE_SECONDS + 70 s = 370 s`,
		);
	});

	it("names ATHENA_ASSERTION_AUDIENCE when athena wants another aud, and signs with it when set", async () => {
		athenaAudience = "https://athena.okta.example/oauth2/aus1/v1/token";
		const refused = await liveCheck({
			url: origin,
			settings: localSettings(),
			activeKid: published.kid,
			keysDir: join(tmp.dir, ".keys"),
			now: () => T0,
		});
		const auth = refused.find((c) => c.name === "client authentication");
		expect(auth?.ok).toBe(false);
		expect(auth?.detail).toContain(
			`Cause assertion_audience; change: ATHENA_ASSERTION_AUDIENCE (aud now ${origin}/oauth2/v1/token)`,
		);
		const fixed = await liveCheck({
			url: origin,
			settings: localSettings({ ATHENA_ASSERTION_AUDIENCE: athenaAudience }),
			activeKid: published.kid,
			keysDir: join(tmp.dir, ".keys"),
			now: () => T0,
		});
		expect(fixed.find((c) => c.name === "client authentication")?.ok).toBe(true);
		expect(tokenCalls.at(-1)?.claims.aud).toBe(athenaAudience);
	});

	it("names CLIENT_ID when athena does not know the client", async () => {
		athenaClientId = "the-portal-client";
		const { line } = await liveCheckCli();
		expect(line).toContain("Cause client_id_unknown; change: CLIENT_ID (now local-client)");
	});

	it("fails without the private copy, and names the way out", async () => {
		const checks = await liveCheck({
			url: origin,
			settings: localSettings(),
			activeKid: published.kid,
			keysDir: join(tmp.dir, "elsewhere"),
			now: () => T0,
		});
		const auth = checks.find((c) => c.name === "client authentication");
		expect(auth?.ok).toBe(false);
		expect(auth?.detail).toMatch(/^not tried: No private copy of key .* or pass --no-token-call\.$/);
		expect(tokenCalls).toHaveLength(0);
	});
});

describe("live check: the JWKS as athena's fetcher sees it", () => {
	const jwksProblem = async () => {
		const checks = await liveCheck({
			url: origin,
			settings: localSettings(),
			activeKid: published.kid,
			tokenCall: false,
		});
		return checks.find((c) => c.name === "jwks");
	};
	const html = (status: number, body: string, headers: Record<string, string> = {}) => {
		jwks = { status, body, headers: { "Content-Type": "text/html; charset=UTF-8", ...headers } };
	};

	it("recognises a Cloudflare challenge by its cf-mitigated header", async () => {
		html(403, "<html><body>blocked</body></html>", { "cf-mitigated": "challenge" });
		const check = await jwksProblem();
		expect(check?.ok).toBe(false);
		expect(check?.detail).toContain("answered 403 with a Cloudflare challenge page: athena cannot pass it.");
	});

	it('recognises a challenge page by "Just a moment..." or challenge-platform', async () => {
		html(503, "<!DOCTYPE html><title>Just a moment...</title>");
		expect((await jwksProblem())?.detail).toContain("answered 503 with a Cloudflare challenge page");
		html(200, '<script src="/cdn-cgi/challenge-platform/h/b/orchestrate/chl_page/v1"></script>');
		expect((await jwksProblem())?.detail).toContain("answered 200 with a Cloudflare challenge page");
	});

	it("refuses a redirect instead of following it", async () => {
		jwks = { status: 301, body: "", headers: { Location: "https://www.example.com/.well-known/jwks.json" } };
		expect((await jwksProblem())?.detail).toContain(
			"answered 301, a redirect to https://www.example.com/.well-known/jwks.json: athena does not follow redirects",
		);
	});

	it("refuses another HTML page and a wrong content type", async () => {
		html(200, "<html><body>Sign in</body></html>");
		expect((await jwksProblem())?.detail).toContain("answered 200 with an HTML page");
		jwks = { ...jwks, headers: { "Content-Type": "text/plain" }, body: JSON.stringify({ keys: [published] }) };
		expect((await jwksProblem())?.detail).toContain('has content type "text/plain"; athena expects application/json');
	});

	it("refuses a max-age longer than JWKS_MAX_AGE_SECONDS", async () => {
		jwks = { ...jwks, headers: { "Content-Type": "application/json", "Cache-Control": "public, max-age=3600" } };
		expect((await jwksProblem())?.detail).toContain(
			"Cache-Control max-age 3600 s is longer than JWKS_MAX_AGE_SECONDS (300 s)",
		);
	});
});
