import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { SESSION_COOKIE, type SessionView } from "../../src/session/contract";
import { storedSession } from "./support/faults";
import { browserFetch, connectRecord, PATIENTS, sandbox, signInKeepingAthena } from "./support/sign-in";

const logged: string[] = [];
beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
	logged.length = 0;
	for (const method of ["log", "info", "warn", "error", "debug"] as const) {
		vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
			logged.push(args.map(String).join(" "));
		});
	}
});
afterEach(() => vi.restoreAllMocks());

describe("secret hygiene with two connected records", () => {
	it("connecting, reading both records, a refresh of one and sign-out log no token, session id or name", async () => {
		const browser = await signInKeepingAthena();
		const sessionId = browser.jar.cookies.get(SESSION_COOKIE) ?? "";
		expect(sessionId).toHaveLength(43);
		expect((await connectRecord(browser, PATIENTS.dependent)).status).toBe(302);
		const view = (await (await browserFetch(browser.jar, "/session")).json()) as SessionView;
		const ids = view.connections?.map((c) => c.id) ?? [];
		expect(ids).toHaveLength(2);
		for (const id of ids) {
			expect((await browserFetch(browser.jar, `/fhir/${id}/r4/Condition`)).status).toBe(200);
		}
		expect((await browserFetch(browser.jar, "/record", { headers: { Accept: "text/html" } })).status).toBe(200);
		const before = await Promise.all(ids.map((id) => storedSession(browser.jar, id)));
		await sandbox("expire-access-tokens", {});
		expect((await browserFetch(browser.jar, `/fhir/${ids[1]}/r4/Condition`)).status).toBe(200);
		const after = await storedSession(browser.jar, ids[1]);
		expect(after.opened?.refreshToken).not.toBe(before[1]?.opened?.refreshToken);
		const out = await browserFetch(browser.jar, "/logout", {
			method: "POST",
			headers: { Origin: "http://localhost:3000" },
		});
		expect(out.status).toBe(200);

		const tokens = [...before.map((s) => s.opened), after.opened].flatMap((t) =>
			t ? [t.accessToken, t.refreshToken ?? "", t.idToken ?? ""] : [],
		);
		expect(tokens.filter(Boolean).length).toBeGreaterThanOrEqual(8);
		const logs = logged.join("\n");
		expect(logs).toContain("record connected");
		const patients = await sandbox<Array<{ name: string; username: string }>>("patients");
		const names = patients.flatMap((p) => [...p.name.split(" "), p.username]);
		// A JWT in any log line; "eyJ" alone may turn up by chance in a hashed session tag.
		expect(logs).not.toMatch(/eyJ[A-Za-z0-9_-]*\.eyJ/);
		for (const needle of [...tokens.filter(Boolean), "Bearer ", sessionId, "refresh_token", "code=", ...names].filter(
			(n) => n.length > 2,
		)) {
			expect(logs.includes(needle), `a log line carries ${needle.slice(0, 6)}…`).toBe(false);
		}
	});
});
