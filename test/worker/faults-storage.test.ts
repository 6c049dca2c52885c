import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { importSigningKey } from "../../src/keys/signing-key";
import { BROWSER_COOKIE } from "../../src/routes/auth";
import { SESSION_COOKIE } from "../../src/session/contract";
import {
	expectCleanFailure,
	failingNamespace,
	html,
	recordingNamespace,
	resetTokenBudget,
	statePending,
	storedKeys,
	storedSession,
	withSessionEnv,
	workerWith,
} from "./support/faults";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	launch,
	PATIENTS,
	type Received,
	sandbox,
	signIn,
	WORKER_ORIGIN,
} from "./support/sign-in";

/*
 * Storage on a bad day: Workers KV (the published JWKS) empty, corrupt or
 * throwing, and each Durable Object (sessions, OAuth state, token budget)
 * failing its calls, as during a reset after a deploy or an overload. Each
 * row: what the app (JSON) and the patient (HTML) see, and what survives.
 */

const healthy = workerWith();
const READ = `/fhir/r4/Patient/${PATIENTS.jane.id}`;
const sameOrigin = { Origin: WORKER_ORIGIN };

async function tokenCalls(): Promise<number> {
	return (await sandbox<Received>("received")).tokenCalls.length;
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
	await resetTokenBudget();
	await env.JWKS_KV.delete("jwks");
});

describe("fault matrix: KV holding the published JWKS", () => {
	const rows: Array<{ kv: string; stored: string | null; throws?: boolean }> = [
		{ kv: "empty", stored: null },
		{ kv: "corrupt (not JSON)", stored: '{"keys": [' },
		{ kv: "corrupt (keys not an array)", stored: JSON.stringify({ keys: { kty: "RSA" } }) },
		{ kv: "throwing on read", stored: null, throws: true },
	];
	for (const row of rows) {
		it(`KV ${row.kv}: the JWKS still serves the signer's key${row.throws ? "" : " and a sign-in still completes"}`, async () => {
			if (row.stored !== null) await env.JWKS_KV.put("jwks", row.stored);
			const kv = row.throws
				? ({ get: () => Promise.reject(new Error("KV GET failed: 503 Service Unavailable")) } as unknown as KVNamespace)
				: env.JWKS_KV;
			const worker = workerWith({ JWKS_KV: kv });
			const response = await worker(new Request(`${WORKER_ORIGIN}/.well-known/jwks.json`));
			expect(response.status).toBe(200);
			const signer = await importSigningKey(env.SIGNING_KEY, "SIGNING_KEY");
			expect(await response.json()).toEqual({ keys: [signer.publicJwk] });
			if (row.throws) return;
			// athena (the sandbox) fetches this JWKS, from this KV, to check the code exchange's client assertion.
			const { jar } = await signIn();
			expect(await (await browserFetch(jar, "/session")).json()).toMatchObject({ status: "connected" });
		});
	}
});

describe("fault matrix: the session's Durable Object failing", () => {
	const down = () => workerWith({ SESSIONS: failingNamespace(env.SESSIONS) });

	const rows: Array<{
		request: string;
		init: RequestInit;
		status: number;
		json?: Record<string, unknown>;
		page?: RegExp;
		retryAfter: string;
	}> = [
		{
			request: "GET /session",
			init: {},
			status: 503,
			json: { error: "session_unavailable", message: expect.stringMatching(/could not be reached/) },
			retryAfter: "5",
		},
		{ request: "GET /session", init: html, status: 503, page: /could not be reached/, retryAfter: "5" },
		{
			request: `GET ${READ}`,
			init: {},
			status: 503,
			json: { status: "unavailable", error: "session_unavailable" },
			retryAfter: "5",
		},
		{ request: "GET /record", init: html, status: 503, page: /You are still connected/, retryAfter: "5" },
		{ request: "GET /", init: html, status: 503, page: /You are still connected/, retryAfter: "5" },
		{
			request: "POST /logout",
			init: { method: "POST", headers: sameOrigin },
			status: 503,
			json: { error: "session_unavailable" },
			retryAfter: "5",
		},
		{
			// "Try again" must post again: a reload link would GET /logout.
			request: "POST /logout",
			init: { method: "POST", headers: { ...sameOrigin, Accept: "text/html" } },
			status: 503,
			page: /This service is having trouble[\s\S]*<form[^>]*method="post"[^>]*action="\/logout"/,
			retryAfter: "5",
		},
	];
	for (const row of rows) {
		const accept = row.page ? "page" : "JSON";
		it(`${row.request} (${accept}) while the session object is down: ${row.status}, and the session is intact afterwards`, async () => {
			const { jar } = await signIn();
			const before = await storedSession(jar);
			const [method, path] = row.request.split(" ") as [string, string];
			const response = await browserFetch(jar, path, { method, ...row.init }, down());
			const { text, json } = await expectCleanFailure(response, row.status);
			expect(response.headers.get("Retry-After")).toBe(row.retryAfter);
			if (row.json) expect(json).toMatchObject(row.json);
			if (row.page) {
				expect(response.headers.get("Content-Type")).toContain("text/html");
				expect(text).toMatch(row.page);
			}
			// The cookie is kept (the patient is not signed out by our failure) and the session answers again.
			expect(jar.cookies.has(SESSION_COOKIE)).toBe(true);
			expect(await (await browserFetch(jar, "/session", {}, healthy)).json()).toMatchObject({ status: "connected" });
			expect((await browserFetch(jar, READ, {}, healthy)).status).toBe(200);
			expect((await storedSession(jar)).opened).toEqual(before.opened);
		});
	}

	it("callback while the session object is down: 503, no cookie, no session, athena's tokens revoked", async () => {
		const jar = new CookieJar();
		const names: string[] = [];
		const authorize = await launch(jar, "practice=80000", healthy);
		const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
		const response = await browserFetch(
			jar,
			`${callback.pathname}${callback.search}`,
			html,
			workerWith({ SESSIONS: failingNamespace(recordingNamespace(env.SESSIONS, names)) }),
		);
		const { text } = await expectCleanFailure(response, 503);
		expect(text).toContain("could not be saved");
		expect(jar.cookies.has(SESSION_COOKIE)).toBe(false);
		expect(names).toHaveLength(1);
		expect(await storedKeys(env.SESSIONS, names)).toEqual([0]);
		const received = await sandbox<Received>("received");
		expect(received.assertions.filter((a) => a.endpoint === "revoke" && a.accepted)).toHaveLength(1);
	});
});

