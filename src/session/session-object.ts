import { DurableObject } from "cloudflare:workers";
import { type Config, settings } from "../config";
import { tokenBudget } from "../durable/token-budget";
import { AppError } from "../errors";
import { log } from "../log";
import { budgetedTokenCall } from "../oauth/budgeted-token-call";
import { authorizationServer } from "../oauth/discovery";
import { readableTypes } from "../oauth/scopes";
import { refreshTokens, revokeGrant, revokeToken, type TokenSet, UnusableTokenResponse } from "../oauth/token-client";
import { athenaClient } from "../signer";
import {
	type AccessResult,
	type LogoutResult,
	REFRESH_MARGIN_MS,
	type SessionApi,
	type SessionView,
	sessionTag,
} from "./contract";
import { openTokens, type SealedTokens, type SessionTokens, sealTokens } from "./token-vault";

/** A session ends after this long without use... */
export const SESSION_IDLE_MS = 24 * 60 * 60_000;
/** ...and after this long in any case (well inside athena's >= 3-month refresh tokens). */
export const SESSION_ABSOLUTE_MS = 30 * 24 * 60 * 60_000;
/** How long a refresh request may take before it is abandoned (callers stop waiting much sooner). */
const REFRESH_NETWORK_TIMEOUT_MS = 60_000;
// Writing lastSeenAt on every request would cost a storage write per FHIR call.
const TOUCH_GRANULARITY_MS = 60_000;

interface SessionMeta {
	idHash: string;
	status: "connected" | "revoked";
	patient: string;
	/** athena: the practice the patient id names; other servers: none. */
	practice?: string | undefined;
	scopes: string[];
	fhirBaseUrl: string;
	/** Where this grant is refreshed and revoked, settled at sign-in (absent on records from before that). */
	server?: SessionServer;
	createdAt: number;
	lastSeenAt: number;
	absoluteExpiresAt: number;
	accessExpiresAt: number;
	/** When athena issued the current access token (absent on records written before it was kept). */
	accessIssuedAt?: number;
}

/**
 * Whether the access token is close enough to its end to refresh: within a
 * minute of it, or within the last half of its life when athena issues tokens
 * shorter than two minutes (else every use of a fresh token would refresh it).
 */
function refreshDue(meta: SessionMeta, now: number): boolean {
	const lifetime =
		meta.accessIssuedAt === undefined ? Number.POSITIVE_INFINITY : meta.accessExpiresAt - meta.accessIssuedAt;
	return meta.accessExpiresAt - now <= Math.min(REFRESH_MARGIN_MS, lifetime / 2);
}

/** The token and revocation endpoints of the server that issued a session's grant. */
export interface SessionServer {
	tokenUrl: string;
	/** undefined: the server offers no revocation. */
	revokeUrl: string | undefined;
}

export interface BeginSession {
	idHash: string;
	tokens: TokenSet;
	patient: string;
	practice: string | undefined;
	server: SessionServer;
	now?: number;
}

const META = "meta";
const TOKENS = "tokens";
/** A revoked session's id_token, sealed like the tokens: signing out still ends the athena browser session. */
const LOGOUT_HINT = "logoutHint";

/**
 * One patient's connection to athena, named by the SHA-256 of its session id.
 * Holds the tokens sealed with AES-256-GCM; hands out access tokens, refreshing
 * them once for all concurrent callers.
 */
export class Session extends DurableObject<Env> implements SessionApi {
	private meta: SessionMeta | undefined;
	private tokens: SessionTokens | undefined;
	private loaded = false;
	/** The refresh in flight: a Durable Object lets other calls in while it awaits athena. */
	private refreshing: Promise<AccessResult> | undefined;
	/**
	 * Set for good once the session ends (sign-out, expiry). A refresh that was
	 * awaiting athena when it ended must not write the session back.
	 */
	private ended = false;
	/** athena's OAuth endpoints are reached through this; tests replace it to hold an answer back. */
	private network: typeof fetch = (input, init) => fetch(input, init);

