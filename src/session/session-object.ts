import { DurableObject } from "cloudflare:workers";
import { ATHENA_SERVER_ID, type Config, type SmartServer, serverById, settings } from "../config";
import { tokenBudget } from "../durable/token-budget";
import { AppError } from "../errors";
import { log } from "../log";
import { budgetedTokenCall } from "../oauth/budgeted-token-call";
import { authorizationServer } from "../oauth/discovery";
import { refreshTokens, revokeGrant, revokeToken, UnusableTokenResponse } from "../oauth/token-client";
import { serverClient } from "../signer";
import {
	type ConnectionRecord,
	connectionFor,
	connectionView,
	grantTokens,
	type NewGrant,
	newConnectionId,
	patchConnection,
	refreshDue,
	type SessionMeta,
	type SessionServer,
	sameRecord,
	serverNameOf,
	tokensKey,
	withConnection,
} from "./connection";
import { type AccessResult, type LogoutResult, type SessionApi, type SessionView, sessionTag } from "./contract";
import {
	deleteTokens,
	keepLogoutHint,
	readLifetime,
	readLogoutHint,
	readSession,
	readTokens,
	SESSION_IDLE_MS,
	sealFor,
	writeSession,
} from "./session-store";
import type { SessionTokens } from "./token-vault";

export type { SessionServer } from "./connection";

export { SESSION_IDLE_MS };
/**
 * Refreshes a session may make in a minute: the configured limit
 * (SESSION_REFRESHES_PER_MINUTE) and one more for each further connection, so
 * a patient with several records idle past their tokens' hour can open them
 * all at once, while a session still cannot drain the environment's budget
 * by 401 -> refresh cycles (issue "Security round 2", 1).
 */
export function sessionRefreshLimit(configured: number, connections: number): number {
	return configured + Math.max(0, connections - 1);
}

/** A session ends after this long in any case (well inside athena's >= 3-month refresh tokens). */
export const SESSION_ABSOLUTE_MS = 30 * 24 * 60 * 60_000;
/** Records one session may connect: bounds its storage and its sign-out's revocations. */
export const MAX_CONNECTIONS = 8;
/** How long a refresh request may take before it is abandoned (callers stop waiting much sooner). */
const REFRESH_NETWORK_TIMEOUT_MS = 60_000;
// Writing lastSeenAt on every request would cost a storage write per FHIR call.
const TOUCH_GRANULARITY_MS = 60_000;

/** A sign-in's grant, starting a session. */
export interface BeginSession extends Omit<NewGrant, "fhirBaseUrl" | "serverName"> {
	idHash: string;
	now?: number;
}

/** A sign-in's grant, added to a session that exists ("Connect another record"). */
export type ConnectRecord = Omit<BeginSession, "idHash">;

export type ConnectResult =
	/** `added`: a new connection; otherwise the patient's record at that server was already one, and has the new grant. */
	| { status: "connected"; connectionId: string; added: boolean }
	/** The session ended meanwhile: the caller starts a new one instead. */
	| { status: "signed_out" }
	/** MAX_CONNECTIONS reached. */
	| { status: "full" };

/**
 * One signed-in browser's session, named by the SHA-256 of its session id:
 * the records it has connected (connection.ts), each with its tokens sealed
 * with AES-256-GCM. Hands out a connection's access token, refreshing it once
 * for all its concurrent callers; one connection's refresh or revocation never
 * touches another's tokens.
 */
export class Session extends DurableObject<Env> implements SessionApi {
	private meta: SessionMeta | undefined;
	/** Opened tokens by connection id. */
	private tokens = new Map<string, SessionTokens>();
	private loaded = false;
	/** The refresh in flight per connection: a Durable Object lets other calls in while it awaits the server. */
	private refreshing = new Map<string, Promise<AccessResult>>();
	/**
	 * Set for good once the session ends (sign-out, expiry). A refresh that was
	 * awaiting the server when it ended must not write the session back.
	 */
	private ended = false;
	/** The first read of storage while it is under way, shared by every call that arrives meanwhile. */
	private reading: Promise<void> | undefined;
	/** A move to a new session id (moveTo) while it is under way. */
	private moving: Promise<void> | undefined;
	/** The servers' OAuth endpoints are reached through this; tests replace it to hold an answer back. */
	private network: typeof fetch = (input, init) => fetch(input, init);