describe("fault matrix: the OAuth state's Durable Object failing", () => {
	const down = workerWith({ OAUTH_STATE: failingNamespace(env.OAUTH_STATE) });

	it("launch while the state object is down: 503, no launch cookie, no redirect to athena", async () => {
		for (const init of [{}, html]) {
			const jar = new CookieJar();
			const response = await browserFetch(jar, "/launch?practice=80000", init, down);
			const { text, json } = await expectCleanFailure(response, 503);
			expect(response.headers.get("Location")).toBeNull();
			expect(response.headers.get("Retry-After")).toBe("5");
			expect(jar.cookies.has(BROWSER_COOKIE)).toBe(false);
			if (json) expect(json).toMatchObject({ error: "sign_in_unavailable" });
			else expect(text).toContain("Sign-in is not available right now");
		}
	});

	it("callback while the state object is down: 503, no code redeemed, and the same callback works once it is back", async () => {
		const jar = new CookieJar();
		const callback = await authorizeAtSandbox((await launch(jar, "practice=80000", healthy)).toString(), PATIENTS.jane);
		const path = `${callback.pathname}${callback.search}`;
		for (const init of [{}, html]) {
			const response = await browserFetch(jar, path, init, down);
			const { json, text } = await expectCleanFailure(response, 503);
			if (json) expect(json).toMatchObject({ error: "sign_in_unavailable" });
			else expect(text).toContain("Sign-in is not available right now");
		}
		expect(await tokenCalls()).toBe(0);
		expect(jar.cookies.has(SESSION_COOKIE)).toBe(false);
		expect((await browserFetch(jar, path, {}, healthy)).status).toBe(302);
		expect(jar.cookies.has(SESSION_COOKIE)).toBe(true);
	});
});

describe("fault matrix: the token budget's Durable Object failing", () => {
	it("callback while the budget object is down: 503, the sign-in kept, no token call, then the same callback completes", async () => {
		const down = workerWith({ TOKEN_BUDGET: failingNamespace(env.TOKEN_BUDGET) });
		const jar = new CookieJar();
		const callback = await authorizeAtSandbox((await launch(jar, "practice=80000", healthy)).toString(), PATIENTS.jane);
		const path = `${callback.pathname}${callback.search}`;
		const response = await browserFetch(jar, path, html, down);
		const { text } = await expectCleanFailure(response, 503);
		expect(text).toContain("Your sign-in is kept");
		expect(response.headers.get("Retry-After")).toBe("5");
		expect(await statePending(callback)).toBe(true);
		expect(await tokenCalls()).toBe(0);
		expect((await browserFetch(jar, path, {}, healthy)).status).toBe(302);
	});

	it("refresh while the budget object is down: 503 token_budget_unavailable, the session and its tokens untouched", async () => {
		const { jar } = await signIn();
		const before = await storedSession(jar);
		const callsBefore = await tokenCalls();
		await withSessionEnv(before.stub, { TOKEN_BUDGET: failingNamespace(env.TOKEN_BUDGET) }, async () => {
			await sandbox("expire-access-tokens", {});
			const read = await browserFetch(jar, READ);
			const { json } = await expectCleanFailure(read, 503);
			expect(json).toMatchObject({ status: "unavailable", error: "token_budget_unavailable" });
			const page = await browserFetch(jar, "/record", html);
			const { text } = await expectCleanFailure(page, 503);
			expect(text).toContain("You are still connected");
		});
		expect(await tokenCalls()).toBe(callsBefore);
		const after = await storedSession(jar);
		expect(after.sealed).toEqual(before.sealed);
		expect(after.opened).toEqual(before.opened);
		expect((await browserFetch(jar, READ)).status).toBe(200);
	});
});
