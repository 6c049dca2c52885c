import { AppError } from "../errors";
import {
	fromLegacy,
	isLegacy,
	type LegacySessionMeta,
	newConnectionId,
	type SessionMeta,
	tokensAad,
	tokensKey,
} from "./connection";
import { openTokens, type SealedTokens, type SessionTokens, sealTokens, type VaultKey } from "./token-vault";

/*
 * The Session Durable Object's storage layout (docs/storage-schema.md): the
 * `meta` record, each connection's sealed tokens under `tokens:{id}`, the
 * kept logout hint, and the one-grant layout from before connections, read
 * once and rewritten. The object keeps the session's state and rules; this
 * keeps the keys, the sealing and the alarm that deletes it all.
 */

/** A session ends after this long without use (session-object.ts has the absolute limit). */
export const SESSION_IDLE_MS = 24 * 60 * 60_000;

const META = "meta";
/** Where a one-grant session (before connections) kept its tokens: moved to `tokens:{id}` on first read. */
const LEGACY_TOKENS = "tokens";
/** An ended grant's id_token, sealed like the tokens: signing out still ends the athena browser session. */
const LOGOUT_HINT = "logoutHint";

/** The lifetime fields the alarm reads, which both the current and the one-grant `meta` have. */
export type StoredLifetime = Pick<SessionMeta, "lastSeenAt" | "absoluteExpiresAt">;

/** The stored `meta` as it is, without migrating: what the alarm handler reads. */
export function readLifetime(storage: DurableObjectStorage): Promise<StoredLifetime | undefined> {
	return storage.get<StoredLifetime>(META);
}

/**
 * The session's record; a one-grant record becomes a session with that grant
 * as its only connection, written back once (its tokens sealed again under
 * the connection's key and AAD). `serverName` names the grant's server.
 */
export async function readSession(
	storage: DurableObjectStorage,
	keys: VaultKey[],
	serverName: (fhirBaseUrl: string) => string,
): Promise<{ meta: SessionMeta | undefined; migrated: boolean }> {
	const stored = await storage.get<SessionMeta | LegacySessionMeta>(META);
	if (!stored || !isLegacy(stored)) return { meta: stored, migrated: false };
	const meta = fromLegacy(stored, newConnectionId(), serverName(stored.fhirBaseUrl));
	const id = meta.connections[0]?.id ?? "";
	const sealed = await storage.get<SealedTokens>(LEGACY_TOKENS);
	const tokens = sealed ? await openTokens(sealed, keys, stored.idHash) : undefined;
	const moved = tokens ? { [tokensKey(id)]: await sealFor(keys, meta.idHash, id, tokens) } : {};
	await writeSession(storage, meta, moved);
	await storage.delete(LEGACY_TOKENS);
	return { meta, migrated: true };
}

/**
 * Writes `meta` (and `extra` keys in the same write), and makes sure an alarm
 * is set: a record without one would never be deleted.
 */
export async function writeSession(
	storage: DurableObjectStorage,
	meta: SessionMeta,
	extra: Record<string, unknown> = {},
): Promise<void> {
	await storage.put({ ...extra, [META]: meta });
	if ((await storage.getAlarm()) === null) {
		await storage.setAlarm(Math.min(meta.absoluteExpiresAt, meta.lastSeenAt + SESSION_IDLE_MS));
	}
}

/** A connection's tokens sealed with the newest key, bound to this session (`idHash`) and connection. */
export function sealFor(keys: VaultKey[], idHash: string, id: string, tokens: SessionTokens): Promise<SealedTokens> {
	const key = keys[0];
	if (!key)
		throw new AppError({
			code: "config_invalid",
			status: 503,
			message: "This service is not configured correctly.",
			detail: "no session key",
		});
	return sealTokens(tokens, key, tokensAad(idHash, id));
}

/** A connection's tokens; undefined when there are none or they no longer open (key gone, tampered). */
export async function readTokens(
	storage: DurableObjectStorage,
	keys: VaultKey[],
	meta: SessionMeta,
	id: string,
): Promise<SessionTokens | undefined> {
	const sealed = await storage.get<SealedTokens>(tokensKey(id));
	return sealed ? openTokens(sealed, keys, tokensAad(meta.idHash, id)) : undefined;
}

export function deleteTokens(storage: DurableObjectStorage, id: string): Promise<boolean> {
	return storage.delete(tokensKey(id));
}

/** Keeps only the id_token of a grant the server ended, for athena's end-session endpoint at sign-out. */
export async function keepLogoutHint(
	storage: DurableObjectStorage,
	keys: VaultKey[],
	idHash: string,
	tokens: SessionTokens,
): Promise<void> {
	const key = keys[0];
	if (!tokens.idToken || !key) return;
	const hint = { accessToken: "", refreshToken: undefined, idToken: tokens.idToken };
	await storage.put(LOGOUT_HINT, await sealTokens(hint, key, `${idHash}:${LOGOUT_HINT}`));
}

/** The kept id_token, if a server ended a grant that had one. */
export async function readLogoutHint(
	storage: DurableObjectStorage,
	keys: VaultKey[],
	idHash: string,
): Promise<string | undefined> {
	const sealed = await storage.get<SealedTokens>(LOGOUT_HINT);
	if (!sealed) return undefined;
	return (await openTokens(sealed, keys, `${idHash}:${LOGOUT_HINT}`))?.idToken;
}
