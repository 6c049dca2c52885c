import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { sha256 } from "../../src/random";
import { SESSION_COOKIE, type SessionView } from "../../src/session/contract";
import { storedSession, workerWith } from "./support/faults";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	connectRecord,
	launch,
	PATIENTS,
	type Received,
	sandbox,
	signIn,
	signInKeepingAthena,
} from "./support/sign-in";

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

async function sessionView(jar: CookieJar): Promise<SessionView> {
	return (await (await browserFetch(jar, "/session")).json()) as SessionView;
}

describe("Connect another record", () => {
	it("adds the record picked at athena to the session under a new session id: two connections, athena's login skipped", async () => {
		const browser = await signInKeepingAthena();
		const cookie = browser.jar.cookies.get(SESSION_COOKIE) ?? "";
		const before = (await sandbox<Received>("received")).tokenCalls.length;

		const response = await connectRecord(browser, PATIENTS.dependent);
		expect(response.status).toBe(302);
		expect(response.headers.get("Location")).toBe("/");
		// A new session id, as at every sign-in: the value known before opens nothing now.
		expect(response.headers.getSetCookie().filter((c) => c.startsWith(`${SESSION_COOKIE}=`))).toHaveLength(1);
		expect(browser.jar.cookies.get(SESSION_COOKIE)).not.toBe(cookie);
		const oldCookie = new CookieJar();
		oldCookie.cookies.set(SESSION_COOKIE, cookie);
		expect(await sessionView(oldCookie)).toEqual({ status: "signed_out" });
		// Nothing left under the old id: the tokens moved, sealed for the new one.
		const oldObject = env.SESSIONS.get(env.SESSIONS.idFromName(await sha256(cookie)));
		expect(await runInDurableObject(oldObject, async (_o, state) => (await state.storage.list()).size)).toBe(0);
		// One code exchange, and the first connection's grant was not handed back.
		const calls = (await sandbox<Received>("received")).tokenCalls.slice(before);
		expect(calls.map((c) => c.grantType)).toEqual(["authorization_code"]);

		const view = await sessionView(browser.jar);
		expect(view).toMatchObject({ status: "connected", patient: PATIENTS.jane.id, practice: "80000" });
		expect(view.connections?.map((c) => [c.patient, c.practice, c.server, c.status])).toEqual([
			[PATIENTS.jane.id, "80000", "athenahealth", "connected"],
			[PATIENTS.dependent.id, "80000", "athenahealth", "connected"],
		]);
		const ids = view.connections?.map((c) => c.id) ?? [];
		expect(new Set(ids).size).toBe(2);
		expect(view.connections?.map((c) => c.fhirBase)).toEqual(ids.map((id) => `/fhir/${id}/r4`));
		expect(JSON.stringify(view)).not.toMatch(/eyJ[A-Za-z0-9_-]*\.eyJ|accessToken|refreshToken/);
	});

	it("refuses connect=1 reached from another site, before any state or athena, and takes it from our own page", async () => {
		const browser = await signInKeepingAthena();
		for (const site of ["cross-site", "same-site"]) {
			const refused = await browserFetch(browser.jar, "/launch?connect=1", {
				headers: { "Sec-Fetch-Site": site, Accept: "text/html" },
			});
			expect(refused.status, site).toBe(403);
			expect(refused.headers.get("Location")).toBeNull();
			expect(await refused.text()).toContain("Connect another record from your record page in this app.");
		}
		const ours = await browserFetch(browser.jar, "/launch?connect=1", { headers: { "Sec-Fetch-Site": "same-origin" } });
		expect(ours.status).toBe(302);
		expect(ours.headers.get("Location")).toContain("/oauth2/v1/authorize?");
	});

	it("connects the patient's record at a second practice", async () => {
		const browser = await signInKeepingAthena();
		expect((await connectRecord(browser, PATIENTS.janeElsewhere)).status).toBe(302);
		const view = await sessionView(browser.jar);
		expect(view.connections?.map((c) => [c.patient, c.practice])).toEqual([
			[PATIENTS.jane.id, "80000"],
			[PATIENTS.janeElsewhere.id, PATIENTS.janeElsewhere.practice],
		]);
	});

	it("connecting the same record at the same server again refreshes that connection, not a duplicate", async () => {
		const browser = await signInKeepingAthena();
		const before = await storedSession(browser.jar);
		const first = (await sessionView(browser.jar)).connections?.[0];

		expect((await connectRecord(browser, PATIENTS.jane)).status).toBe(302);
		const view = await sessionView(browser.jar);
		expect(view.connections).toHaveLength(1);
		expect(view.connections?.[0]?.id).toBe(first?.id);
		const after = await storedSession(browser.jar);
		expect(after.opened?.accessToken).not.toBe(before.opened?.accessToken);
		expect(after.opened?.refreshToken).not.toBe(before.opened?.refreshToken);
		expect(after.meta?.connectedAt).toBe(before.meta?.connectedAt);
		expect((await browserFetch(browser.jar, `/fhir/r4/Patient/${PATIENTS.jane.id}`)).status).toBe(200);
		// The replaced grant was handed back: its access token reads nothing any more.
		const old = await env.SANDBOX.fetch(`http://localhost:3001/fhir/r4/Patient/${PATIENTS.jane.id}`, {
			headers: { Authorization: `Bearer ${before.opened?.accessToken}` },
		});
		expect(old.status).toBe(401);
	});

	it("refuses to add to a session the browser no longer names, and hands athena's grant back", async () => {
		const browser = await signInKeepingAthena();
		const original = browser.jar.cookies.get(SESSION_COOKIE) ?? "";
		const authorize = await launch(browser.jar, "connect=1");
		const callback = await authorizeAtSandbox(
			authorize.toString(),
			PATIENTS.jane,
			"allow",
			PATIENTS.dependent.id,
			browser.athena,
		);
		// Meanwhile the browser's cookie names another session (another sign-in in this browser).
		const other = await signIn(PATIENTS.second);
		browser.jar.cookies.set(SESSION_COOKIE, other.jar.cookies.get(SESSION_COOKIE) ?? "");
		const revokesBefore = (await sandbox<Received>("received")).assertions.filter(
			(a) => a.endpoint === "revoke",
		).length;

		// workerWith: the hand-back runs in waitUntil, finished before the response is returned.
		const response = await browserFetch(browser.jar, `${callback.pathname}${callback.search}`, {}, workerWith());
		expect(response.status).toBe(400);
		expect(await response.json()).toMatchObject({ error: "connect_session_changed" });
		const revokes = (await sandbox<Received>("received")).assertions.filter((a) => a.endpoint === "revoke");
		expect(revokes.length).toBeGreaterThan(revokesBefore);
		// Neither session gained a connection.
		expect((await sessionView(browser.jar)).connections?.map((c) => c.patient)).toEqual([PATIENTS.second.id]);
		const first = new CookieJar();
		first.cookies.set(SESSION_COOKIE, original);
		expect((await sessionView(first)).connections?.map((c) => c.patient)).toEqual([PATIENTS.jane.id]);
	});

	it("connect=1 without a session is a plain sign-in", async () => {
		const jar = new CookieJar();
		const authorize = await launch(jar, "connect=1");
		const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
		expect((await browserFetch(jar, `${callback.pathname}${callback.search}`)).status).toBe(302);
		expect((await sessionView(jar)).connections?.map((c) => c.patient)).toEqual([PATIENTS.jane.id]);
	});
});
