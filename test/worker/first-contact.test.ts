import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { workerWith } from "./support/faults";
import { authorizeAtSandbox, browserFetch, CookieJar, launch, PATIENTS, sandbox } from "./support/sign-in";

const html = { headers: { Accept: "text/html" } };

/** Every structured line the worker logged as a warning or an error during the test. */
let warnings: Array<Record<string, unknown>> = [];
beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
	warnings = [];
	const keep = (line: unknown) => {
		warnings.push(JSON.parse(String(line)) as Record<string, unknown>);
	};
	vi.spyOn(console, "warn").mockImplementation(keep);
	vi.spyOn(console, "error").mockImplementation(keep);
});
afterEach(() => vi.restoreAllMocks());

const diagnosisLine = () => warnings.find((w) => w.msg === "athena refused the sign-in");

/** A sign-in up to athena's redirect back, then the callback as a browser asks for it. */
async function callbackPage(worker?: Parameters<typeof launch>[2]) {
	const jar = new CookieJar();
	const authorize = await launch(jar, "", worker);
	const back = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
	const response = await browserFetch(jar, `${back.pathname}${back.search}`, html, worker);
	return { response, page: await response.text(), code: back.searchParams.get("code") ?? "" };
}

describe("the callback names the cause of a first sign-in failure", () => {
	it("invalid_client for a kid athena does not know: wait JWKS_MAX_AGE_SECONDS + 70 s, check the portal's JWKS URL", async () => {
		await sandbox("faults", {
			target: "token",
			oauthError: "invalid_client",
			description: "The client_assertion JWT kid is invalid.",
			times: 1,
		});
		const { response, page, code } = await callbackPage();
		expect(response.status).toBe(502);
		expect(page).toContain("did not accept this app&#39;s credentials");
		expect(page).toContain("<code>kid_unknown</code>");
		expect(page).toContain("wait JWKS_MAX_AGE_SECONDS + 70 s = 370 s after publishing a key");
		expect(page).toContain("http://localhost:3000/.well-known/jwks.json");
		const line = diagnosisLine();
		expect(line).toMatchObject({
			endpoint: "token",
			error: "invalid_client",
			description: "The client_assertion JWT kid is invalid.",
			cause: "kid_unknown",
		});
		const failed = warnings.find((w) => w.msg === "request failed");
		expect(failed).toMatchObject({ code: "athena_rejected_client" });
		expect(String(failed?.detail)).toContain("invalid_client (HTTP 401): The client_assertion JWT kid is invalid.");
		expect(JSON.stringify(warnings)).not.toContain(code);
	});

	it("invalid_client for the assertion's aud, from the sandbox's real check: names ATHENA_ASSERTION_AUDIENCE", async () => {
		const worker = workerWith({ ATHENA_ASSERTION_AUDIENCE: "https://athena.example/oauth2/v1/token" });
		const { response, page } = await callbackPage(worker);
		expect(response.status).toBe(502);
		expect(page).toContain("<code>assertion_audience</code>");
		expect(page).toContain("ATHENA_ASSERTION_AUDIENCE (aud now https://athena.example/oauth2/v1/token)");
		expect(diagnosisLine()).toMatchObject({
			description: "The audience claim for client_assertion must be the endpoint invoked for the request.",
			cause: "assertion_audience",
		});
	});

	it("invalid_client for a client ID athena does not know: names CLIENT_ID", async () => {
		await sandbox("faults", {
			target: "token",
			oauthError: "invalid_client",
			description: "Invalid value for 'client_id' parameter.",
			times: 1,
		});
		const { page } = await callbackPage();
		expect(page).toContain("<code>client_id_unknown</code>");
		expect(page).toContain("CLIENT_ID (now local-dev-client)");
	});

	it("invalid_scope at authorize: lists SCOPES to tick on the portal", async () => {
		// The portal has only some of the scopes the app asks for.
		await sandbox("config", { allowedScopes: ["openid", "fhirUser", "offline_access", "launch/patient"] });
		const jar = new CookieJar();
		const authorize = await launch(jar, "");
		const redirected = await (await import("cloudflare:workers")).env.SANDBOX.fetch(authorize.toString(), {
			redirect: "manual",
		});
		const back = new URL(redirected.headers.get("Location") ?? "");
		expect(back.searchParams.get("error")).toBe("invalid_scope");
		const response = await browserFetch(jar, `${back.pathname}${back.search}`, html);
		expect(response.status).toBe(400);
		const page = await response.text();
		expect(page).toContain("athenahealth could not complete the sign-in.");
		expect(page).toContain("<code>scope_not_registered</code>");
		expect(page).toContain("patient/Observation.read");
		expect(diagnosisLine()).toMatchObject({
			endpoint: "authorize",
			error: "invalid_scope",
			description: "One or more scopes are not configured for the authorization server resource.",
			cause: "scope_not_registered",
		});
	});

	it("keeps the diagnosis out of a JSON answer, and a token athena echoes out of the log", async () => {
		await sandbox("faults", {
			target: "token",
			oauthError: "invalid_request",
			description: `bad code eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJlc2lnbmF0dXJl and ${"A".repeat(40)}`,
			times: 1,
		});
		const jar = new CookieJar();
		const authorize = await launch(jar, "");
		const back = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
		const response = await browserFetch(jar, `${back.pathname}${back.search}`);
		expect(await response.json()).toEqual({
			error: "token_request_refused",
			message: "athenahealth refused the sign-in request.",
			requestId: expect.any(String),
		});
		expect(diagnosisLine()?.description).toBe("bad code [redacted] and [redacted]");
		expect(JSON.stringify(warnings)).not.toContain("eyJ");
	});
});