	private config(): Config {
		return settings(this.env);
	}

	/** The first read of this object's storage: the session record (migrated from one grant if need be). */
	private async readStored(): Promise<void> {
		const config = this.config();
		const stored = await readSession(this.ctx.storage, config.sessionKeys, (base) =>
			serverNameOf(config.profile, base),
		);
		if (stored.migrated && stored.meta) {
			log("info", "session read as one connection", { session: sessionTag(stored.meta.idHash) });
		}
		// A session begun while this read was under way is the newer record.
		if (!this.loaded) this.meta = stored.meta;
		this.loaded = true;
	}

	private async load(now: number): Promise<SessionMeta | undefined> {
		// A move to a new session id under way: every call waits for it, then finds this session ended (or kept).
		if (this.moving) await this.moving;
		if (this.ended) return undefined;
		if (!this.loaded) {
			// One read (and one migration of a one-grant record) however many first calls interleave.
			this.reading ??= this.readStored().finally(() => {
				this.reading = undefined;
			});
			await this.reading;
		}
		const meta = this.meta;
		if (!meta) return undefined;
		if (now >= meta.absoluteExpiresAt || now - meta.lastSeenAt >= SESSION_IDLE_MS) {
			await this.end();
			return undefined;
		}
		if (now - meta.lastSeenAt >= TOUCH_GRANULARITY_MS) await this.writeMeta((m) => ({ ...m, lastSeenAt: now }));
		return this.meta;
	}

	private async openedTokens(meta: SessionMeta, id: string): Promise<SessionTokens | undefined> {
		let tokens = this.tokens.get(id);
		if (!tokens) {
			tokens = await readTokens(this.ctx.storage, this.config().sessionKeys, meta, id);
			if (tokens) this.tokens.set(id, tokens);
		}
		return tokens;
	}

	/**
	 * Seals a connection's tokens, then writes them with the session record
	 * that `update` makes of the record as it is by then: other connections
	 * may have been refreshed while this one awaited its server or the
	 * sealing. Writes nothing once the session has ended.
	 */
	private async storeTokens(
		id: string,
		tokens: SessionTokens,
		update: (meta: SessionMeta) => SessionMeta = (meta) => meta,
	): Promise<void> {
		const idHash = this.meta?.idHash;
		if (!idHash) return;
		const sealed = await sealFor(this.config().sessionKeys, idHash, id, tokens);
		if (this.ended || !this.meta) return;
		const meta = update(this.meta);
		// In memory before the write completes: the output gate holds every answer
		// (the new access token's too) until the write, rotated refresh token
		// included, is durable.
		this.meta = meta;
		this.tokens.set(id, tokens);
		await writeSession(this.ctx.storage, meta, { [tokensKey(id)]: sealed });
	}

	/** Every write of the session record goes through here (it keeps an alarm set), applied to the record as it is. */
	private async writeMeta(update: (meta: SessionMeta) => SessionMeta): Promise<void> {
		if (this.ended || !this.meta) return;
		const meta = update(this.meta);
		this.meta = meta;
		await writeSession(this.ctx.storage, meta);
	}

	private async end(): Promise<void> {
		this.ended = true;
		await this.ctx.storage.deleteAll();
		await this.ctx.storage.deleteAlarm();
		this.meta = undefined;
		this.tokens.clear();
	}

	/** The connection named `id`, or the first one when no id is given. */
	private connection(meta: SessionMeta | undefined, id: string | undefined): ConnectionRecord | undefined {
		if (!meta) return undefined;
		return id === undefined ? meta.connections[0] : meta.connections.find((c) => c.id === id);
	}

