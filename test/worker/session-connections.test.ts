import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { SessionMeta } from "../../src/session/connection";
import type { SessionView } from "../../src/session/contract";
import { MAX_CONNECTIONS } from "../../src/session/session-object";
import { accessTokenNearlyExpired, storedSession, workerWith } from "./support/faults";
import {
	browserFetch,
	CookieJar,
	connectRecord,
	PATIENTS,
	type PatientBrowser,
	type Received,
	sandbox,
	signIn,
	signInKeepingAthena,
} from "./support/sign-in";

const ORIGIN = "http://localhost:3000";

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

interface Family {
	browser: PatientBrowser;
	/** Jake's own record at 80000: the first connection. */
	jake: string;
	/** Lily's, his dependent, connected after. */
	lily: string;
}

/** Jake signs in, then connects Lily's record to the same session. */
async function jakeAndLily(): Promise<Family> {
	const browser = await signInKeepingAthena();
	const added = await connectRecord(browser, PATIENTS.dependent);
	if (added.status !== 302) throw new Error(`connect: ${added.status} ${await added.text()}`);
	const ids = (await view(browser.jar)).connections?.map((c) => c.id) ?? [];
	const [jake, lily] = ids;
	if (!jake || !lily) throw new Error("expected two connections");
	return { browser, jake, lily };
}

async function view(jar: CookieJar): Promise<SessionView> {
	return (await (await browserFetch(jar, "/session")).json()) as SessionView;
}

async function refreshCalls(): Promise<number> {
	return (await sandbox<Received>("received")).tokenCalls.filter((c) => c.grantType === "refresh_token").length;
}

/** Every patient reference in a body: `Patient/{id}` wherever it appears. */
function patientsNamed(text: string): Set<string> {
	return new Set([...text.matchAll(/Patient\/(a-\d+\.E-\d+)/g)].map((m) => m[1] ?? ""));
}

