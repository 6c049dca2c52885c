import { env, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { sha256 } from "../../src/random";
import { SESSION_COOKIE } from "../../src/session/contract";
import { sessionStub } from "../../src/session/lookup";
import { SESSION_ABSOLUTE_MS, SESSION_IDLE_MS, type Session } from "../../src/session/session-object";
import { accessTokenNearlyExpired, patchConnection, storedSession } from "./support/faults";
import { browserFetch, CookieJar, PATIENTS, type Received, sandbox, signIn } from "./support/sign-in";

async function sessionOf(jar: CookieJar) {
	const id = jar.cookies.get(SESSION_COOKIE);
	if (!id) throw new Error("no session cookie");
	const idHash = await sha256(id);
	return { idHash, stub: sessionStub(env, idHash) };
}

async function refreshCalls(): Promise<number> {
	return (await sandbox<Received>("received")).tokenCalls.filter((c) => c.grantType === "refresh_token").length;
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("token sessions", () => {
	it("sets the session cookie __Host-, HttpOnly, Secure, SameSite=Lax, Path=/ and a new id at every sign-in", async () => {
		const first = await signIn();
		const cookie = first.response.headers.getSetCookie().find((c) => c.startsWith(`${SESSION_COOKIE}=`)) ?? "";
		expect(cookie).toMatch(/; HttpOnly/i);
		expect(cookie).toMatch(/; Secure/i);
		expect(cookie).toMatch(/; SameSite=Lax/i);
		expect(cookie).toMatch(/; Path=\//i);
		expect(cookie).not.toMatch(/; Domain=/i);
		const second = await signIn();
		expect(second.jar.cookies.get(SESSION_COOKIE)).not.toBe(first.jar.cookies.get(SESSION_COOKIE));
	});

	it("stores only sealed tokens: no token in clear in the Durable Object", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		const access = await stub.accessToken();
		if (access.status !== "connected") throw new Error(access.status);
		const stored = await runInDurableObject(stub, async (_o: Session, state) => {
			const entries = await state.storage.list();
			return JSON.stringify(Object.fromEntries(entries));
		});
		expect(stored).not.toContain(access.accessToken);
		// No JWT (the id_token) in clear. "eyJ" alone may turn up by chance in a random hash or ciphertext; a JWT
		// needs a "." between its parts, which base64url never holds.
		expect(stored).not.toMatch(/eyJ[A-Za-z0-9_-]*\.eyJ/);
		const { opened } = await storedSession(jar);
		for (const token of [opened?.refreshToken, opened?.idToken]) {
			expect(token).toBeTruthy();
			expect(stored).not.toContain(token);
		}
		expect(stored).toMatch(/"v":"v1","iv":"[A-Za-z0-9_-]{16}","ct":/);
		// 12-byte IV: 16 base64url characters.
	});

	it("shares one refresh among 50 concurrent callers whose token is about to expire", async () => {
		// A token about to end is refreshed before use, once for everyone.
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		await accessTokenNearlyExpired(stub);
		const before = await refreshCalls();
		const results = await Promise.all(Array.from({ length: 50 }, () => stub.accessToken()));
		expect(await refreshCalls()).toBe(before + 1);
		const tokens = new Set(results.map((r) => (r.status === "connected" ? r.accessToken : r.status)));
		expect(tokens.size).toBe(1);
		expect(results.every((r) => r.status === "connected")).toBe(true);
		const received = await sandbox<Received>("received");
		const refreshAssertion = received.assertions.filter((a) => a.endpoint === "token").at(-1);
		expect(refreshAssertion).toMatchObject({
			accepted: true,
			claims: { iss: "local-dev-client", sub: "local-dev-client" },
		});
	});

	it("refreshes once for 50 callers that athena answered 401, then all use the new token", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		const first = await stub.accessToken();
		if (first.status !== "connected") throw new Error(first.status);
		await sandbox("expire-access-tokens", {});
		const before = await refreshCalls();
		const results = await Promise.all(
			Array.from({ length: 50 }, () => stub.refreshAfterUnauthorized(first.accessToken)),
		);
		expect(await refreshCalls()).toBe(before + 1);
		expect(new Set(results.map((r) => (r.status === "connected" ? r.accessToken : "x"))).size).toBe(1);
		expect(results[0]).toMatchObject({ status: "connected" });
		expect(results[0]?.status === "connected" && results[0].accessToken).not.toBe(first.accessToken);
	});

	it("marks the session revoked when the patient revokes access at athena, without a 500", async () => {
		const { jar } = await signIn();
		await sandbox("revoke", { patient: PATIENTS.jane.id });
		const { stub } = await sessionOf(jar);
		await accessTokenNearlyExpired(stub);
		expect(await stub.accessToken()).toEqual({ status: "revoked" });
		const view = await browserFetch(jar, "/session");
		expect(view.status).toBe(200);
		expect(await view.json()).toMatchObject({ status: "revoked", patient: PATIENTS.jane.id });
		const stored = await runInDurableObject(stub, async (_o: Session, state) => [
			...(await state.storage.list()).keys(),
		]);
		expect(stored).not.toContain("tokens");
	});

	it("answers signed_out without a session cookie or with an unknown one", async () => {
		expect(await (await browserFetch(new CookieJar(), "/session")).json()).toEqual({ status: "signed_out" });
		const jar = new CookieJar();
		jar.cookies.set(SESSION_COOKIE, "Z".repeat(43));
		expect(await (await browserFetch(jar, "/session")).json()).toEqual({ status: "signed_out" });
	});

	it("logs out: revokes at athena with an assertion, deletes the session, clears the cookie", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		const response = await browserFetch(jar, "/logout", {
			method: "POST",
			headers: { Origin: "http://localhost:3000" },
		});
		expect(response.status).toBe(200);
		expect(await response.json()).toEqual({ status: "signed_out", revokedAtAthena: true });
		expect(jar.cookies.has(SESSION_COOKIE)).toBe(false);
		expect(await stub.view()).toEqual({ status: "signed_out" });
		const received = await sandbox<Received>("received");
		expect(received.assertions.some((a) => a.endpoint === "revoke" && a.accepted)).toBe(true);
	});

	it("refuses a cross-site logout and keeps the session", async () => {
		const { jar } = await signIn();
		const response = await browserFetch(jar, "/logout", {
			method: "POST",
			headers: { Origin: "https://evil.example" },
		});
		expect(response.status).toBe(403);
		expect(await response.json()).toMatchObject({ error: "cross_site_refused" });
		const noOrigin = await browserFetch(jar, "/logout", { method: "POST" });
		expect(noOrigin.status).toBe(403);
		expect(await (await browserFetch(jar, "/session")).json()).toMatchObject({ status: "connected" });
	});

	it("still signs out locally when athena's revoke endpoint fails", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "token", status: 503 });
		const response = await browserFetch(jar, "/logout", {
			method: "POST",
			headers: { Origin: "http://localhost:3000" },
		});
		expect(response.status).toBe(200);
		expect(await (await browserFetch(jar, "/session")).json()).toEqual({ status: "signed_out" });
	});

	it("ends a session left idle longer than its idle lifetime", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		await runInDurableObject(stub, async (instance: Session, state) => {
			const meta = await state.storage.get<{ lastSeenAt: number }>("meta");
			await state.storage.put("meta", { ...meta, lastSeenAt: Date.now() - SESSION_IDLE_MS - 1000 });
			// As after an eviction: the next call reads storage again.
			Reflect.set(instance, "loaded", false);
		});
		expect(await (await browserFetch(jar, "/session")).json()).toEqual({ status: "signed_out" });
		const left = await runInDurableObject(stub, async (_o: Session, state) => (await state.storage.list()).size);
		expect(left).toBe(0);
	});

	it("ends a session past its absolute lifetime when its alarm fires, even if used recently, handing its grant back", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		const token = await runInDurableObject(stub, async (instance: Session) => {
			const access = await instance.accessToken();
			return access.status === "connected" ? access.accessToken : "";
		});
		await runInDurableObject(stub, async (_o: Session, state) => {
			const meta = await state.storage.get<{ createdAt: number }>("meta");
			await state.storage.put("meta", { ...meta, absoluteExpiresAt: Date.now() - 1 });
			// Scheduled ahead so it cannot fire on its own before the test runs it.
			await state.storage.setAlarm(Date.now() + 60_000);
		});
		expect(await runDurableObjectAlarm(stub)).toBe(true);
		const left = await runInDurableObject(stub, async (_o: Session, state) => (await state.storage.list()).size);
		expect(left).toBe(0);
		expect(SESSION_ABSOLUTE_MS).toBeLessThanOrEqual(90 * 24 * 60 * 60_000);
		// The grant went back to athena with the session: its access token reads nothing now.
		const read = await env.SANDBOX.fetch(`http://localhost:3001/fhir/r4/Patient/${PATIENTS.jane.id}`, {
			headers: { Authorization: `Bearer ${token}` },
		});
		expect(read.status).toBe(401);
	});
});