	private connected(connection: ConnectionRecord, tokens: SessionTokens): AccessResult {
		return {
			status: "connected",
			accessToken: tokens.accessToken,
			expiresAt: connection.accessExpiresAt,
			patient: connection.patient,
			practice: connection.practice,
			fhirBaseUrl: connection.fhirBaseUrl,
			...(connection.serverId ? { serverId: connection.serverId } : {}),
		};
	}

	/** The connection's current answer, without refreshing: for a caller whose refresh was overtaken. */
	private current(id: string): AccessResult {
		const connection = this.connection(this.meta, id);
		const tokens = this.tokens.get(id);
		if (!connection) return { status: "signed_out" };
		if (connection.status === "revoked") return { status: "revoked" };
		return tokens ? this.connected(connection, tokens) : { status: "signed_out" };
	}

	/** Starts the session after a successful code exchange, with that grant as its first connection. */
	async begin(input: BeginSession): Promise<string> {
		const now = input.now ?? Date.now();
		// Without a refresh token the session cannot outlive its access token.
		const absoluteExpiresAt = input.tokens.refreshToken
			? now + SESSION_ABSOLUTE_MS
			: Math.min(now + SESSION_ABSOLUTE_MS, input.tokens.expiresAt);
		const connection = connectionFor(this.grant(input), newConnectionId(), now);
		const meta: SessionMeta = {
			idHash: input.idHash,
			createdAt: now,
			lastSeenAt: now,
			absoluteExpiresAt,
			connections: [connection],
		};
		this.meta = meta;
		this.loaded = true;
		await this.storeTokens(connection.id, grantTokens(input.tokens));
		return connection.id;
	}

	/**
	 * Adds a sign-in's grant to this session ("Connect another record"). The
	 * same patient at the same server again replaces that connection's grant,
	 * keeping its id, and hands the old grant back; the session's lifetime is
	 * not extended.
	 */
	async addConnection(input: ConnectRecord): Promise<ConnectResult> {
		const now = input.now ?? Date.now();
		const meta = await this.load(now);
		if (!meta) return { status: "signed_out" };
		const grant = this.grant(input);
		const existing = sameRecord(meta.connections, grant);
		if (!existing && meta.connections.length >= MAX_CONNECTIONS) return { status: "full" };
		// A refresh of the connection being replaced finishes first, so its answer cannot overwrite this grant.
		if (existing) await this.refreshing.get(existing.id)?.catch(() => undefined);
		const latest = this.meta;
		if (!latest) return { status: "signed_out" };
		const replaced = existing && (await this.replacedGrant(latest, existing.id));
		const connection = connectionFor(grant, existing?.id ?? newConnectionId(latest.connections), now, existing);
		// Checked again on the record as it is at the write: another callback may have added a connection meanwhile.
		let full = false;
		await this.storeTokens(connection.id, grantTokens(input.tokens), (m) => {
			if (existing) return withConnection(m, connection);
			full = m.connections.length >= MAX_CONNECTIONS;
			return full ? m : { ...m, connections: [...m.connections, connection] };
		});
		if (this.ended) return { status: "signed_out" };
		if (full) {
			await this.ctx.storage.delete(tokensKey(connection.id));
			this.tokens.delete(connection.id);
			return { status: "full" };
		}
		// The grant this one replaces is handed back rather than left live at its server.
		if (replaced) await this.revokeAtServer(replaced.connection, replaced.tokens);
		return { status: "connected", connectionId: connection.id, added: !existing };
	}

