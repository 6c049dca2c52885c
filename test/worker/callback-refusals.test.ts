import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { OAuthState } from "../../src/durable/oauth-state";
import { sha256 } from "../../src/random";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	launch,
	PATIENTS,
	type Received,
	sandbox,
} from "./support/sign-in";

async function tokenCalls(): Promise<number> {
	return (await sandbox<Received>("received")).tokenCalls.length;
}

/** Launch and consent at the sandbox; returns the jar and the callback URL, not yet visited. */
async function readyCallback(decision: "allow" | "deny" = "allow") {
	const jar = new CookieJar();
	const authorize = await launch(jar);
	const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane, decision);
	return { jar, callback, path: `${callback.pathname}${callback.search}` };
}

const html = { headers: { Accept: "text/html" } };

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("callback refusals", () => {
	it("shows denial at consent as a normal page and redeems nothing", async () => {
		const { jar, path } = await readyCallback("deny");
		expect(new URLSearchParams(path.split("?")[1]).get("error")).toBe("access_denied");
		const response = await browserFetch(jar, path, html);
		expect(response.status).toBe(403);
		expect(response.headers.get("Content-Type")).toContain("text/html");
		expect(response.headers.get("Referrer-Policy")).toBe("no-referrer");
		const page = await response.text();
		expect(page).toContain("You did not share your record");
		expect(page).toContain("Connect again");
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses a replayed state: the second use redeems nothing", async () => {
		const { jar, path } = await readyCallback();
		expect((await browserFetch(jar, path)).status).toBe(302);
		const before = await tokenCalls();
		const replay = await browserFetch(jar, path, html);
		expect(replay.status).toBe(400);
		expect(await replay.text()).toContain("already been used");
		expect(await tokenCalls()).toBe(before);
	});

	it("refuses a forged state", async () => {
		const { jar, callback } = await readyCallback();
		callback.searchParams.set("state", "A".repeat(43));
		const response = await browserFetch(jar, `${callback.pathname}${callback.search}`);
		expect(response.status).toBe(400);
		expect(await response.json()).toMatchObject({ error: "state_unknown" });
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses a malformed state without looking it up", async () => {
		const { jar, callback } = await readyCallback();
		callback.searchParams.set("state", "short");
		const response = await browserFetch(jar, `${callback.pathname}${callback.search}`);
		expect(await response.json()).toMatchObject({ error: "state_invalid" });
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses an expired state", async () => {
		const { jar, callback, path } = await readyCallback();
		const id = env.OAUTH_STATE.idFromName(await sha256(callback.searchParams.get("state") ?? ""));
		await runInDurableObject(env.OAUTH_STATE.get(id), async (_object: OAuthState, state) => {
			const pending = await state.storage.get<{ expiresAt: number }>("pending");
			await state.storage.put("pending", { ...pending, expiresAt: Date.now() - 1 });
		});
		const response = await browserFetch(jar, path);
		expect(await response.json()).toMatchObject({ error: "state_expired" });
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses a state from another browser, and burns it", async () => {
		const { jar, path } = await readyCallback();
		const otherBrowser = new CookieJar();
		await launch(otherBrowser);
		const response = await browserFetch(otherBrowser, path);
		expect(await response.json()).toMatchObject({ error: "state_other_browser" });
		const original = await browserFetch(jar, path);
		expect(await original.json()).toMatchObject({ error: "state_unknown" });
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses a callback with no launch cookie at all", async () => {
		const { path } = await readyCallback();
		const response = await browserFetch(new CookieJar(), path);
		expect(await response.json()).toMatchObject({ error: "state_other_browser" });
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses a missing code", async () => {
		const { jar, callback } = await readyCallback();
		callback.searchParams.delete("code");
		const response = await browserFetch(jar, `${callback.pathname}${callback.search}`);
		expect(await response.json()).toMatchObject({ error: "code_missing" });
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses an iss that is not the expected issuer (RFC 9207)", async () => {
		const { jar, callback } = await readyCallback();
		expect(callback.searchParams.get("iss")).toBe("http://127.0.0.1:3001/oauth2/aus5sandbox0preview");
		callback.searchParams.set("iss", "https://evil.example/oauth2");
		const response = await browserFetch(jar, `${callback.pathname}${callback.search}`);
		expect(await response.json()).toMatchObject({ error: "issuer_mismatch" });
		expect(await tokenCalls()).toBe(0);
	});

	it("refuses repeated and oversized parameters with a clear 400", async () => {
		const { jar, path } = await readyCallback();
		const repeated = await browserFetch(jar, `${path}&state=${"B".repeat(43)}`);
		expect(await repeated.json()).toMatchObject({ error: "parameter_repeated" });
		const long = await browserFetch(jar, `/callback?state=${"C".repeat(43)}&code=${"x".repeat(3000)}`);
		expect(await long.json()).toMatchObject({ error: "parameter_too_long" });
		expect(await tokenCalls()).toBe(0);
	});
});

describe("launch input", () => {
	const cases: Array<[string, string]> = [
		["//evil.example", "return_to_invalid"],
		["/\\evil.example", "return_to_invalid"],
		["https://evil.example/", "return_to_invalid"],
		["%2F%2Fevil.example", "return_to_invalid"],
		["/%2F%2Fevil.example", "return_to_invalid"],
		["/%5Cevil.example", "return_to_invalid"],
		["/ok%0d%0aSet-Cookie:x", "return_to_invalid"],
		["javascript:alert(1)", "return_to_invalid"],
	];
	for (const [returnTo, code] of cases) {
		it(`refuses return_to=${JSON.stringify(returnTo)} (no open redirect)`, async () => {
			const response = await browserFetch(
				new CookieJar(),
				`/launch?practice=80000&return_to=${encodeURIComponent(returnTo)}`,
			);
			expect(response.status).toBe(400);
			expect(await response.json()).toMatchObject({ error: code });
		});
	}

	it("refuses a practice that is not digits", async () => {
		const response = await browserFetch(new CookieJar(), "/launch?practice=80000%27%3B");
		expect(await response.json()).toMatchObject({ error: "practice_invalid" });
	});

	it("uses the default practice locally when none is given", async () => {
		const jar = new CookieJar();
		const url = await launch(jar, "");
		expect(url.searchParams.get("client_id")).toBe("local-dev-client");
	});
});
