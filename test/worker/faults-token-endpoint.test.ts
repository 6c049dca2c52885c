import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { SESSION_COOKIE } from "../../src/session/contract";
import {
	expectCleanFailure,
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
} from "./support/sign-in";

/*
 * athena's token endpoint on a bad day, at sign-in (the callback redeems the
 * code) and at refresh (the session's Durable Object renews its token). Each
 * row: what athena does, what the app (JSON) and the patient (HTML) see, and
 * whether the sign-in or session survives with nothing written half-way.
 */

interface Fault {
	status?: number;
	delayMs?: number;
	response?: "html" | "missing_patient" | "missing_access_token";
}

/** Token calls wait this long for athena here (production: 10 s); slow faults wait longer. */
const SHORT_TIMEOUT = { TOKEN_TIMEOUT_MS: "300" };
const SLOW = 1_500;

interface CallbackRow {
	fault: string;
	inject: Fault;
	status: number;
	error: string;
	message: RegExp;
	pageTitle: RegExp;
	retryAfter: string | null;
	/** The state is put back: the same callback URL completes the sign-in once athena recovers. */
	signInKept: boolean;
	/** Tokens athena issued but the worker will not use are revoked at athena. */
	revokesIssuedTokens: boolean;
}

const callbackRows: CallbackRow[] = [
	{
		fault: "500",
		inject: { status: 500 },
		status: 503,
		error: "athena_unavailable",
		message: /athenahealth is unavailable right now/,
		pageTitle: /athenahealth is not answering/,
		retryAfter: "30",
		signInKept: true,
		revokesIssuedTokens: false,
	},
	{
		fault: "503",
		inject: { status: 503 },
		status: 503,
		error: "athena_unavailable",
		message: /athenahealth is unavailable right now/,
		pageTitle: /athenahealth is not answering/,
		retryAfter: "30",
		signInKept: true,
		revokesIssuedTokens: false,
	},
	{
		fault: "429",
		inject: { status: 429 },
		status: 503,
		error: "athena_rate_limited",
		message: /limiting sign-ins/,
		pageTitle: /athenahealth is busy/,
		retryAfter: "60",
		signInKept: true,
		revokesIssuedTokens: false,
	},
	{
		fault: "slower than the timeout",
		inject: { delayMs: SLOW },
		status: 503,
		error: "athena_unavailable",
		message: /did not answer in time/,
		pageTitle: /athenahealth is not answering/,
		retryAfter: "30",
		signInKept: true,
		revokesIssuedTokens: false,
	},
	{
		fault: "an HTML page instead of JSON",
		inject: { response: "html" },
		status: 502,
		error: "token_response_invalid",
		message: /could not understand/,
		pageTitle: /Something went wrong/,
		retryAfter: null,
		signInKept: false,
		revokesIssuedTokens: false,
	},
	{
		fault: "a response without access_token",
		inject: { response: "missing_access_token" },
		status: 502,
		error: "token_response_invalid",
		message: /could not understand/,
		pageTitle: /Something went wrong/,
		retryAfter: null,
		signInKept: false,
		revokesIssuedTokens: true,
	},
	{
		fault: "a response without patient",
		inject: { response: "missing_patient" },
		status: 502,
		error: "token_response_invalid",
		message: /did not say which patient signed in/,
		pageTitle: /Something went wrong/,
		retryAfter: null,
		signInKept: false,
		revokesIssuedTokens: true,
	},
];

async function clearFaults(): Promise<void> {
	await env.SANDBOX.fetch("http://localhost:3001/_sandbox/faults", { method: "DELETE" });
}

async function received(): Promise<Received & { counts: Record<string, number> }> {
	return sandbox("received");
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
	await resetTokenBudget();
});