	/**
	 * Hands the whole session (every connection's tokens, the kept logout
	 * hint) to the Session object of `newIdHash` and ends here without
	 * revoking anything: the new session id "Connect another record" gets, as
	 * every sign-in does (OWASP session fixation), so a cookie value known
	 * before no longer opens the records connected after. Refreshes under way
	 * finish first (a copy taken before a rotation would hold a spent refresh
	 * token), and calls arriving meanwhile wait. Returns the session's
	 * absolute end, or undefined when nothing moved and this session stays.
	 */
	async moveTo(newIdHash: string): Promise<{ absoluteExpiresAt: number } | undefined> {
		const meta = await this.load(Date.now());
		if (!meta) return undefined;
		let moved!: () => void;
		this.moving = new Promise<void>((resolve) => {
			moved = resolve;
		});
		try {
			await Promise.allSettled([...this.refreshing.values()]);
			const current = this.meta;
			if (!current) return undefined;
			const keys = this.config().sessionKeys;
			const tokens: Record<string, SessionTokens> = {};
			for (const connection of current.connections) {
				const opened = await this.openedTokens(current, connection.id).catch(() => undefined);
				if (opened) tokens[connection.id] = opened;
			}
			const hint = await readLogoutHint(this.ctx.storage, keys, current.idHash).catch(() => undefined);
			const target = this.env.SESSIONS.get(this.env.SESSIONS.idFromName(newIdHash));
			await target.adopt({ ...current, idHash: newIdHash }, tokens, hint);
			await this.end();
			return { absoluteExpiresAt: current.absoluteExpiresAt };
		} catch (error) {
			log("warn", "session kept under its id: the move failed", {
				session: sessionTag(meta.idHash),
				name: error instanceof Error ? error.name : "unknown",
			});
			return undefined;
		} finally {
			this.moving = undefined;
			moved();
		}
	}

	/** Takes over a session moved here from its old id (moveTo): its record, each connection's tokens sealed for this id. */
	async adopt(meta: SessionMeta, tokens: Record<string, SessionTokens>, logoutHint: string | undefined): Promise<void> {
		const keys = this.config().sessionKeys;
		const sealed: Record<string, unknown> = {};
		for (const [id, opened] of Object.entries(tokens))
			sealed[tokensKey(id)] = await sealFor(keys, meta.idHash, id, opened);
		this.meta = meta;
		this.loaded = true;
		this.tokens = new Map(Object.entries(tokens));
		await writeSession(this.ctx.storage, meta, sealed);
		if (logoutHint) {
			await keepLogoutHint(this.ctx.storage, keys, meta.idHash, {
				accessToken: "",
				refreshToken: undefined,
				idToken: logoutHint,
			});
		}
	}

	/** The connection `id` as it is now and its tokens, when it still holds a grant. */
	private async replacedGrant(meta: SessionMeta, id: string) {
		const connection = this.connection(meta, id);
		if (connection?.status !== "connected") return undefined;
		const tokens = await this.openedTokens(meta, id).catch(() => undefined);
		return tokens && { connection, tokens };
	}

	/** A sign-in's grant at the server it names (the environment's athena when it names none). */
	private grant(input: ConnectRecord): NewGrant {
		const server = this.serverOf(input.serverId);
		return { ...input, fhirBaseUrl: server.fhirBaseUrl, serverName: server.name };
	}

	/**
	 * The configured server a connection belongs to. A server taken out of
	 * SMART_SERVERS keeps its stored endpoints and client id for refresh and
	 * revocation (the proxy no longer reads it), and its own budget's name.
	 */
	private serverOf(serverId: string | undefined, connection?: ConnectionRecord): SmartServer {
		const config = this.config();
		const server = serverById(config, serverId);
		if (server) return server;
		return {
			id: serverId ?? ATHENA_SERVER_ID,
			name: connection?.serverName ?? serverId ?? "",
			fhirBaseUrl: connection?.fhirBaseUrl ?? "",
			clientId: connection?.server?.clientId ?? config.clientId,
			profile: "smart",
			tokenRequestsPerMinute: config.tokenRequestsPerMinute,
		};
	}

	/** The OAuth client a connection's grant was issued to: its server's client id, as stored at sign-in when kept. */
	private async clientFor(connection: ConnectionRecord, timeoutMs: number) {
		const server = this.serverOf(connection.serverId, connection);
		const clientId = connection.server?.clientId ?? server.clientId;
		const client = await serverClient(this.config(), { id: server.id, clientId }, timeoutMs);
		return { ...client, fetch: this.network };
	}

