import { env, runInDurableObject } from "cloudflare:test";
import { decodeJwt } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import type { PendingAuthorization } from "../../src/durable/oauth-state";
import { clientResponseHeaders } from "../../src/fhir/headers";
import { describeCombinations, requiredCombinations } from "../../src/fhir/required-parameters";
import { exchangeCode } from "../../src/oauth/token-client";
import { sha256 } from "../../src/random";
import { activeSigningKey } from "../../src/signer";
import { patchConnection, storedSession, workerWith } from "./support/faults";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	launch,
	PATIENTS,
	type Received,
	sandbox,
	signIn,
} from "./support/sign-in";

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

/** A sign-in through `worker`, launched with `query`, picking `record` at athena; returns the callback's answer. */
async function connect(
	worker: (request: Request) => Promise<Response>,
	query: string,
	patient: { username: string; password: string; id: string },
	record = patient.id,
) {
	const jar = new CookieJar();
	const authorize = await launch(jar, query, worker);
	const callback = await authorizeAtSandbox(authorize.toString(), patient, "allow", record);
	const response = await browserFetch(jar, `${callback.pathname}${callback.search}`, {}, worker);
	return { jar, authorize, callback, response };
}

describe("connecting without a practice ID", () => {
	it("starts with one click: the patient picks the record at athena, and the practice comes from its id", async () => {
		const worker = workerWith();
		const { jar, authorize, response } = await connect(worker, "", PATIENTS.jane, PATIENTS.janeElsewhere.id);
		expect(authorize.searchParams.has("practice")).toBe(false);
		expect(response.status).toBe(302);
		const view = (await (await browserFetch(jar, "/session", {}, worker)).json()) as Record<string, unknown>;
		expect(view).toMatchObject({
			status: "connected",
			patient: PATIENTS.janeElsewhere.id,
			practice: PATIENTS.janeElsewhere.practice,
		});
	});

	it("a deployment that names its practice still cross-checks it, and hands back a grant for another practice", async () => {
		const worker = workerWith({ DEFAULT_PRACTICE: PATIENTS.jane.practice });
		const { jar, response } = await connect(worker, "", PATIENTS.jane, PATIENTS.janeElsewhere.id);
		expect(response.status).toBe(400);
		expect(await response.json()).toMatchObject({ error: "practice_mismatch" });
		expect(jar.cookies.size).toBe(1);
		const received = await sandbox<Received>("received");
		expect(received.assertions.filter((a) => a.endpoint === "revoke")).toHaveLength(1);
		// ...and accepts the practice it names.
		const same = await connect(worker, "", PATIENTS.jane);
		expect(same.response.status).toBe(302);
	});
});

describe("the issuer", () => {
	it("is settled at launch and kept with the state: the callback completes while discovery is down", async () => {
		const jar = new CookieJar();
		const authorize = await launch(jar, "");
		const discovery = (await (
			await env.SANDBOX.fetch("http://localhost:3001/fhir/r4/.well-known/smart-configuration")
		).json()) as { issuer: string };
		// athena's issuer is an Okta URL, not the API origin.
		expect(new URL(discovery.issuer).origin).not.toBe("http://localhost:3001");
		const stateHash = await sha256(authorize.searchParams.get("state") ?? "");
		const pending = await runInDurableObject(env.OAUTH_STATE.get(env.OAUTH_STATE.idFromName(stateHash)), (_o, s) =>
			s.storage.get<PendingAuthorization>("pending"),
		);
		expect(pending?.server?.issuer).toBe(discovery.issuer);

		const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
		expect(callback.searchParams.get("iss")).toBe(discovery.issuer);
		// A worker whose discovery document cannot be read (a FHIR base with none behind it).
		const discoveryDown = workerWith({ FHIR_BASE_URL: "http://localhost:3001/fhir/unreachable" });
		const response = await browserFetch(jar, `${callback.pathname}${callback.search}`, {}, discoveryDown);
		expect(response.status).toBe(302);
	});
});

describe("the token request", () => {
	it("carries client_id beside the assertion, and the assertion's aud is a setting (default: the token URL)", async () => {
		const key = await activeSigningKey(env.SIGNING_KEY);
		const sent: URLSearchParams[] = [];
		const fakeAthena: typeof fetch = async (_input, init) => {
			sent.push(new URLSearchParams(String(init?.body)));
			return Response.json({ error: "invalid_grant" }, { status: 400 });
		};
		const input = { code: "c", redirectUri: "http://localhost:3000/callback", codeVerifier: "v".repeat(43) };
		const tokenUrl = "https://api.preview.platform.athenahealth.com/oauth2/v1/token";
		const okta = "https://athena.okta.com/oauth2/aus2hff5eqFb7Wqfh297/v1/token";
		await exchangeCode({ clientId: "client-1", key, fetch: fakeAthena }, tokenUrl, input).catch(() => undefined);
		await exchangeCode({ clientId: "client-1", key, fetch: fakeAthena, tokenAudience: okta }, tokenUrl, input).catch(
			() => undefined,
		);
		expect(sent.map((body) => body.get("client_id"))).toEqual(["client-1", "client-1"]);
		expect(sent.map((body) => decodeJwt(body.get("client_assertion") ?? "").aud)).toEqual([tokenUrl, okta]);
	});
});