	private config(): Config {
		return settings(this.env);
	}

	private async load(now: number): Promise<SessionMeta | undefined> {
		if (!this.loaded) {
			this.meta = await this.ctx.storage.get<SessionMeta>(META);
			this.loaded = true;
		}
		const meta = this.meta;
		if (!meta) return undefined;
		if (now >= meta.absoluteExpiresAt || now - meta.lastSeenAt >= SESSION_IDLE_MS) {
			await this.end();
			return undefined;
		}
		if (now - meta.lastSeenAt >= TOUCH_GRANULARITY_MS) {
			meta.lastSeenAt = now;
			await this.writeMeta(meta);
		}
		return meta;
	}

	private async sealedTokens(meta: SessionMeta): Promise<SessionTokens | undefined> {
		if (!this.tokens) {
			const sealed = await this.ctx.storage.get<SealedTokens>(TOKENS);
			this.tokens = sealed ? await openTokens(sealed, this.config().sessionKeys, meta.idHash) : undefined;
		}
		return this.tokens;
	}

	private async storeTokens(meta: SessionMeta, tokens: SessionTokens): Promise<void> {
		const key = this.config().sessionKeys[0];
		if (!key)
			throw new AppError({
				code: "config_invalid",
				status: 503,
				message: "This service is not configured correctly.",
				detail: "no session key",
			});
		// Stored before anyone is handed the new access token: a crash after a
		// refresh must not lose the rotated refresh token.
		await this.writeMeta(meta, { [TOKENS]: await sealTokens(tokens, key, meta.idHash) });
		this.tokens = tokens;
	}

	/**
	 * Every write of the session record goes through here, and guarantees an
	 * alarm: a record without one would never be deleted.
	 */
	private async writeMeta(meta: SessionMeta, extra: Record<string, unknown> = {}): Promise<void> {
		await this.ctx.storage.put({ ...extra, [META]: meta });
		this.meta = meta;
		if ((await this.ctx.storage.getAlarm()) === null) {
			await this.ctx.storage.setAlarm(Math.min(meta.absoluteExpiresAt, meta.lastSeenAt + SESSION_IDLE_MS));
		}
	}

	private async end(): Promise<void> {
		this.ended = true;
		await this.ctx.storage.deleteAll();
		await this.ctx.storage.deleteAlarm();
		this.meta = undefined;
		this.tokens = undefined;
	}

	private connected(meta: SessionMeta, tokens: SessionTokens): AccessResult {
		return {
			status: "connected",
			accessToken: tokens.accessToken,
			expiresAt: meta.accessExpiresAt,
			patient: meta.patient,
			practice: meta.practice,
			fhirBaseUrl: meta.fhirBaseUrl,
		};
	}

	/** Starts the session after a successful code exchange. */
	async begin(input: BeginSession): Promise<void> {
		const now = input.now ?? Date.now();
		const config = this.config();
		// Without a refresh token the session cannot outlive its access token.
		const absoluteExpiresAt = input.tokens.refreshToken
			? now + SESSION_ABSOLUTE_MS
			: Math.min(now + SESSION_ABSOLUTE_MS, input.tokens.expiresAt);
		const meta: SessionMeta = {
			idHash: input.idHash,
			status: "connected",
			patient: input.patient,
			practice: input.practice,
			server: input.server,
			scopes: input.tokens.scope,
			fhirBaseUrl: config.athena.fhirBaseUrl,
			createdAt: now,
			lastSeenAt: now,
			absoluteExpiresAt,
			accessExpiresAt: input.tokens.expiresAt,
			accessIssuedAt: now,
		};
		this.loaded = true;
		await this.storeTokens(meta, {
			accessToken: input.tokens.accessToken,
			refreshToken: input.tokens.refreshToken,
			idToken: input.tokens.idToken,
		});
	}