	/** The session as `GET /session` shows it: the first connection's fields at the top, every connection listed. */
	async view(): Promise<SessionView> {
		const connections = (await this.load(Date.now()))?.connections.map(connectionView) ?? [];
		const first = connections[0];
		if (!first) return { status: "signed_out" };
		const { patient, practice } = first;
		if (first.status === "revoked") return { status: "revoked", patient, practice, connections };
		const { scopes, reads, accessExpiresAt } = first;
		return { status: "connected", patient, practice, scopes, reads, accessExpiresAt, connections };
	}

	async accessToken(connectionId?: string): Promise<AccessResult> {
		const now = Date.now();
		const meta = await this.load(now);
		if (!meta) return { status: "signed_out" };
		const connection = this.connection(meta, connectionId);
		if (!connection) return { status: "unknown_connection" };
		if (connection.status === "revoked") return { status: "revoked" };
		const tokens = await this.openedTokens(meta, connection.id);
		if (!tokens) return this.lose(connection);
		if (!refreshDue(connection, now)) return this.connected(connection, tokens);
		const refreshed = await this.refreshOnce(connection.id);
		// The server busy but the current token still has a little life: use it rather than fail.
		if (refreshed.status === "unavailable" && connection.accessExpiresAt - Date.now() > 5000) {
			return this.connected(connection, tokens);
		}
		return refreshed;
	}

	async refreshAfterUnauthorized(staleAccessToken: string, connectionId?: string): Promise<AccessResult> {
		const meta = await this.load(Date.now());
		if (!meta) return { status: "signed_out" };
		const connection = this.connection(meta, connectionId);
		if (!connection) return { status: "unknown_connection" };
		if (connection.status === "revoked") return { status: "revoked" };
		const tokens = await this.openedTokens(meta, connection.id);
		if (!tokens) return { status: "signed_out" };
		// Someone already replaced the token the server refused: use theirs.
		if (tokens.accessToken !== staleAccessToken && !this.refreshing.has(connection.id)) {
			return this.connected(connection, tokens);
		}
		return this.refreshOnce(connection.id);
	}

	/**
	 * A grant that cannot be used again without a new sign-in (no refresh
	 * token, tokens that no longer open): the session's only connection ends
	 * the session, as before connections; one of several reads as revoked.
	 */
	private async lose(connection: ConnectionRecord): Promise<AccessResult> {
		const meta = this.meta;
		if (!meta || meta.connections.length <= 1) {
			await this.end();
			return { status: "signed_out" };
		}
		await this.revokeHere(connection.id);
		return { status: "revoked" };
	}

	/** Marks connection `id` revoked and forgets its tokens; the session's other connections are untouched. */
	private async revokeHere(id: string): Promise<void> {
		this.tokens.delete(id);
		await deleteTokens(this.ctx.storage, id);
		await this.writeMeta((m) => patchConnection(m, id, () => ({ status: "revoked" })));
	}

	private refreshOnce(id: string): Promise<AccessResult> {
		let refreshing = this.refreshing.get(id);
		if (!refreshing) {
			refreshing = this.refresh(id).finally(() => this.refreshing.delete(id));
			this.refreshing.set(id, refreshing);
		}
		return this.waitAtMost(refreshing);
	}

	/**
	 * A caller waits for a refresh at most the token timeout, then hears "try
	 * again". The refresh itself is not abandoned: the server may already have
	 * rotated the refresh token, so its late answer must still be stored, or
	 * the next refresh presents a spent token and the connection is lost.
	 */
	private waitAtMost(refresh: Promise<AccessResult>): Promise<AccessResult> {
		let timer: ReturnType<typeof setTimeout> | undefined;
		const late = new Promise<AccessResult>((resolve) => {
			timer = setTimeout(
				() =>
					resolve({
						status: "unavailable",
						code: "athena_unavailable",
						message: "athenahealth did not answer in time. Please try again in a moment.",
						retryAfterSeconds: 30,
					}),
				this.config().tokenTimeoutMs,
			);
		});
		return Promise.race([refresh, late]).finally(() => clearTimeout(timer));
	}