describe("who sees the diagnosis", () => {
	const deployed = (environment: "preview" | "production") =>
		workerWith({
			ENVIRONMENT: environment,
			PUBLIC_ORIGIN: "https://connector.test",
			REDIRECT_URI: "https://connector.test/callback",
			CLIENT_ID: `${environment}-client`,
			ATHENA_AUTHORIZE_URL: "https://athena.test/oauth2/v1/authorize",
			ATHENA_TOKEN_URL: "https://athena.test/oauth2/v1/token",
			ATHENA_REVOKE_URL: "https://athena.test/oauth2/v1/revoke",
			ATHENA_ISSUER: "https://athena.test/oauth2/aus1",
			ATHENA_LOGOUT_URL: "https://athena.test/oauth2/v1/logout",
			ATHENA_JWKS_URL: "https://athena.test/oauth2/v1/keys",
			FHIR_BASE_URL: "https://athena.test/fhir/r4",
			// The test run lists the local sandbox as a second server; a deployed worker lists none here.
			SMART_SERVERS: "[]",
		});
	async function scopeRefusal(environment: "preview" | "production") {
		const worker = deployed(environment);
		const jar = new CookieJar();
		const authorize = await launch(jar, "", worker);
		const state = authorize.searchParams.get("state") ?? "";
		const query = new URLSearchParams({
			error: "invalid_scope",
			error_description: "One or more scopes are not configured for the authorization server resource.",
			state,
		});
		const response = await browserFetch(jar, `/callback?${query}`, html, worker);
		return { status: response.status, page: await response.text() };
	}

	it("shows it to whoever tests preview", async () => {
		const { status, page } = await scopeRefusal("preview");
		expect(status).toBe(400);
		expect(page).toContain("<code>scope_not_registered</code>");
	});

	it("shows a patient in production only the plain message, and still logs the cause", async () => {
		const { status, page } = await scopeRefusal("production");
		expect(status).toBe(400);
		expect(page).toContain("athenahealth could not complete the sign-in. Please try connecting again.");
		expect(page).not.toContain("scope_not_registered");
		expect(page).not.toContain("SCOPES");
		expect(diagnosisLine()).toMatchObject({ cause: "scope_not_registered", error: "invalid_scope" });
	});
});