describe("sign-out during a refresh", () => {
	/** The session's network, with athena's token answers held until `release()`; every request body is kept. */
	async function holdTokenAnswers(stub: DurableObjectStub<Session>) {
		const bodies: string[] = [];
		let release = () => {};
		const gate = new Promise<void>((resolve) => {
			release = resolve;
		});
		await runInDurableObject(stub, (instance: Session) => {
			const real = Reflect.get(instance, "network") as typeof fetch;
			Reflect.set(instance, "network", async (input: RequestInfo | URL, init?: RequestInit) => {
				bodies.push(String(init?.body ?? ""));
				const response = await real(input, init);
				if (String(input).endsWith("/oauth2/v1/token")) await gate;
				return response;
			});
		});
		// Signalled through the sandbox's log, not a promise: a promise resolved inside the
		// Durable Object would run the test's continuation in the object's I/O context.
		const tokenCallSent = async () => {
			for (let i = 0; i < 200 && (await refreshCalls()) === 0; i++) await scheduler.wait(10);
		};
		return { bodies, release: () => release(), tokenCallSent };
	}

	it("a refresh that finishes after sign-out stores nothing, leaves no record, and hands back what athena issued", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		const stale = await runInDurableObject(stub, async (instance: Session) => {
			const access = await instance.accessToken();
			return access.status === "connected" ? access.accessToken : "";
		});
		const held = await holdTokenAnswers(stub);
		const refreshing = stub.refreshAfterUnauthorized(stale);
		// athena has rotated the grant; its answer is on the way when the patient signs out.
		await held.tokenCallSent();
		expect(await refreshCalls()).toBe(1);
		expect(await stub.logout()).toMatchObject({ revokedAtAthena: expect.any(Boolean) });
		held.release();
		expect(await refreshing).toEqual({ status: "signed_out" });

		const left = await runInDurableObject(stub, async (_o, state) => ({
			keys: [...(await state.storage.list()).keys()],
			alarm: await state.storage.getAlarm(),
		}));
		expect(left).toEqual({ keys: [], alarm: null });
		expect(await (await browserFetch(jar, "/session")).json()).toEqual({ status: "signed_out" });
		// The refresh token athena issued in that late answer was revoked, not left live.
		const issued = held.bodies.find((b) => b.includes("grant_type=refresh_token"));
		expect(issued).toBeDefined();
		const revokes = held.bodies.filter((b) => b.includes("token_type_hint=refresh_token"));
		expect(revokes).toHaveLength(2);
		expect(new Set(revokes.map((b) => new URLSearchParams(b).get("token"))).size).toBe(2);
	});

	it("a refresh that athena refuses after sign-out does not bring the session back as revoked", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		const stale = await runInDurableObject(stub, async (instance: Session) => {
			const access = await instance.accessToken();
			return access.status === "connected" ? access.accessToken : "";
		});
		// athena sits on the refresh; sign-out revokes the grant meanwhile, so athena then says invalid_grant.
		await sandbox("faults", { target: "token", delayMs: 300, times: 1 });
		const refreshing = stub.refreshAfterUnauthorized(stale);
		await stub.logout();
		expect(await refreshing).toEqual({ status: "signed_out" });
		const keys = await runInDurableObject(stub, async (_o, state) => [...(await state.storage.list()).keys()]);
		expect(keys).toEqual([]);
	});

	it("every write of the session record leaves an alarm that will delete it", async () => {
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		await runInDurableObject(stub, async (_o, state) => {
			await state.storage.deleteAlarm();
		});
		await sandbox("revoke", { patient: PATIENTS.jane.id });
		const stale = await runInDurableObject(stub, async (instance: Session) => {
			Reflect.set(instance, "meta", undefined);
			Reflect.set(instance, "loaded", false);
			const access = await instance.accessToken();
			return access.status === "connected" ? access.accessToken : "";
		});
		// athena says invalid_grant: the record is kept as revoked, with an alarm.
		expect(await stub.refreshAfterUnauthorized(stale)).toEqual({ status: "revoked" });
		const alarm = await runInDurableObject(stub, (_o, state) => state.storage.getAlarm());
		expect(alarm).not.toBeNull();
	});
});

describe("when to refresh", () => {
	it("does not refresh a fresh token that athena issued for less than the refresh margin", async () => {
		// 30-s tokens: the whole life is inside the 60-s margin, so the margin shrinks to half the life.
		await sandbox("config", { tokenRateLimit: 0, accessTokenTtl: 30 });
		const { jar } = await signIn();
		const { stub } = await sessionOf(jar);
		const before = await refreshCalls();
		for (let i = 0; i < 5; i++) expect((await stub.accessToken()).status).toBe("connected");
		expect(await refreshCalls()).toBe(before);
		// In the last half of its life it is refreshed.
		const now = Date.now();
		await patchConnection(stub, (c) => ({ ...c, accessIssuedAt: now - 20_000, accessExpiresAt: now + 10_000 }));
		expect((await stub.accessToken()).status).toBe("connected");
		expect(await refreshCalls()).toBe(before + 1);
	});
});
