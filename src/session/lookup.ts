import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import type { AppEnv } from "../app-env";
import { RANDOM_TOKEN_PATTERN, sha256 } from "../random";
import { SESSION_COOKIE, type SessionApi, sessionTag } from "./contract";

export interface SessionHandle {
	/** SHA-256 of the session id: the Durable Object's name, and what logs may show. */
	idHash: string;
	api: SessionApi;
	/** The connection read through this handle (`accessToken(connectionId)`); absent: the session's first connection. */
	connectionId?: string | undefined;
}

/** The Durable Object of the session named by `idHash`. */
export function sessionStub(env: Env, idHash: string) {
	return env.SESSIONS.get(env.SESSIONS.idFromName(idHash));
}

/**
 * The session named by the request's cookie, if the cookie is well formed.
 * Whether the session still exists is the Durable Object's answer (`view()`
 * or `accessToken()` say `signed_out` when it does not).
 *
 * @example
 * const session = await sessionFor(c);
 * const access = session ? await session.api.accessToken() : { status: "signed_out" };
 */
export async function sessionFor(c: Context<AppEnv>): Promise<SessionHandle | undefined> {
	const raw = getCookie(c, SESSION_COOKIE);
	if (!raw || !RANDOM_TOKEN_PATTERN.test(raw)) return undefined;
	const idHash = await sha256(raw);
	c.get("logFields").session = sessionTag(idHash);
	return { idHash, api: sessionStub(c.env, idHash) };
}
