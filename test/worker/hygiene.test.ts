import { env, runInDurableObject } from "cloudflare:test";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { parseConfig } from "../../src/config";
import type { PendingAuthorization } from "../../src/durable/oauth-state";
import type { Session } from "../../src/durable/session";
import { sha256 } from "../../src/random";
import { SESSION_COOKIE } from "../../src/session/contract";
import { sessionStub } from "../../src/session/lookup";
import { openTokens, type SealedTokens } from "../../src/session/token-vault";
import { authorizeAtSandbox, browserFetch, CookieJar, launch, PATIENTS, sandbox } from "./support/sign-in";

const logged: string[] = [];
beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0, accessTokenTtl: 30 });
	logged.length = 0;
	for (const method of ["log", "info", "warn", "error", "debug"] as const) {
		vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
			logged.push(args.map(String).join(" "));
		});
	}
});
afterEach(() => vi.restoreAllMocks());

describe("secret hygiene over a full sign-in", () => {
	it("never puts a token, code verifier or id_token in a response, redirect, readable cookie or log line", async () => {
		const seen: string[] = [];
		const record = async (response: Response) => {
			seen.push(response.headers.get("Location") ?? "");
			seen.push(...response.headers.getSetCookie());
			seen.push(await response.clone().text());
			return response;
		};
		const jar = new CookieJar();
		const authorize = await launch(jar);
		seen.push(authorize.toString());
		const state = authorize.searchParams.get("state") ?? "";
		const stateStub = env.OAUTH_STATE.get(env.OAUTH_STATE.idFromName(await sha256(state)));
		const pending = await runInDurableObject(stateStub, async (_o, s) =>
			s.storage.get<PendingAuthorization>("pending"),
		);
		const verifier = pending?.codeVerifier ?? "";
		expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);

		const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
		const code = callback.searchParams.get("code") ?? "";
		const landed = await record(await browserFetch(jar, `${callback.pathname}${callback.search}`));
		expect(landed.status).toBe(302);
		await record(await browserFetch(jar, "/session"));
		await record(await browserFetch(jar, "/health"));

		// Force a refresh so its tokens are covered too.
		const sessionId = jar.cookies.get(SESSION_COOKIE) ?? "";
		const idHash = await sha256(sessionId);
		const stub = sessionStub(env, idHash);
		await stub.accessToken();
		await record(await browserFetch(jar, "/session"));
		const config = parseConfig(env as unknown as Record<string, unknown>);
		if (!config.ok) throw new Error("config");
		const sealed = await runInDurableObject(stub, async (_o: Session, s) => s.storage.get<SealedTokens>("tokens"));
		const tokens = sealed ? await openTokens(sealed, config.config.sessionKeys, idHash) : undefined;
		if (!tokens?.refreshToken || !tokens.idToken) throw new Error("expected refresh and id tokens");

		await record(await browserFetch(jar, "/logout", { method: "POST", headers: { Origin: "http://localhost:3000" } }));
		const everything = seen.join("\n");
		for (const secret of [tokens.accessToken, tokens.refreshToken, tokens.idToken, verifier]) {
			expect(everything).not.toContain(secret);
		}
		for (const header of seen.filter((line) => /^__Host-/.test(line))) expect(header).toMatch(/HttpOnly/i);

		const logs = logged.join("\n");
		expect(logs.length).toBeGreaterThan(0);
		for (const needle of [
			"Bearer ",
			"eyJ",
			sessionId,
			"refresh_token",
			"code=",
			code,
			"code_verifier",
			verifier,
			tokens.accessToken,
			"Testpatient",
			"Jane",
		]) {
			expect(logs).not.toContain(needle);
		}
	});
});

describe("token responses athena could get wrong", () => {
	for (const [fault, code] of [
		["html", "token_response_invalid"],
		["missing_access_token", "token_response_invalid"],
		["missing_patient", "token_response_invalid"],
	] as const) {
		it(`answers a clear 502 (${code}) when the token response is ${fault}, and creates no session`, async () => {
			await sandbox("faults", { target: "token", response: fault, times: 1 });
			const jar = new CookieJar();
			const callback = await authorizeAtSandbox((await launch(jar)).toString(), PATIENTS.jane);
			const response = await browserFetch(jar, `${callback.pathname}${callback.search}`);
			expect(response.status).toBe(502);
			expect(await response.json()).toMatchObject({ error: code });
			expect(jar.cookies.has(SESSION_COOKIE)).toBe(false);
		});
	}

	it("answers 503 with Retry-After when athena's token endpoint is down, and keeps the sign-in for a retry", async () => {
		await sandbox("faults", { target: "token", status: 503, times: 1 });
		const jar = new CookieJar();
		const callback = await authorizeAtSandbox((await launch(jar)).toString(), PATIENTS.jane);
		const path = `${callback.pathname}${callback.search}`;
		const response = await browserFetch(jar, path);
		expect(response.status).toBe(503);
		expect(response.headers.get("Retry-After")).toBeTruthy();
		expect(await response.json()).toMatchObject({ error: "athena_unavailable" });
		const retry = await browserFetch(jar, path);
		expect(retry.status).toBe(302);
	});
});