	/**
	 * Refreshes connection `id`. Everything written afterwards starts from the
	 * session as it is then (other connections may have been refreshed while
	 * this one awaited its server), and writes only this connection.
	 */
	private async refresh(id: string): Promise<AccessResult> {
		const connection = this.connection(this.meta, id);
		const tokens = this.tokens.get(id);
		if (!this.meta || !connection || !tokens) return { status: "signed_out" };
		// No offline_access: nothing to refresh with; the patient signs in again.
		if (!tokens.refreshToken) return this.lose(connection);
		const config = this.config();
		const session = sessionTag(this.meta.idHash);
		// Callers stop waiting after the token timeout (waitAtMost); the request itself gets longer.
		const client = await this.clientFor(connection, REFRESH_NETWORK_TIMEOUT_MS);
		const owner = this.serverOf(connection.serverId, connection);
		const refreshToken = tokens.refreshToken;
		// Ended, or the patient connected this record again meanwhile: this answer is no longer wanted.
		const superseded = () => this.ended || this.tokens.get(id) !== tokens;
		// Settled before the token call, so a late refusal hands back to the server that issued.
		let server: SessionServer | undefined;
		try {
			server = await this.server(connection, config);
			const settled = server;
			// The budget of the server that issued this grant: one server's refreshes never spend another's.
			const fresh = await budgetedTokenCall(
				tokenBudget(this.env, owner.id),
				{
					purpose: "refresh",
					limit: owner.tokenRequestsPerMinute,
					session,
					sessionLimit: sessionRefreshLimit(config.sessionRefreshesPerMinute, this.meta.connections.length),
				},
				() => refreshTokens(client, settled.tokenUrl, { refreshToken, scope: connection.scopes }),
			);
			if (superseded()) {
				// Keep nothing, and hand back what the server just issued.
				await revokeGrant(client, server.revokeUrl, fresh);
				log("info", "refresh finished after sign-out or reconnect; grant handed back", { session });
				return this.ended ? { status: "signed_out" } : this.current(id);
			}
			const renewed = {
				accessToken: fresh.accessToken,
				refreshToken: fresh.refreshToken ?? tokens.refreshToken,
				idToken: fresh.idToken ?? tokens.idToken,
			};
			const issuedAt = Date.now();
			await this.storeTokens(id, renewed, (m) =>
				patchConnection(m, id, (c) => ({
					// The server may narrow scopes on refresh; keep what it granted.
					scopes: fresh.scope.length > 0 ? fresh.scope : c.scopes,
					accessExpiresAt: fresh.expiresAt,
					accessIssuedAt: issuedAt,
				})),
			);
			log("info", "session refreshed", { session });
			return this.current(id);
		} catch (error) {
			if (!(error instanceof AppError)) throw error;
			if (superseded()) {
				if (error instanceof UnusableTokenResponse && error.refreshToken) {
					await revokeToken(client, server?.revokeUrl, { token: error.refreshToken, hint: "refresh_token" });
				}
				return this.ended ? { status: "signed_out" } : this.current(id);
			}
			return this.refreshFailed(id, tokens, error, session);
		}
	}