	async view(): Promise<SessionView> {
		const meta = await this.load(Date.now());
		if (!meta) return { status: "signed_out" };
		if (meta.status === "revoked") return { status: "revoked", patient: meta.patient, practice: meta.practice };
		return {
			status: "connected",
			patient: meta.patient,
			practice: meta.practice,
			scopes: meta.scopes,
			reads: readableTypes(meta.scopes),
			accessExpiresAt: meta.accessExpiresAt,
		};
	}

	async accessToken(): Promise<AccessResult> {
		const now = Date.now();
		const meta = await this.load(now);
		if (!meta) return { status: "signed_out" };
		if (meta.status === "revoked") return { status: "revoked" };
		const tokens = await this.sealedTokens(meta);
		if (!tokens) {
			await this.end();
			return { status: "signed_out" };
		}
		if (!refreshDue(meta, now)) return this.connected(meta, tokens);
		const refreshed = await this.refreshOnce();
		// athena busy but the current token still has a little life: use it rather than fail.
		if (refreshed.status === "unavailable" && meta.accessExpiresAt - Date.now() > 5000) {
			return this.connected(meta, tokens);
		}
		return refreshed;
	}

	async refreshAfterUnauthorized(staleAccessToken: string): Promise<AccessResult> {
		const meta = await this.load(Date.now());
		if (!meta) return { status: "signed_out" };
		if (meta.status === "revoked") return { status: "revoked" };
		const tokens = await this.sealedTokens(meta);
		if (!tokens) return { status: "signed_out" };
		// Someone already replaced the token athena refused: use theirs.
		if (tokens.accessToken !== staleAccessToken && !this.refreshing) return this.connected(meta, tokens);
		return this.refreshOnce();
	}

	private refreshOnce(): Promise<AccessResult> {
		this.refreshing ??= this.refresh().finally(() => {
			this.refreshing = undefined;
		});
		return this.waitAtMost(this.refreshing);
	}

	/**
	 * A caller waits for a refresh at most the token timeout, then hears "try
	 * again". The refresh itself is not abandoned: athena may already have
	 * rotated the refresh token, so its late answer must still be stored, or
	 * the next refresh presents a spent token and the session is lost.
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

	private async refresh(): Promise<AccessResult> {
		const meta = this.meta;
		const tokens = this.tokens;
		if (!meta || !tokens) return { status: "signed_out" };
		if (!tokens.refreshToken) {
			// No offline_access: nothing to refresh with; the patient signs in again.
			await this.end();
			return { status: "signed_out" };
		}
		const config = this.config();
		const session = sessionTag(meta.idHash);
		// Callers stop waiting after the token timeout (waitAtMost); the request itself gets longer.
		const client = {
			...(await athenaClient(config, REFRESH_NETWORK_TIMEOUT_MS)),
			fetch: this.network,
		};
		const refreshToken = tokens.refreshToken;
		// Settled before the token call, so a late refusal hands back to the server that issued.
		let server: SessionServer | undefined;
		try {
			server = await this.server(meta, config);
			const settled = server;
			const fresh = await budgetedTokenCall(
				tokenBudget(this.env),
				{
					purpose: "refresh",
					limit: config.tokenRequestsPerMinute,
					session,
					sessionLimit: config.sessionRefreshesPerMinute,
				},
				() => refreshTokens(client, settled.tokenUrl, { refreshToken, scope: meta.scopes }),
			);
			if (this.ended) {
				// Signed out while athena was answering: keep nothing, and hand back what athena just issued.
				await revokeGrant(client, server.revokeUrl, fresh);
				log("info", "refresh finished after sign-out; grant handed back", { session });
				return { status: "signed_out" };
			}
			const next: SessionMeta = {
				...meta,
				// athena may narrow scopes on refresh; keep what it granted.
				scopes: fresh.scope.length > 0 ? fresh.scope : meta.scopes,
				accessExpiresAt: fresh.expiresAt,
				accessIssuedAt: Date.now(),
			};
			await this.storeTokens(next, {
				accessToken: fresh.accessToken,
				refreshToken: fresh.refreshToken ?? tokens.refreshToken,
				idToken: fresh.idToken ?? tokens.idToken,
			});
			log("info", "session refreshed", { session });
			return this.connected(next, this.tokens as SessionTokens);
		} catch (error) {
			if (!(error instanceof AppError)) throw error;
			if (this.ended) {
				if (error instanceof UnusableTokenResponse && error.refreshToken) {
					await revokeToken(client, server?.revokeUrl, {
						token: error.refreshToken,
						hint: "refresh_token",
					});
				}
				return { status: "signed_out" };
			}
			if (error.code === "invalid_grant") {
				// Revoked by the patient or the practice: a normal state, not an error.
				await this.keepLogoutHint(meta, tokens);
				await this.ctx.storage.delete(TOKENS);
				await this.writeMeta({ ...meta, status: "revoked" });
				this.tokens = undefined;
				log("info", "session revoked by athena", { session });
				return { status: "revoked" };
			}
			if (error instanceof UnusableTokenResponse && error.refreshToken) {
				// athena rotated the refresh token in an answer we cannot use: the old one is spent, keep the new one.
				await this.storeTokens(meta, { ...tokens, refreshToken: error.refreshToken });
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
	}

	/** Revokes at athena (best effort: a failure there still signs out here), then forgets everything. */
	/** The endpoints that issued this grant: kept since sign-in, else (older records) config and discovery. */
	private async server(meta: SessionMeta, config: Config): Promise<SessionServer> {
		return meta.server ?? (await authorizationServer(config, (input, init) => this.network(input, init)));
	}