describe("fault matrix: athena's token endpoint at sign-in (callback)", () => {
	for (const row of callbackRows) {
		it(`token endpoint answers ${row.fault}: ${row.status} ${row.error}, no session, sign-in ${row.signInKept ? "kept for a retry" : "ended cleanly"}`, async () => {
			for (const accept of ["json", "html"] as const) {
				await sandbox("reset", {});
				await sandbox("config", { tokenRateLimit: 0 });
				await resetTokenBudget();
				const sessionNames: string[] = [];
				const worker = workerWith({ ...SHORT_TIMEOUT, SESSIONS: recordingNamespace(env.SESSIONS, sessionNames) });
				const jar = new CookieJar();
				const callback = await authorizeAtSandbox(
					(await launch(jar, "practice=80000", worker)).toString(),
					PATIENTS.jane,
				);
				const path = `${callback.pathname}${callback.search}`;
				await sandbox("faults", { target: "token", times: 1, ...row.inject });

				const response = await browserFetch(jar, path, accept === "html" ? html : {}, worker);
				const { text, json } = await expectCleanFailure(response, row.status);
				expect(response.headers.get("Retry-After")).toBe(row.retryAfter);
				expect(response.headers.get("Referrer-Policy")).toBe("no-referrer");
				if (accept === "json") {
					expect(json).toMatchObject({ error: row.error, message: expect.stringMatching(row.message) });
				} else {
					expect(response.headers.get("Content-Type")).toContain("text/html");
					expect(text).toMatch(row.pageTitle);
					expect(text).toMatch(row.message);
				}
				// Nothing written half-way: no session object, no session cookie.
				expect(await storedKeys(env.SESSIONS, sessionNames)).toEqual(sessionNames.map(() => 0));
				expect(jar.cookies.has(SESSION_COOKIE)).toBe(false);
				expect(await statePending(callback)).toBe(row.signInKept);
				const revoked = (await received()).assertions.filter((a) => a.endpoint === "revoke" && a.accepted);
				expect(revoked.length).toBe(row.revokesIssuedTokens ? 1 : 0);

				if (row.signInKept) {
					// athena's own 429 stops the worker's token calls for the minute; a quiet minute later:
					await resetTokenBudget();
					await clearFaults();
					const retry = await browserFetch(jar, path, {}, worker);
					expect(retry.status).toBe(302);
					expect(jar.cookies.has(SESSION_COOKIE)).toBe(true);
					const stored = await storedKeys(env.SESSIONS, sessionNames);
					expect(stored.filter((keys) => keys > 0)).toHaveLength(1);
				}
			}
		});
	}
});

interface RefreshRow {
	fault: string;
	inject: Fault;
	/** What a FHIR read that needs the refresh answers (the app's view). */
	status: number;
	body: Record<string, unknown>;
	retryAfter: string | null;
	/** What the record page answers (the patient's view), and a phrase it shows. */
	pageStatus: number;
	pageText: RegExp;
	/** The session after the fault: still connected with its old sealed tokens, or revoked with none. */
	after: "connected" | "revoked";
	/** Once athena recovers, the next read succeeds with a refreshed token. */
	recovers: boolean;
	/** athena rotated the refresh token in an answer without an access token: the new one is kept. */
	keepsRotatedRefreshToken?: boolean;
}

const refreshRows: RefreshRow[] = [
	{
		fault: "500",
		inject: { status: 500 },
		status: 503,
		body: { status: "unavailable", error: "athena_unavailable" },
		retryAfter: "30",
		pageStatus: 503,
		pageText: /You are still connected; nothing was lost/,
		after: "connected",
		recovers: true,
	},
	{
		fault: "503",
		inject: { status: 503 },
		status: 503,
		body: { status: "unavailable", error: "athena_unavailable" },
		retryAfter: "30",
		pageStatus: 503,
		pageText: /You are still connected; nothing was lost/,
		after: "connected",
		recovers: true,
	},
	{
		fault: "429",
		inject: { status: 429 },
		status: 503,
		body: { status: "unavailable", error: "athena_rate_limited" },
		retryAfter: "60",
		pageStatus: 503,
		pageText: /You are still connected; nothing was lost/,
		after: "connected",
		recovers: true,
	},
	{
		fault: "an HTML page instead of JSON",
		inject: { response: "html" },
		status: 503,
		body: { status: "unavailable", error: "token_response_invalid" },
		retryAfter: "30",
		pageStatus: 503,
		pageText: /You are still connected; nothing was lost/,
		after: "connected",
		recovers: true,
	},
	{
		fault: "a response without access_token",
		inject: { response: "missing_access_token" },
		status: 503,
		body: { status: "unavailable", error: "token_response_invalid" },
		retryAfter: "30",
		pageStatus: 503,
		pageText: /You are still connected; nothing was lost/,
		after: "connected",
		recovers: true,
		keepsRotatedRefreshToken: true,
	},
	{
		fault: "invalid_grant (the patient revoked the app)",
		inject: {},
		status: 401,
		body: { status: "revoked" },
		retryAfter: null,
		pageStatus: 200,
		pageText: /[Rr]econnect|[Cc]onnect again/,
		after: "revoked",
		recovers: false,
	},
];

const READ = `/fhir/r4/Patient/${PATIENTS.jane.id}`;

async function injectRefreshFault(row: RefreshRow): Promise<void> {
	if (row.after === "revoked") await sandbox("revoke", { patient: PATIENTS.jane.id });
	// Until cleared: the record page's parallel reads may each try a refresh, and each must meet the fault.
	else await sandbox("faults", { target: "token", ...row.inject });
	// athena ends the access token early: the next read gets 401 and the session must refresh.
	await sandbox("expire-access-tokens", {});
}

