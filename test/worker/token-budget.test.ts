import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { app } from "../../src/app";
import {
	FAILED_EXCHANGES_PER_CLIENT_MINUTE,
	REFRESHES_PER_SESSION_MINUTE,
	signInCap,
} from "../../src/durable/token-budget";
import { pinTokenBudgetClock, resetTokenBudget } from "./support/faults";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	launch,
	PATIENTS,
	type Received,
	sandbox,
} from "./support/sign-in";

// The worker as deployed to preview: athena's budget of 5 new tokens a minute.
const previewBudgetEnv = { ...env, TOKEN_REQUESTS_PER_MINUTE: "5" };
async function worker(request: Request): Promise<Response> {
	const ctx = createExecutionContext();
	const response = await app.fetch(request, previewBudgetEnv, ctx);
	await waitOnExecutionContext(ctx);
	return response;
}

/** The same worker, as a browser at `address` reaches it through Cloudflare. */
function from(address: string) {
	return (request: Request) => {
		const headers = new Headers(request.headers);
		headers.set("CF-Connecting-IP", address);
		return worker(new Request(request, { headers }));
	};
}

/** A calendar minute chosen by the test: every budget call below falls in it, whatever the wall clock says. */
const MINUTE = Math.floor(Date.now() / 60_000) * 60_000;
const html = { headers: { Accept: "text/html" } };

/** Each test's client addresses are its own: the rate limiter's counts outlive a test. */
let addressSeq = 0;
function freshAddress(): string {
	addressSeq += 1;
	return `198.51.100.${addressSeq}`;
}

async function tokenCalls(grantType: string): Promise<Received["tokenCalls"]> {
	const received = await sandbox<Received>("received");
	return received.tokenCalls.filter((c) => c.grantType === grantType);
}

/** A complete sign-in through `via`; returns the browser's jar. */
async function signInVia(via: (r: Request) => Promise<Response>, patient = PATIENTS.jane): Promise<CookieJar> {
	const jar = new CookieJar();
	const callback = await authorizeAtSandbox(
		(await launch(jar, `practice=${patient.practice}`, via)).toString(),
		patient,
	);
	const response = await browserFetch(jar, `${callback.pathname}${callback.search}`, {}, via);
	expect(response.status).toBe(302);
	return jar;
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 5 });
	await resetTokenBudget();
	await pinTokenBudgetClock(MINUTE + 1_000);
});