	/** Keeps only the id_token of a grant athena ended, for athena's end-session endpoint at sign-out. */
	private async keepLogoutHint(meta: SessionMeta, tokens: SessionTokens): Promise<void> {
		const key = this.config().sessionKeys[0];
		if (!tokens.idToken || !key) return;
		const hint = await sealTokens(
			{ accessToken: "", refreshToken: undefined, idToken: tokens.idToken },
			key,
			`${meta.idHash}:${LOGOUT_HINT}`,
		);
		await this.ctx.storage.put(LOGOUT_HINT, hint);
	}

	private async logoutHint(meta: SessionMeta): Promise<string | undefined> {
		const sealed = await this.ctx.storage.get<SealedTokens>(LOGOUT_HINT);
		if (!sealed) return undefined;
		return (await openTokens(sealed, this.config().sessionKeys, `${meta.idHash}:${LOGOUT_HINT}`))?.idToken;
	}

	async logout(): Promise<LogoutResult> {
		const meta = await this.load(Date.now());
		const tokens = meta ? await this.sealedTokens(meta).catch(() => undefined) : undefined;
		const idTokenHint = tokens?.idToken ?? (meta ? await this.logoutHint(meta).catch(() => undefined) : undefined);
		let revokedAtAthena = false;
		let revocationOffered = true;
		if (tokens && meta) {
			try {
				const config = this.config();
				const server = await this.server(meta, config);
				revocationOffered = server.revokeUrl !== undefined;
				const client = { ...(await athenaClient(config, 5000)), fetch: this.network };
				revokedAtAthena = await revokeGrant(client, server.revokeUrl, tokens);
			} catch (error) {
				log("warn", "revoke at athena failed", { code: error instanceof AppError ? error.code : "error" });
			}
		}
		await this.end();
		return { revokedAtAthena, revocationOffered, idTokenHint };
	}

	override async alarm(): Promise<void> {
		const meta = await this.ctx.storage.get<SessionMeta>(META);
		if (!meta) return;
		const now = Date.now();
		const idleEnd = meta.lastSeenAt + SESSION_IDLE_MS;
		if (now >= meta.absoluteExpiresAt || now >= idleEnd) {
			// Expired sessions are forgotten; athena's grant stays for the patient's next sign-in.
			await this.end();
			return;
		}
		await this.ctx.storage.setAlarm(Math.min(meta.absoluteExpiresAt, idleEnd));
	}
}