describe("one session, two connected records", () => {
	it("reads under each connection return only that patient's data, with links under that connection's base", async () => {
		const { browser, jake, lily } = await jakeAndLily();
		for (const [id, patient, other] of [
			[jake, PATIENTS.jane.id, PATIENTS.dependent.id],
			[lily, PATIENTS.dependent.id, PATIENTS.jane.id],
		] as const) {
			const read = await browserFetch(browser.jar, `/fhir/${id}/r4/Patient/${patient}`);
			expect(read.status).toBe(200);
			expect(((await read.json()) as { id: string }).id).toBe(patient);
			// The search names no patient: the connection's own is added.
			const search = await browserFetch(browser.jar, `/fhir/${id}/r4/Condition?_count=5`);
			expect(search.status).toBe(200);
			const text = await search.text();
			expect([...patientsNamed(text)]).toEqual([patient]);
			expect(text).toContain(`${ORIGIN}/fhir/${id}/r4/`);
			expect(text).not.toContain("localhost:3001");
			// The other patient's record, asked for by id under this connection: athena refuses it.
			const crossed = await browserFetch(browser.jar, `/fhir/${id}/r4/Patient/${other}`);
			expect(crossed.status).toBe(403);
			expect(patientsNamed(await crossed.text()).has(other)).toBe(false);
		}
		// /fhir/r4 is still the first connection's.
		const first = await browserFetch(browser.jar, `/fhir/r4/Patient/${PATIENTS.jane.id}`);
		expect(first.status).toBe(200);
		expect(await (await browserFetch(browser.jar, "/fhir/r4/Condition?_count=5")).text()).not.toContain(
			PATIENTS.dependent.id,
		);
	});

	it("a refresh of one connection never touches the other's tokens, and is single-flight per connection", async () => {
		const { browser, jake, lily } = await jakeAndLily();
		const jakeBefore = await storedSession(browser.jar, jake);
		const lilyBefore = await storedSession(browser.jar, lily);
		await accessTokenNearlyExpired(jakeBefore.stub, lily);
		const before = await refreshCalls();

		const results = await Promise.all(
			Array.from({ length: 40 }, (_, i) => jakeBefore.stub.accessToken(i % 2 ? lily : jake)),
		);
		expect(await refreshCalls()).toBe(before + 1);
		const lilyTokens = new Set(
			results.filter((_, i) => i % 2).map((r) => (r.status === "connected" ? r.accessToken : "")),
		);
		const jakeTokens = new Set(
			results.filter((_, i) => !(i % 2)).map((r) => (r.status === "connected" ? r.accessToken : "")),
		);
		expect(lilyTokens.size).toBe(1);
		expect([...jakeTokens]).toEqual([jakeBefore.opened?.accessToken]);
		expect(
			results.filter((_, i) => i % 2).every((r) => r.status === "connected" && r.patient === PATIENTS.dependent.id),
		).toBe(true);

		const jakeAfter = await storedSession(browser.jar, jake);
		const lilyAfter = await storedSession(browser.jar, lily);
		expect(jakeAfter.sealed).toEqual(jakeBefore.sealed);
		expect(jakeAfter.meta).toEqual(jakeBefore.meta);
		expect(lilyAfter.opened?.refreshToken).not.toBe(lilyBefore.opened?.refreshToken);
		expect(lilyAfter.opened?.accessToken).not.toBe(lilyBefore.opened?.accessToken);
		// The two connections' tokens are sealed apart: one connection's record does not open as the other's.
		expect(lilyAfter.sealed).not.toEqual(jakeAfter.sealed);
	});

	it("two connections refreshed at once both keep their new expiry: neither write undoes the other", async () => {
		const { browser, jake, lily } = await jakeAndLily();
		const { stub } = await storedSession(browser.jar);
		await accessTokenNearlyExpired(stub, jake);
		await accessTokenNearlyExpired(stub, lily);
		const before = await refreshCalls();
		const [forJake, forLily] = await Promise.all([stub.accessToken(jake), stub.accessToken(lily)]);
		expect(await refreshCalls()).toBe(before + 2);
		expect(forJake).toMatchObject({ status: "connected", patient: PATIENTS.jane.id });
		expect(forLily).toMatchObject({ status: "connected", patient: PATIENTS.dependent.id });
		const soon = Date.now() + 10 * 60_000;
		for (const id of [jake, lily]) {
			expect((await storedSession(browser.jar, id)).meta?.accessExpiresAt).toBeGreaterThan(soon);
		}
		// And so no further refresh is due for either.
		await Promise.all([stub.accessToken(jake), stub.accessToken(lily)]);
		expect(await refreshCalls()).toBe(before + 2);
	});

	it("a connection revoked at athena reads as revoked on its own; the other keeps working", async () => {
		const { browser, jake, lily } = await jakeAndLily();
		await sandbox("revoke", { patient: PATIENTS.dependent.id });

		const revoked = await browserFetch(browser.jar, `/fhir/${lily}/r4/Patient/${PATIENTS.dependent.id}`);
		expect(revoked.status).toBe(401);
		expect(await revoked.json()).toEqual({ status: "revoked" });
		expect((await browserFetch(browser.jar, `/fhir/${jake}/r4/Patient/${PATIENTS.jane.id}`)).status).toBe(200);
		expect((await browserFetch(browser.jar, `/fhir/r4/Patient/${PATIENTS.jane.id}`)).status).toBe(200);

		const listed = await view(browser.jar);
		expect(listed.status).toBe("connected");
		expect(listed.connections?.map((c) => [c.id, c.status])).toEqual([
			[jake, "connected"],
			[lily, "revoked"],
		]);
		const { stub } = await storedSession(browser.jar);
		const keys = await runInDurableObject(stub, async (_o, s) => [...(await s.storage.list()).keys()].sort());
		expect(keys).toEqual(["logoutHint", "meta", `tokens:${jake}`]);
	});

	it("a second session cannot use the first session's connection ids: 404, never data", async () => {
		const { browser, jake, lily } = await jakeAndLily();
		const other = await signIn(PATIENTS.second);
		for (const id of [jake, lily]) {
			const response = await browserFetch(other.jar, `/fhir/${id}/r4/Patient/${PATIENTS.jane.id}`);
			expect(response.status).toBe(404);
			expect(await response.json()).toEqual({ status: "unknown_connection" });
			const search = await browserFetch(other.jar, `/fhir/${id}/r4/Condition`);
			expect(search.status).toBe(404);
			// No cookie at all: signed out.
			expect((await browserFetch(new CookieJar(), `/fhir/${id}/r4/Condition`)).status).toBe(401);
		}
		// Their own first connection is still theirs alone.
		expect(patientsNamed(await (await browserFetch(other.jar, "/fhir/r4/Condition")).text())).toEqual(
			new Set([PATIENTS.second.id]),
		);
		expect((await browserFetch(browser.jar, `/fhir/${lily}/r4/Condition`)).status).toBe(200);
	});

	it("an id that is not a connection id's shape is no route at all, and writes are refused", async () => {
		const { browser, jake } = await jakeAndLily();
		expect((await browserFetch(browser.jar, "/fhir/short/r4/Condition")).status).toBe(404);
		const post = await browserFetch(browser.jar, `/fhir/${jake}/r4/Condition`, {
			method: "POST",
			headers: { Origin: ORIGIN },
		});
		expect(post.status).toBe(405);
		expect(post.headers.get("Allow")).toBe("GET, HEAD");
	});

	it("a connection that can no longer be refreshed (no refresh token) reads as revoked; the session and the other stay", async () => {
		const { browser, jake, lily } = await jakeAndLily();
		const { stub } = await storedSession(browser.jar);
		await runInDurableObject(stub, (instance: object) => {
			const tokens = Reflect.get(instance, "tokens") as Map<string, { refreshToken?: string }>;
			const held = tokens.get(lily);
			if (!held) throw new Error("Lily's tokens are not open");
			tokens.set(lily, { ...held, refreshToken: undefined });
		});
		await accessTokenNearlyExpired(stub, lily);
		expect(await stub.accessToken(lily)).toEqual({ status: "revoked" });
		expect((await stub.accessToken(jake)).status).toBe("connected");
		const keys = await runInDurableObject(stub, async (_o, s) => [...(await s.storage.list()).keys()].sort());
		expect(keys).toEqual(["meta", `tokens:${jake}`]);
	});

	it("a session holds at most MAX_CONNECTIONS records: one more is refused and handed back", async () => {
		const { browser } = await jakeAndLily();
		const { stub } = await storedSession(browser.jar);
		// Filled up with copies of Lily's record under other patient ids (storage only: never read).
		await runInDurableObject(stub, async (instance: object, state) => {
			const meta = await state.storage.get<SessionMeta>("meta");
			if (!meta) throw new Error("no session");
			const [first, second] = meta.connections;
			if (!first || !second) throw new Error("expected two connections");
			const fillers = Array.from({ length: MAX_CONNECTIONS - 2 }, (_, i) => ({
				...second,
				id: `filler-${i}`,
				patient: `a-80000.E-9${i}`,
			}));
			await state.storage.put("meta", { ...meta, connections: [first, second, ...fillers] });
			Reflect.set(instance, "loaded", false);
		});
		const response = await connectRecord(browser, PATIENTS.janeElsewhere, workerWith());
		expect(response.status).toBe(409);
		expect(await response.json()).toMatchObject({ error: "connections_full" });
		expect((await view(browser.jar)).connections).toHaveLength(MAX_CONNECTIONS);
		const revokes = (await sandbox<Received>("received")).assertions.filter((a) => a.endpoint === "revoke");
		expect(revokes.length).toBe(1);
	});

	it("sign-out revokes every connection at athena and ends the session", async () => {
		const { browser, jake, lily } = await jakeAndLily();
		const tokens = await Promise.all([jake, lily].map(async (id) => (await storedSession(browser.jar, id)).opened));
		const out = await browserFetch(browser.jar, "/logout", { method: "POST", headers: { Origin: ORIGIN } });
		expect(await out.json()).toEqual({ status: "signed_out", revokedAtAthena: true });
		expect(await view(browser.jar)).toEqual({ status: "signed_out" });
		// Both grants are gone at athena: their access tokens no longer read anything.
		for (const [opened, patient] of [
			[tokens[0], PATIENTS.jane.id],
			[tokens[1], PATIENTS.dependent.id],
		] as const) {
			const direct = await env.SANDBOX.fetch(`http://localhost:3001/fhir/r4/Patient/${patient}`, {
				headers: { Authorization: `Bearer ${opened?.accessToken}` },
			});
			expect(direct.status).toBe(401);
		}
	});
	it("sign-out from the page ends athena's browser session with the first connected record's id_token", async () => {
		const { browser, jake } = await jakeAndLily();
		const { opened } = await storedSession(browser.jar, jake);
		const out = await browserFetch(browser.jar, "/logout", {
			method: "POST",
			headers: { Accept: "text/html", Origin: ORIGIN },
		});
		expect(out.status).toBe(303);
		const location = new URL(out.headers.get("Location") ?? "");
		expect(location.searchParams.get("id_token_hint")).toBe(opened?.idToken);
		// athena's end-session page, followed with athena's browser cookie, ends its session: the next sign-in asks for the password.
		const ended = await env.SANDBOX.fetch(location.toString(), {
			headers: { Cookie: browser.athena.header() },
			redirect: "manual",
		});
		browser.athena.store(ended);
		await expect(connectRecord(browser, PATIENTS.dependent)).rejects.toThrow(/sandbox sign-in/);
	});
});