	/** A refresh the server refused or could not answer, for a connection still wanted. */
	private async refreshFailed(
		id: string,
		tokens: SessionTokens,
		error: AppError,
		session: string,
	): Promise<AccessResult> {
		const meta = this.meta;
		if (!meta || !this.connection(meta, id)) return { status: "signed_out" };
		if (error.code === "invalid_grant") {
			// Revoked by the patient or the practice: a normal state, not an error, and this connection's alone.
			await keepLogoutHint(this.ctx.storage, this.config().sessionKeys, meta.idHash, tokens);
			await this.revokeHere(id);
			log("info", "connection revoked by its server", { session });
			return { status: "revoked" };
		}
		if (error instanceof UnusableTokenResponse && error.refreshToken) {
			// The server rotated the refresh token in an answer we cannot use: the old one is spent, keep the new one.
			await this.storeTokens(id, { ...tokens, refreshToken: error.refreshToken });
		}
		if (error.code !== "token_budget_spent" && error.code !== "refresh_limited") {
			log("warn", "refresh failed", { session, code: error.code, detail: error.detail });
		}
		return {
			status: "unavailable",
			code: error.code,
			message: error.message,
			...(error.retryAfterSeconds ? { retryAfterSeconds: error.retryAfterSeconds } : {}),
		};
	}

	/** The endpoints that issued this grant: kept since sign-in, else (older records) config and discovery. */
	private async server(connection: ConnectionRecord, config: Config): Promise<SessionServer> {
		return connection.server ?? (await authorizationServer(config, (input, init) => this.network(input, init)));
	}

	/** The connections still holding a grant, with their tokens (one that no longer opens is skipped). */
	private async liveGrants(meta: SessionMeta): Promise<Array<{ connection: ConnectionRecord; tokens: SessionTokens }>> {
		const grants = await Promise.all(
			meta.connections
				.filter((c) => c.status === "connected")
				.map(async (connection) => ({
					connection,
					tokens: await this.openedTokens(meta, connection.id).catch(() => undefined),
				})),
		);
		return grants.flatMap((g) => (g.tokens ? [{ connection: g.connection, tokens: g.tokens }] : []));
	}

	/** Hands one grant back to its server; best effort: a failure there still signs out here. */
	private async revokeAtServer(
		connection: ConnectionRecord,
		tokens: SessionTokens,
	): Promise<{ revoked: boolean; offered: boolean }> {
		try {
			const config = this.config();
			const server = await this.server(connection, config);
			const client = await this.clientFor(connection, 5000);
			return { revoked: await revokeGrant(client, server.revokeUrl, tokens), offered: server.revokeUrl !== undefined };
		} catch (error) {
			log("warn", "revoke at athena failed", { code: error instanceof AppError ? error.code : "error" });
			return { revoked: false, offered: true };
		}
	}

	/** Revokes every connection at its server (best effort), then forgets everything. */
	async logout(): Promise<LogoutResult> {
		const meta = await this.load(Date.now());
		const grants = meta ? await this.liveGrants(meta) : [];
		// athena's end-session endpoint is given athena's own id_token only, never another server's.
		const idTokenHint =
			grants.find((g) => g.connection.serverId === undefined && g.tokens.idToken)?.tokens.idToken ??
			(meta
				? await readLogoutHint(this.ctx.storage, this.config().sessionKeys, meta.idHash).catch(() => undefined)
				: undefined);
		const outcomes = await Promise.all(grants.map((g) => this.revokeAtServer(g.connection, g.tokens)));
		await this.end();
		return {
			revokedAtAthena: outcomes.length > 0 && outcomes.every((o) => o.revoked),
			revocationOffered: outcomes.every((o) => o.offered),
			idTokenHint,
		};
	}

	override async alarm(): Promise<void> {
		const meta = await readLifetime(this.ctx.storage);
		if (!meta) return;
		const now = Date.now();
		const idleEnd = meta.lastSeenAt + SESSION_IDLE_MS;
		if (now >= meta.absoluteExpiresAt || now >= idleEnd) {
			// The grants end with the session: handed back to their servers (best effort, as at sign-out),
			// since the refresh tokens that could use them are about to be deleted.
			if (!this.loaded) await this.readStored();
			const grants = this.meta ? await this.liveGrants(this.meta) : [];
			await Promise.all(grants.map((g) => this.revokeAtServer(g.connection, g.tokens)));
			await this.end();
			return;
		}
		await this.ctx.storage.setAlarm(Math.min(meta.absoluteExpiresAt, idleEnd));
	}
}
