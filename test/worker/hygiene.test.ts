import { env, runInDurableObject } from "cloudflare:test";
import { exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { patientRecord } from "../../sandbox/src/data";
import { parseConfig } from "../../src/config";
import type { PendingAuthorization } from "../../src/durable/oauth-state";
import { sha256 } from "../../src/random";
import { type SessionMeta, tokensAad, tokensKey } from "../../src/session/connection";
import { SESSION_COOKIE } from "../../src/session/contract";
import { sessionStub } from "../../src/session/lookup";
import type { Session } from "../../src/session/session-object";
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

/** Everything a signing key could leak as: its PEM body lines and its private JWK members. */
async function keyMaterial(pem: string): Promise<string[]> {
	const lines = pem.trim().split("\n").slice(1, -1);
	const der = Uint8Array.from(atob(lines.join("")), (c) => c.charCodeAt(0));
	const key = await crypto.subtle.importKey("pkcs8", der, { name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" }, true, [
		"sign",
	]);
	const jwk = (await crypto.subtle.exportKey("jwk", key)) as unknown as Record<string, string>;
	const members = ["d", "p", "q", "dp", "dq", "qi"].map((m) => jwk[m] ?? "");
	// A leak of a key need not be whole: any 32-character stretch of a line or member gives it away.
	return [...lines, ...members].flatMap((text) => [text.slice(0, 32), text.slice(-32)]).filter((t) => t.length === 32);
}

async function sealedTokensOf(idHash: string, sessionKeys: Parameters<typeof openTokens>[1]) {
	const { id, sealed } = await runInDurableObject(sessionStub(env, idHash), async (_o: Session, s) => {
		const first = (await s.storage.get<SessionMeta>("meta"))?.connections[0]?.id ?? "";
		return { id: first, sealed: await s.storage.get<SealedTokens>(tokensKey(first)) };
	});
	const tokens = sealed ? await openTokens(sealed, sessionKeys, tokensAad(idHash, id)) : undefined;
	if (!tokens?.refreshToken || !tokens.idToken) throw new Error("expected access, refresh and id tokens");
	return tokens;
}

describe("secret hygiene over a full run", () => {
	it("sign-in, reads (incl. a search and a Binary), a refresh and logout put no token (but the id_token hint to athena's logout), code, verifier, key material or patient name where they do not belong", async () => {
		const config = parseConfig(env as unknown as Record<string, unknown>);
		if (!config.ok) throw new Error("config");
		const seen: string[] = [];
		/** The worker as the browser meets it: every response's headers and body kept for the search. */
		const recorded = async (request: Request) => {
			const response = await exports.default.fetch(request);
			const headers = [...response.headers].map(([name, value]) => `${name}: ${value}`).join("\n");
			const bytes = new Uint8Array(await response.clone().arrayBuffer());
			seen.push(`${response.status}\n${headers}\n${String.fromCharCode(...bytes.subarray(0, 200_000))}`);
			return response;
		};
		const get = (path: string, init: RequestInit = {}) => browserFetch(jar, path, init, recorded);

		const jar = new CookieJar();
		const authorize = await launch(jar, "practice=80000", recorded);
		const state = authorize.searchParams.get("state") ?? "";
		const pending = await runInDurableObject(
			env.OAUTH_STATE.get(env.OAUTH_STATE.idFromName(await sha256(state))),
			async (_o, s) => s.storage.get<PendingAuthorization>("pending"),
		);
		const verifier = pending?.codeVerifier ?? "";
		expect(verifier).toMatch(/^[A-Za-z0-9_-]{43}$/);
		const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
		const code = callback.searchParams.get("code") ?? "";
		expect((await get(`${callback.pathname}${callback.search}`)).status).toBe(302);
		const sessionId = jar.cookies.get(SESSION_COOKIE) ?? "";
		const idHash = await sha256(sessionId);
		const first = await sealedTokensOf(idHash, config.config.sessionKeys);

		await get("/session");
		await get("/health");
		await get("/.well-known/jwks.json");
		expect((await get(`/fhir/r4/Patient/${PATIENTS.jane.id}`)).status).toBe(200);
		expect((await get("/fhir/r4/Observation?category=laboratory")).status).toBe(200);
		expect((await get("/fhir/r4/DocumentReference")).status).toBe(200);
		// athena's notes arrive inline; the sandbox keeps one Binary per chart that no document points at.
		const [binaryId] = patientRecord(PATIENTS.jane.id)?.binaries.keys() ?? [];
		const binary = `Binary/${binaryId}`;
		expect(binaryId).toBeDefined();
		expect((await get(`/fhir/r4/${binary}`, { headers: { Accept: "application/pdf" } })).status).toBe(200);
		expect((await get("/record", { headers: { Accept: "text/html" } })).status).toBe(200);

		// athena ends the access token early: the next read refreshes, so the new tokens are covered too.
		await sandbox("expire-access-tokens", {});
		expect((await get("/fhir/r4/Condition")).status).toBe(200);
		const second = await sealedTokensOf(idHash, config.config.sessionKeys);
		expect(second.refreshToken).not.toBe(first.refreshToken);
		await get("/session");
		// The page's sign-out: athena's end-session endpoint gets the id_token hint, and nothing else does.
		const out = await get("/logout", {
			method: "POST",
			headers: { Origin: "http://localhost:3000", Accept: "text/html" },
		});
		expect(out.status).toBe(303);
		const endSession = `location: ${out.headers.get("Location")}`;
		expect(endSession.startsWith("location: http://localhost:3001/oauth2/v1/logout?id_token_hint=eyJ")).toBe(true);
		for (const token of [first, second].flatMap((t) => [t.accessToken, t.refreshToken ?? ""])) {
			expect(endSession.includes(token)).toBe(false);
		}

		const secrets = [
			...[first, second].flatMap((t) => [t.accessToken, t.refreshToken ?? "", t.idToken ?? ""]),
			verifier,
			code,
			...(await keyMaterial(env.SIGNING_KEY)),
		];
		const responses = seen.join("\n").replace(endSession, "");
		for (const secret of [...secrets, "PRIVATE KEY"]) {
			expect(responses.includes(secret), `a response carries ${secret.slice(0, 6)}…`).toBe(false);
		}
		// The session id travels only in its own HttpOnly cookie.
		expect(responses.split(sessionId).length - 1).toBe(1);
		for (const cookie of seen.flatMap((r) => r.split("\n")).filter((l) => /^set-cookie: __Host-/i.test(l))) {
			expect(cookie).toMatch(/HttpOnly/i);
		}

		const logs = logged.join("\n");
		expect(logs.length).toBeGreaterThan(0);
		const patients = await sandbox<Array<{ name: string; username: string }>>("patients");
		const names = patients.flatMap((p) => [...p.name.split(" "), p.username]);
		for (const needle of [
			...secrets,
			"PRIVATE KEY",
			"Bearer ",
			"eyJ",
			sessionId,
			"refresh_token",
			"code=",
			"code_verifier",
			...names,
		]) {
			expect(logs.includes(needle), `a log line carries ${needle.slice(0, 6)}…`).toBe(false);
		}
	});
});