describe("token endpoint budget", () => {
	it("keeps sign-ins to their share of athena's 5 a minute: 503 + Retry-After, the sign-in kept for a retry", async () => {
		const cap = signInCap(5, 0.6);
		expect(cap).toBe(3);
		const attempts = [];
		for (let i = 0; i < 6; i++) {
			const jar = new CookieJar();
			const authorize = await launch(jar, "practice=80000", worker);
			const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
			const path = `${callback.pathname}${callback.search}`;
			attempts.push({ jar, path, response: await browserFetch(jar, path, html, worker) });
		}
		expect(attempts.map((a) => a.response.status)).toEqual([302, 302, 302, 503, 503, 503]);
		for (const { response } of attempts.slice(cap)) {
			// Seconds to the end of the pinned minute, counted from its second 1.
			expect(response.headers.get("Retry-After")).toBe("59");
			const page = await response.text();
			expect(page).toContain("athenahealth is busy");
			expect(page).toContain("Try again");
		}
		expect(await tokenCalls("authorization_code")).toHaveLength(cap);
		expect((await sandbox<Received>("received")).tokenCalls.filter((c) => c.status === 429)).toHaveLength(0);

		// Nothing lost: in the next minute the same callback URL completes the sign-in.
		await pinTokenBudgetClock(MINUTE + 61_000);
		await sandbox("config", { tokenRateLimit: 0 });
		const retry = attempts[cap];
		if (!retry) throw new Error("no refused attempt");
		const again = await browserFetch(retry.jar, retry.path, {}, worker);
		expect(again.status).toBe(302);
		expect(await (await browserFetch(retry.jar, "/session", {}, worker)).json()).toMatchObject({ status: "connected" });
	});

	it("keeps the rest of the minute for refreshes: a connected patient renews after sign-ins took their whole share", async () => {
		await pinTokenBudgetClock(MINUTE - 59_000);
		const connected = await signInVia(worker);
		await pinTokenBudgetClock(MINUTE + 1_000);
		for (let i = 0; i < signInCap(5, 0.6); i++) await signInVia(worker, PATIENTS.second);
		await sandbox("expire-access-tokens", {});
		const read = await browserFetch(connected, `/fhir/r4/Patient/${PATIENTS.jane.id}`, {}, worker);
		expect(read.status).toBe(200);
		expect(await tokenCalls("refresh_token")).toHaveLength(1);
	});

	it("stops after athena's own 429 instead of asking again in the same minute", async () => {
		await sandbox("faults", { target: "token", status: 429, times: 1 });
		const first = new CookieJar();
		const url = await authorizeAtSandbox((await launch(first, "practice=80000", worker)).toString(), PATIENTS.jane);
		const response = await browserFetch(first, `${url.pathname}${url.search}`, {}, worker);
		expect(response.status).toBe(503);
		expect(await response.json()).toMatchObject({ error: "athena_rate_limited" });
		const second = new CookieJar();
		const url2 = await authorizeAtSandbox((await launch(second, "practice=80000", worker)).toString(), PATIENTS.jane);
		const blocked = await browserFetch(second, `${url2.pathname}${url2.search}`, {}, worker);
		expect(blocked.status).toBe(503);
		expect(await blocked.json()).toMatchObject({ error: "token_budget_spent" });
		// The injected 429 is answered before the sandbox records a grant; had the second
		// sign-in been sent, the spent fault would have let it through and be recorded.
		expect(await tokenCalls("authorization_code")).toHaveLength(0);
	});
});