describe("fault matrix: athena's token endpoint at refresh (session Durable Object)", () => {
	for (const row of refreshRows) {
		it(`refresh answered ${row.fault}: reads get ${row.status}, the session stays ${row.after}${row.recovers ? " and recovers" : ""}`, async () => {
			const worker = workerWith(SHORT_TIMEOUT);
			const { jar } = await signIn();
			expect((await browserFetch(jar, READ, {}, worker)).status).toBe(200);
			const before = await storedSession(jar);
			expect(before.opened?.refreshToken).toBeTruthy();

			await withSessionEnv(before.stub, SHORT_TIMEOUT, async () => {
				await injectRefreshFault(row);
				const read = await browserFetch(jar, READ, {}, worker);
				const { json } = await expectCleanFailure(read, row.status);
				expect(json).toMatchObject(row.body);
				expect(read.headers.get("Retry-After")).toBe(row.retryAfter);

				const page = await browserFetch(jar, "/record", html, worker);
				const { text } = await expectCleanFailure(page, row.pageStatus);
				expect(page.headers.get("Content-Type")).toContain("text/html");
				expect(text).toMatch(row.pageText);
			});

			const after = await storedSession(jar);
			const view = await (await browserFetch(jar, "/session")).json();
			if (row.after === "connected") {
				expect(view).toMatchObject({ status: "connected", patient: PATIENTS.jane.id });
				expect(after.meta).toEqual(before.meta);
				if (row.keepsRotatedRefreshToken) {
					// The old refresh token is spent at athena; the rotated one replaced it, nothing else changed.
					expect(after.opened).toEqual({ ...before.opened, refreshToken: expect.any(String) });
					expect(after.opened?.refreshToken).not.toBe(before.opened?.refreshToken);
				} else {
					// Nothing written half-way: the same sealed record, still decryptable, the same tokens.
					expect(after.sealed).toEqual(before.sealed);
					expect(after.opened).toEqual(before.opened);
				}
			} else {
				expect(view).toMatchObject({ status: "revoked", patient: PATIENTS.jane.id });
				expect(after.sealed).toBeUndefined();
			}

			if (row.recovers) {
				await clearFaults();
				await resetTokenBudget();
				const recovered = await browserFetch(jar, READ, {}, worker);
				expect(recovered.status).toBe(200);
				expect(await recovered.json()).toMatchObject({ resourceType: "Patient", id: PATIENTS.jane.id });
				expect((await storedSession(jar)).opened?.accessToken).not.toBe(before.opened?.accessToken);
			}
		});
	}

	it("refresh slower than the timeout: the read gets 503 at the timeout, athena's late answer is still stored, reads go on", async () => {
		const worker = workerWith(SHORT_TIMEOUT);
		const { jar } = await signIn();
		expect((await browserFetch(jar, READ, {}, worker)).status).toBe(200);
		const before = await storedSession(jar);
		await withSessionEnv(before.stub, SHORT_TIMEOUT, async () => {
			await sandbox("faults", { target: "token", times: 1, delayMs: SLOW });
			await sandbox("expire-access-tokens", {});
			const read = await browserFetch(jar, READ, {}, worker);
			const { json } = await expectCleanFailure(read, 503);
			expect(json).toMatchObject({ status: "unavailable", error: "athena_unavailable" });
			expect(read.headers.get("Retry-After")).toBe("30");
			// athena rotated the refresh token after the caller stopped waiting: its answer is kept, not lost.
			await vi.waitFor(
				async () => expect((await storedSession(jar)).opened?.refreshToken).not.toBe(before.opened?.refreshToken),
				{ timeout: 10_000, interval: 100 },
			);
		});
		expect(await (await browserFetch(jar, "/session")).json()).toMatchObject({ status: "connected" });
		expect((await browserFetch(jar, READ, {}, worker)).status).toBe(200);
		expect((await browserFetch(jar, "/record", html, worker)).status).toBe(200);
		const refreshes = (await received()).tokenCalls.filter((c) => c.grantType === "refresh_token");
		expect(refreshes).toHaveLength(1);
	});

	it("a refresh response without patient keeps the session's patient: reads go on", async () => {
		const { jar } = await signIn();
		const before = await storedSession(jar);
		await sandbox("faults", { target: "token", times: 1, response: "missing_patient" });
		await sandbox("expire-access-tokens", {});
		const read = await browserFetch(jar, READ);
		expect(read.status).toBe(200);
		expect(await read.json()).toMatchObject({ id: PATIENTS.jane.id });
		const after = await storedSession(jar);
		expect(after.meta?.patient).toBe(PATIENTS.jane.id);
		expect(after.opened?.refreshToken).not.toBe(before.opened?.refreshToken);
	});
});