describe("signing out", () => {
	it("a revoked session's sign-out still ends the athena browser session (its id_token kept sealed)", async () => {
		const { jar } = await signIn();
		const { stub } = await storedSession(jar);
		await sandbox("revoke", { patient: PATIENTS.jane.id });
		await sandbox("expire-access-tokens", {});
		expect((await browserFetch(jar, `/fhir/r4/Patient/${PATIENTS.jane.id}`)).status).toBe(401);
		const keys = await runInDurableObject(stub, async (_o, s) => [...(await s.storage.list()).keys()].sort());
		expect(keys).toEqual(["logoutHint", "meta"]);
		const out = await browserFetch(jar, "/logout", {
			method: "POST",
			headers: { Accept: "text/html", Origin: "http://localhost:3000" },
		});
		expect(out.status).toBe(303);
		expect(new URL(out.headers.get("Location") ?? "").searchParams.get("id_token_hint")).toMatch(/^eyJ/);
	});

	it("a server without a revocation endpoint: sign-out still ends our session and says the grant stays there", async () => {
		const noEndSession = workerWith({ ATHENA_LOGOUT_URL: "" });
		for (const accept of ["application/json", "text/html"]) {
			const { jar } = await signIn();
			const { stub } = await storedSession(jar);
			await patchConnection(stub, (c) => ({
				...c,
				server: { tokenUrl: c.server?.tokenUrl ?? "", revokeUrl: undefined },
			}));
			const calls = (await sandbox<Received>("received")).assertions.length;
			const out = await browserFetch(
				jar,
				"/logout",
				{ method: "POST", headers: { Accept: accept, Origin: "http://localhost:3000" } },
				noEndSession,
			);
			expect((await sandbox<Received>("received")).assertions).toHaveLength(calls);
			if (accept === "application/json") {
				expect(await out.json()).toEqual({
					status: "signed_out",
					revokedAtAthena: false,
					serverRevocation: "not_offered",
				});
			} else {
				expect(out.headers.get("Location")).toBe("/?signed_out=grant_kept");
				const home = await browserFetch(jar, "/?signed_out=grant_kept", { headers: { Accept: "text/html" } });
				expect(await home.text()).toContain("remove it in your patient portal");
			}
			expect(await (await browserFetch(jar, "/session")).json()).toEqual({ status: "signed_out" });
		}
	});

	it("answers an API client's sign-out with JSON that carries no token", async () => {
		const { jar } = await signIn();
		const out = await browserFetch(jar, "/logout", {
			method: "POST",
			headers: { Accept: "application/json", Origin: "http://localhost:3000" },
		});
		expect(await out.json()).toEqual({ status: "signed_out", revokedAtAthena: true });
	});
});

describe("athena's answers reach the app usefully", () => {
	it("passes athena's rate limit headers through", () => {
		const upstream = new Headers({
			"Ratelimit-Limit": "500",
			"Ratelimit-Remaining": "499",
			"Ratelimit-Reset": "1",
			"X-Ratelimit-Limit": "50000",
			"X-Ratelimit-Remaining": "49999",
			"Set-Cookie": "athena=1",
		});
		const headers = clientResponseHeaders(upstream, "req-1", { bodyUnchanged: false });
		expect(headers.get("Ratelimit-Remaining")).toBe("499");
		expect(headers.get("X-Ratelimit-Limit")).toBe("50000");
		expect(headers.get("Ratelimit-Reset")).toBe("1");
		expect(headers.get("Set-Cookie")).toBeNull();
	});

	it("reads athena's required-parameter refusal and names the combinations", () => {
		const text =
			"The search query could not be performed because one of the required parameter combinations [[patient,intent],[_id]] was not provided.";
		const outcome = JSON.stringify({
			resourceType: "OperationOutcome",
			issue: [{ severity: "fatal", code: "forbidden", details: { text }, expression: ["MedicationRequest"] }],
		});
		const combinations = requiredCombinations(outcome);
		expect(combinations).toEqual([["patient", "intent"], ["_id"]]);
		expect(describeCombinations(combinations ?? [])).toBe("patient + intent, or _id");
		const scope = JSON.stringify({
			resourceType: "OperationOutcome",
			issue: [{ severity: "fatal", code: "forbidden", details: { text: "Invalid Token Scope" } }],
		});
		expect(requiredCombinations(scope)).toBeUndefined();
		expect(requiredCombinations("not json")).toBeUndefined();
	});
});