describe("an anonymous visitor cannot lock patients out", () => {
	it("replays the attack from one client; a real patient still signs in and a connected one still refreshes, within 5 a minute", async () => {
		// A patient connected a minute earlier, from their own address.
		await pinTokenBudgetClock(MINUTE - 59_000);
		const connected = await signInVia(from(freshAddress()));
		await pinTokenBudgetClock(MINUTE + 1_000);

		// The attacker: launch + callback with a made-up code, over and over, from one address.
		// 41 launches: even if the limiter's own minute turns once during the test, more than
		// two windows' worth (2 × 20) are sent, so some must be refused.
		const attacker = from(freshAddress());
		const launches: Response[] = [];
		const callbacks: Response[] = [];
		for (let i = 0; i < 41; i++) {
			const jar = new CookieJar();
			const launched = await browserFetch(jar, "/launch?practice=80000", html, attacker);
			launches.push(launched);
			const location = launched.headers.get("Location");
			if (launched.status !== 302 || !location) continue;
			const state = new URL(location).searchParams.get("state");
			callbacks.push(await browserFetch(jar, `/callback?code=made-up-${i}&state=${state}`, html, attacker));
		}
		// Only the first few fake codes reached athena; after that the client was refused before the budget.
		const refusedCodes = (await tokenCalls("authorization_code")).filter((call) => call.error === "invalid_grant");
		expect(refusedCodes).toHaveLength(FAILED_EXCHANGES_PER_CLIENT_MINUTE);
		expect(callbacks.slice(0, FAILED_EXCHANGES_PER_CLIENT_MINUTE).map((r) => r.status)).toEqual([401, 401]);
		const refusedCallbacks = callbacks.slice(FAILED_EXCHANGES_PER_CLIENT_MINUTE);
		expect(refusedCallbacks.length).toBeGreaterThan(0);
		for (const response of refusedCallbacks) expect(response.status).toBe(429);
		const limited = launches.filter((r) => r.status === 429);
		expect(limited.length).toBeGreaterThan(0);
		const page = await (limited[0] as Response).text();
		expect(page).toContain("Too many sign-in attempts");
		expect(page).toContain("Wait a minute");
		expect(limited[0]?.headers.get("Retry-After")).toBe("60");

		// A genuine patient, from another address, signs in in the same minute...
		const genuine = await signInVia(from(freshAddress()), PATIENTS.second);
		expect(await (await browserFetch(genuine, "/session", {}, worker)).json()).toMatchObject({ status: "connected" });
		// ...and the patient already connected, whose access token athena now refuses, still reads.
		await sandbox("expire-access-tokens", {});
		const read = await browserFetch(connected, `/fhir/r4/Patient/${PATIENTS.jane.id}`, {}, worker);
		expect(read.status).toBe(200);
		const received = await sandbox<Received>("received");
		expect(received.tokenCalls.filter((c) => c.status === 429)).toHaveLength(0);
		// Setup's sign-in + 2 fake codes + the genuine sign-in + 1 refresh: athena's 5.
		expect(received.tokenCalls).toHaveLength(5);
	});

	it("a signed-in user cannot drain the budget through repeated 401 → refresh cycles", async () => {
		await pinTokenBudgetClock(MINUTE - 59_000);
		const victim = await signInVia(worker, PATIENTS.second);
		await pinTokenBudgetClock(MINUTE + 1_000);
		const abuser = await signInVia(worker);
		await sandbox("config", { tokenRateLimit: 0 });
		await sandbox("faults", { target: "fhir", status: 401 });
		const statuses: number[] = [];
		for (let i = 0; i < 6; i++) {
			statuses.push((await browserFetch(abuser, `/fhir/r4/Patient/${PATIENTS.jane.id}`, {}, worker)).status);
		}
		expect(await tokenCalls("refresh_token")).toHaveLength(REFRESHES_PER_SESSION_MINUTE);
		expect(statuses.at(-1)).toBe(503);
		// The abuser spent 1 sign-in + 3 refreshes of 5: the other patient still renews.
		await sandbox("faults", { target: "fhir", status: 401, times: 1 });
		const read = await browserFetch(victim, `/fhir/r4/Patient/${PATIENTS.second.id}`, {}, worker);
		expect(read.status).toBe(200);
		expect(await tokenCalls("refresh_token")).toHaveLength(REFRESHES_PER_SESSION_MINUTE + 1);
	});
});

describe("per-client limits", () => {
	it("limits callbacks per launch cookie too, before any state or budget is touched", async () => {
		const jar = new CookieJar();
		await launch(jar, "practice=80000", worker);
		const statuses: number[] = [];
		let limited: Response | undefined;
		// More than two of the limiter's windows' worth: some must be refused whatever the clock does.
		for (let i = 0; i < 41; i++) {
			const response = await browserFetch(jar, `/callback?code=x&state=${"A".repeat(43)}`, html, worker);
			statuses.push(response.status);
			if (response.status === 429) limited ??= response;
		}
		expect(statuses.filter((s) => s === 429).length).toBeGreaterThan(0);
		expect(statuses.every((s) => s === 400 || s === 429)).toBe(true);
		expect(limited?.headers.get("Retry-After")).toBe("60");
		expect(await limited?.text()).toContain("Too many sign-in attempts");
		expect(await tokenCalls("authorization_code")).toHaveLength(0);
	});

	it("gives sign-ins a share of the minute and always leaves refreshes some", () => {
		expect(signInCap(5, 0.6)).toBe(3);
		expect(signInCap(50, 0.6)).toBe(30);
		expect(signInCap(5, 1)).toBe(4);
		expect(signInCap(1, 0.6)).toBe(1);
		expect(signInCap(2, 0.1)).toBe(1);
	});
});
