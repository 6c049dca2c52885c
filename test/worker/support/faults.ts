import { createExecutionContext, env, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { expect } from "vitest";
import { app } from "../../../src/app";
import { parseConfig } from "../../../src/config";
import type { PendingAuthorization } from "../../../src/durable/oauth-state";
import { TOKEN_BUDGET_NAME, TokenBudget } from "../../../src/durable/token-budget";
import { sha256 } from "../../../src/random";
import { type ConnectionRecord, type SessionMeta, tokensAad, tokensKey } from "../../../src/session/connection";
import { SESSION_COOKIE } from "../../../src/session/contract";
import { sessionStub } from "../../../src/session/lookup";
import { openTokens, type SealedTokens, type SessionTokens } from "../../../src/session/token-vault";
import type { CookieJar } from "./sign-in";

export type Worker = (request: Request) => Promise<Response>;

/** The worker with some bindings replaced, its waitUntil work finished before the response is handed back. */
export function workerWith(overrides: Record<string, unknown> = {}): Worker {
	const patched = { ...env, ...overrides } as Env;
	return async (request) => {
		const ctx = createExecutionContext();
		const response = await app.fetch(request, patched, ctx);
		await waitOnExecutionContext(ctx);
		return response;
	};
}

/** What a Durable Object stub answers while its object is down: every call rejects, as after a reset. */
export function failingNamespace<T extends Rpc.DurableObjectBranded | undefined>(
	real: DurableObjectNamespace<T>,
	calls: string[] = [],
): DurableObjectNamespace<T> {
	const stub = new Proxy(
		{},
		{
			get(_target, method) {
				// Not a thenable: the stub itself may be awaited or returned from an async function.
				if (method === "then" || typeof method !== "string") return undefined;
				return () => {
					calls.push(method);
					return Promise.reject(new Error("Durable Object reset because its code was updated."));
				};
			},
		},
	);
	return {
		idFromName: (name: string) => real.idFromName(name),
		idFromString: (id: string) => real.idFromString(id),
		newUniqueId: () => real.newUniqueId(),
		get: () => stub,
		getByName: () => stub,
		jurisdiction: () => real,
	} as unknown as DurableObjectNamespace<T>;
}

/** The real namespace, recording the name of every object it is asked for. */
export function recordingNamespace<T extends Rpc.DurableObjectBranded | undefined>(
	real: DurableObjectNamespace<T>,
	names: string[],
): DurableObjectNamespace<T> {
	return new Proxy(real, {
		get(target, property) {
			const value = Reflect.get(target, property, target);
			if (typeof value !== "function") return value;
			if (property !== "idFromName") return value.bind(target);
			return (name: string) => {
				names.push(name);
				return target.idFromName(name);
			};
		},
	});
}

/** How many keys each named Durable Object holds: 0 everywhere means nothing was written. */
export async function storedKeys<T extends Rpc.DurableObjectBranded | undefined>(
	namespace: DurableObjectNamespace<T>,
	names: string[],
): Promise<number[]> {
	return Promise.all(
		names.map((name) =>
			runInDurableObject(
				namespace.get(namespace.idFromName(name)),
				async (_o, state) => (await state.storage.list()).size,
			),
		),
	);
}

/** Status, body and headers of an error answer, with the checks every failure must pass. */
export async function expectCleanFailure(
	response: Response,
	status: number,
): Promise<{ text: string; json: Record<string, unknown> | undefined }> {
	expect(response.status).toBe(status);
	const text = await response.text();
	// No stack, no internal error text, whatever the shape.
	expect(text).not.toMatch(/\n\s+at .+:\d+/);
	expect(text).not.toContain("Durable Object reset");
	expect(text).not.toContain("internal_error");
	let json: Record<string, unknown> | undefined;
	try {
		json = JSON.parse(text) as Record<string, unknown>;
	} catch {
		json = undefined;
	}
	return { text, json };
}

export const html = { headers: { Accept: "text/html" } };

/**
 * The session named by a jar's cookie: its stub, a connection's (the first
 * unless `connectionId` names another) stored record (`meta`) and sealed
 * tokens, opened with the worker's keys.
 */
export async function storedSession(jar: CookieJar, connectionId?: string) {
	const id = jar.cookies.get(SESSION_COOKIE);
	if (!id) throw new Error("no session cookie");
	const idHash = await sha256(id);
	const stub = sessionStub(env, idHash);
	const stored = await runInDurableObject(stub, async (_o, state) => {
		const session = await state.storage.get<SessionMeta>("meta");
		const chosen = session?.connections.find((c) => connectionId === undefined || c.id === connectionId);
		return {
			connectionId: chosen?.id,
			meta: chosen,
			sealed: chosen ? await state.storage.get<SealedTokens>(tokensKey(chosen.id)) : undefined,
		};
	});
	const config = parseConfig(env as unknown as Record<string, unknown>);
	if (!config.ok) throw new Error("config");
	const opened: SessionTokens | undefined =
		stored.sealed && stored.connectionId
			? await openTokens(stored.sealed, config.config.sessionKeys, tokensAad(idHash, stored.connectionId))
			: undefined;
	return { idHash, stub, ...stored, opened };
}

/** Changes one stored connection's record (the first when no id is given), as if the session had written it. */
export async function patchConnection(
	stub: DurableObjectStub,
	patch: (connection: ConnectionRecord) => ConnectionRecord,
	connectionId?: string,
): Promise<void> {
	await runInDurableObject(stub, async (instance: object, state) => {
		const meta = await state.storage.get<SessionMeta>("meta");
		if (!meta) throw new Error("no session");
		const chosen = connectionId ?? meta.connections[0]?.id;
		const connections = meta.connections.map((c) => (c.id === chosen ? patch(c) : c));
		await state.storage.put("meta", { ...meta, connections });
		// As after an eviction: the next call reads storage again.
		Reflect.set(instance, "loaded", false);
	});
}

/** Makes a connection's access token an hour-long one 30 s from its end: inside the refresh margin. */
export async function accessTokenNearlyExpired(stub: DurableObjectStub, connectionId?: string): Promise<void> {
	const now = Date.now();
	await patchConnection(
		stub,
		(c) => ({ ...c, accessIssuedAt: now - 3_570_000, accessExpiresAt: now + 30_000 }),
		connectionId,
	);
}

/** Whether the OAuth state behind a callback URL is still waiting for its callback. */
export async function statePending(callback: URL): Promise<boolean> {
	const id = env.OAUTH_STATE.idFromName(await sha256(callback.searchParams.get("state") ?? ""));
	return runInDurableObject(
		env.OAUTH_STATE.get(id),
		async (_o, state) => (await state.storage.get<PendingAuthorization>("pending")) !== undefined,
	);
}

/**
 * A fresh token budget, as after a quiet minute: its stored window, its
 * per-client failure and per-session refresh counts, and its clock back to
 * real time (a test that pins it calls `pinTokenBudgetClock`).
 */
export async function resetTokenBudget(): Promise<void> {
	const stub = env.TOKEN_BUDGET.get(env.TOKEN_BUDGET.idFromName(TOKEN_BUDGET_NAME));
	await runInDurableObject(stub, async (instance: TokenBudget, state) => {
		await state.storage.deleteAll();
		// Dropped in memory too, as a fresh instance would.
		const fresh = new TokenBudget(state, env);
		for (const field of ["window", "failures", "refreshes", "clock"])
			Reflect.set(instance, field, Reflect.get(fresh, field));
	});
}

/**
 * Fixes the token budget's clock at `epochMs`, so a test's calls all fall in
 * the calendar minute it chooses, whatever second the test starts at.
 */
export async function pinTokenBudgetClock(epochMs: number): Promise<void> {
	const stub = env.TOKEN_BUDGET.get(env.TOKEN_BUDGET.idFromName(TOKEN_BUDGET_NAME));
	await runInDurableObject(stub, (instance: TokenBudget) => {
		Reflect.set(instance, "clock", () => epochMs);
	});
}

/**
 * Runs `body` while the session's Durable Object sees `overrides` in its env
 * (a short token timeout, a failing token budget), then restores its env.
 */
export async function withSessionEnv<T>(
	stub: DurableObjectStub,
	overrides: Record<string, unknown>,
	body: () => Promise<T>,
): Promise<T> {
	const original = await runInDurableObject(stub, async (instance) => {
		const before = Reflect.get(instance, "env") as Env;
		Reflect.set(instance, "env", { ...before, ...overrides });
		return before;
	});
	try {
		return await body();
	} finally {
		await runInDurableObject(stub, async (instance) => {
			Reflect.set(instance, "env", original);
		});
	}
}
