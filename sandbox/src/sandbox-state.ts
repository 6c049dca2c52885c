import { DurableObject } from "cloudflare:workers";
import { calculateJwkThumbprint, exportJWK, generateKeyPair } from "jose";
import type { ConfigOverrides } from "./config";
import type { SandboxEnv } from "./env";
import type {
	AccessTokenRecord,
	BrowserSession,
	ClockReading,
	CodeRecord,
	Fault,
	FaultTarget,
	Grant,
	IssuedTokens,
	JwksCacheEntry,
	PendingAuthorization,
	Received,
	ReceivedAssertion,
	ReceivedEntry,
	ReceivedLogout,
	ReceivedTokenCall,
	RefreshResult,
	RefreshTokenRecord,
	SigningKeyPair,
} from "./records";
import { decideRefresh, usableRefresh } from "./refresh-chain";

/*
 * Every piece of sandbox state lives in this one SQLite-backed Durable Object
 * (one global instance, `idFromName("sandbox")`), so single-use codes, jti
 * replay, rotation of refresh tokens and the rate limit window are strongly
 * consistent. Each public method is one atomic step: no method awaits the
 * network, so no other request can interleave inside it. What it stores is
 * typed in records.ts; the refresh rules are in refresh-chain.ts. Storage keys
 * and lifetimes are listed in ../README.md ("Storage").
 *
 * The object is also the sandbox's clock: every time it stores or checks
 * (expiries, the rate limit's minute, a grant's creation, the received log)
 * comes from `now()`, the real time or the instant frozen through
 * `/_sandbox/clock`, so tests can move time without waiting for it.
 */

const RECEIVED_CAP = 500;
const SWEEP_INTERVAL_MS = 5 * 60_000;

type ReceivedLog = "assertion" | "token" | "logout";

const receivedPrefix = (log: ReceivedLog) => `received:${log}:`;
/** Zero-padded so storage's key order is arrival order. */
const receivedKey = (log: ReceivedLog, seq: number) => `${receivedPrefix(log)}${String(seq).padStart(12, "0")}`;

function randomToken(bytes = 32): string {
	const raw = crypto.getRandomValues(new Uint8Array(bytes));
	let text = "";
	for (const b of raw) text += String.fromCharCode(b);
	return btoa(text).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

/** Tokens and codes are stored only as SHA-256 hashes, so a storage dump gives nothing usable. */
async function hashSecret(secret: string): Promise<string> {
	const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret));
	return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

const CLOCK_KEY = "clock";

export class SandboxState extends DurableObject<SandboxEnv> {
	private signingKey: SigningKeyPair | undefined;
	/** The frozen instant (epoch ms), kept in memory and under CLOCK_KEY; undefined = real time. */
	private frozenAt: number | undefined;

	constructor(ctx: DurableObjectState, env: SandboxEnv) {
		super(ctx, env);
		// Generating the key awaits WebCrypto, which would let requests interleave;
		// blocking here makes "generate once, then always the same key" hold.
		ctx.blockConcurrencyWhile(async () => {
			this.signingKey = await this.loadOrCreateSigningKey();
			this.frozenAt = (await ctx.storage.get<{ frozenAt: number }>(CLOCK_KEY))?.frozenAt;
		});
	}

	// --- clock ---------------------------------------------------------------

	/** The sandbox's time (epoch ms): the frozen instant, or the real time. */
	now(): number {
		return this.frozenAt ?? Date.now();
	}

	readClock(): ClockReading {
		return { now: this.now(), frozen: this.frozenAt !== undefined };
	}

	async freezeClock(at: number): Promise<ClockReading> {
		this.frozenAt = at;
		await this.ctx.storage.put(CLOCK_KEY, { frozenAt: at });
		return this.readClock();
	}

	/** Moves a frozen clock forward; undefined when the clock is not frozen. */
	async advanceClock(ms: number): Promise<ClockReading | undefined> {
		if (this.frozenAt === undefined) return undefined;
		return this.freezeClock(this.frozenAt + ms);
	}

	async unfreezeClock(): Promise<ClockReading> {
		this.frozenAt = undefined;
		await this.ctx.storage.delete(CLOCK_KEY);
		return this.readClock();
	}

	private async loadOrCreateSigningKey(): Promise<SigningKeyPair> {
		const stored = await this.ctx.storage.get<SigningKeyPair>("signing-key");
		if (stored) return stored;
		const { privateKey, publicKey } = await generateKeyPair("RS256", {
			modulusLength: 2048,
			extractable: true,
		});
		const publicJwk = await exportJWK(publicKey);
		const kid = await calculateJwkThumbprint(publicJwk, "sha256");
		const pair: SigningKeyPair = {
			privateJwk: {
				...(await exportJWK(privateKey)),
				kid,
				alg: "RS256",
				use: "sig",
			},
			publicJwk: { ...publicJwk, kid, alg: "RS256", use: "sig" },
		};
		await this.ctx.storage.put("signing-key", pair);
		return pair;
	}

	/** The sandbox's own id_token key, stable across requests and resets. */
	async getSigningKey(): Promise<SigningKeyPair> {
		if (!this.signingKey) this.signingKey = await this.loadOrCreateSigningKey();
		return this.signingKey;
	}

	// Alarms run on the real time; what they sweep is judged by the sandbox's clock.
	private async ensureSweep(): Promise<void> {
		if ((await this.ctx.storage.getAlarm()) === null) {
			await this.ctx.storage.setAlarm(Date.now() + SWEEP_INTERVAL_MS);
		}
	}

	/** Alarms arrive at least once; deleting what has expired is idempotent. */
	override async alarm(): Promise<void> {
		const now = this.now();
		let remaining = 0;
		for (const prefix of ["pending:", "code:", "jti:", "access:", "jwks:", "ratelimit:", "session:"]) {
			const entries = await this.ctx.storage.list<{ expiresAt?: number }>({
				prefix,
			});
			const expired: string[] = [];
			for (const [key, value] of entries) {
				if (typeof value?.expiresAt === "number" && value.expiresAt <= now) expired.push(key);
				else remaining++;
			}
			for (let i = 0; i < expired.length; i += 128) {
				await this.ctx.storage.delete(expired.slice(i, i + 128));
			}
		}
		// Live refresh tokens have no expiry; only rotated ones kept for a grace period are swept.
		const refresh = await this.ctx.storage.list<RefreshTokenRecord>({ prefix: "refresh:" });
		const spent: string[] = [];
		for (const [key, value] of refresh) {
			if (typeof value?.expiresAt !== "number") continue;
			if (value.expiresAt <= now) spent.push(key);
			else remaining++;
		}
		for (let i = 0; i < spent.length; i += 128) await this.ctx.storage.delete(spent.slice(i, i + 128));
		if (remaining > 0) await this.ctx.storage.setAlarm(Date.now() + SWEEP_INTERVAL_MS);
	}

	private async getLive<T extends { expiresAt: number }>(key: string): Promise<T | undefined> {
		const value = await this.ctx.storage.get<T>(key);
		if (!value) return undefined;
		if (value.expiresAt <= this.now()) {
			await this.ctx.storage.delete(key);
			return undefined;
		}
		return value;
	}

	// --- authorize -----------------------------------------------------------

	async createPending(pending: Omit<PendingAuthorization, "expiresAt">, ttlMs: number): Promise<string> {
		const id = randomToken(24);
		await this.ctx.storage.put(`pending:${id}`, { ...pending, expiresAt: this.now() + ttlMs });
		await this.ensureSweep();
		return id;
	}

	async getPending(id: string): Promise<PendingAuthorization | undefined> {
		return this.getLive<PendingAuthorization>(`pending:${id}`);
	}

	/** The user signed in: the record is picked next (a new sign-in forgets an earlier pick). */
	async signInPending(id: string, login: string): Promise<PendingAuthorization | undefined> {
		const pending = await this.getLive<PendingAuthorization>(`pending:${id}`);
		if (!pending) return undefined;
		const { patient: _earlier, ...rest } = pending;
		const next = { ...rest, login };
		await this.ctx.storage.put(`pending:${id}`, next);
		return next;
	}

	/** The record picked on "Select a health record"; only after sign-in. */
	async selectRecord(id: string, patient: string): Promise<PendingAuthorization | undefined> {
		const pending = await this.getLive<PendingAuthorization>(`pending:${id}`);
		if (!pending?.login) return undefined;
		const next = { ...pending, patient };
		await this.ctx.storage.put(`pending:${id}`, next);
		return next;
	}

	// --- athena's browser session --------------------------------------------

	/** Starts a browser session for the login; returns the cookie value (stored only hashed). */
	async startBrowserSession(login: string, ttlMs: number): Promise<string> {
		const cookie = randomToken(32);
		const now = this.now();
		const session: BrowserSession = { login, createdAt: now, expiresAt: now + ttlMs };
		await this.ctx.storage.put(`session:${await hashSecret(cookie)}`, session);
		await this.ensureSweep();
		return cookie;
	}

	async browserSession(cookie: string): Promise<BrowserSession | undefined> {
		return this.getLive<BrowserSession>(`session:${await hashSecret(cookie)}`);
	}

	/** Ends the session; false when there was no live one. */
	async endBrowserSession(cookie: string): Promise<boolean> {
		const key = `session:${await hashSecret(cookie)}`;
		const live = await this.getLive<BrowserSession>(key);
		await this.ctx.storage.delete(key);
		return live !== undefined;
	}

	/** Consumes the pending request (consent is answered once) and, on allow, mints a code. */
	async decidePending(
		id: string,
		allow: boolean,
		codeTtlMs: number,
	): Promise<{ pending: PendingAuthorization; code?: string } | undefined> {
		const pending = await this.getLive<PendingAuthorization>(`pending:${id}`);
		if (!pending?.patient || !pending.login) return undefined;
		await this.ctx.storage.delete(`pending:${id}`);
		if (!allow) return { pending };
		const code = randomToken(32);
		const record: CodeRecord = {
			clientId: pending.clientId,
			redirectUri: pending.redirectUri,
			scope: pending.scope,
			codeChallenge: pending.codeChallenge,
			patient: pending.patient,
			expiresAt: this.now() + codeTtlMs,
			...(pending.nonce !== undefined ? { nonce: pending.nonce } : {}),
		};
		await this.ctx.storage.put(`code:${await hashSecret(code)}`, record);
		await this.ensureSweep();
		return { pending, code };
	}

	// --- token ---------------------------------------------------------------

	/**
	 * Marks the code used and returns it. A code presented a second time gets
	 * `reused` and the grant issued from it is revoked (RFC 6749 §4.1.2).
	 */
	async presentCode(
		code: string,
	): Promise<{ status: "ok"; record: CodeRecord; codeKey: string } | { status: "unknown" | "reused" }> {
		const codeKey = `code:${await hashSecret(code)}`;
		const record = await this.getLive<CodeRecord>(codeKey);
		if (!record) return { status: "unknown" };
		if (record.usedAt !== undefined) {
			if (record.grantId) await this.revokeGrant(record.grantId);
			return { status: "reused" };
		}
		await this.ctx.storage.put(codeKey, { ...record, usedAt: this.now() });
		return { status: "ok", record, codeKey };
	}

	/** Records a jti; false when it was seen before (RFC 7523 §3 replay protection). */
	async consumeJti(clientId: string, jti: string, expiresAt: number): Promise<boolean> {
		const key = `jti:${clientId}:${await hashSecret(jti)}`;
		if (await this.getLive<{ expiresAt: number }>(key)) return false;
		await this.ctx.storage.put(key, { expiresAt });
		await this.ensureSweep();
		return true;
	}

	/** Fixed window per calendar minute, as athena's "no new tokens for the rest of that minute". */
	async takeTokenBudget(limit: number): Promise<{ allowed: boolean; retryAfter: number }> {
		const now = this.now();
		const minute = Math.floor(now / 60_000);
		const retryAfter = Math.max(1, Math.ceil(((minute + 1) * 60_000 - now) / 1000));
		if (limit === 0) return { allowed: true, retryAfter };
		const key = `ratelimit:${minute}`;
		const used = (await this.ctx.storage.get<{ count: number }>(key))?.count ?? 0;
		if (used >= limit) return { allowed: false, retryAfter };
		await this.ctx.storage.put(key, {
			count: used + 1,
			expiresAt: (minute + 1) * 60_000,
		});
		await this.ensureSweep();
		return { allowed: true, retryAfter };
	}

	async createGrant(grant: Omit<Grant, "id" | "revoked" | "createdAt">, codeKey?: string): Promise<Grant> {
		const full: Grant = { ...grant, id: randomToken(16), revoked: false, createdAt: this.now() };
		await this.ctx.storage.put(`grant:${full.id}`, full);
		if (codeKey) {
			const record = await this.ctx.storage.get<CodeRecord>(codeKey);
			if (record) await this.ctx.storage.put(codeKey, { ...record, grantId: full.id });
		}
		return full;
	}

	async issueTokens(grant: Grant, scope: string[], ttlSeconds: number): Promise<IssuedTokens> {
		const now = this.now();
		const accessToken = randomToken(32);
		const access: AccessTokenRecord = {
			grantId: grant.id,
			clientId: grant.clientId,
			patient: grant.patient,
			scope,
			issuedAt: now,
			expiresAt: now + ttlSeconds * 1000,
		};
		await this.ctx.storage.put(`access:${await hashSecret(accessToken)}`, access);
		await this.ensureSweep();
		if (!scope.includes("offline_access")) return { accessToken, expiresIn: ttlSeconds };
		const refreshToken = randomToken(32);
		const refresh: RefreshTokenRecord = {
			grantId: grant.id,
			clientId: grant.clientId,
			patient: grant.patient,
			scope,
			issuedAt: now,
		};
		const hash = await hashSecret(refreshToken);
		await this.ctx.storage.put(`refresh:${hash}`, refresh);
		const stored = (await this.ctx.storage.get<Grant>(`grant:${grant.id}`)) ?? grant;
		await this.ctx.storage.put(`grant:${grant.id}`, { ...stored, currentRefresh: hash });
		return { accessToken, refreshToken, expiresIn: ttlSeconds };
	}

	/** The refresh grant in one atomic step: refresh-chain.ts decides, this applies it and issues the new set. */
	async refreshGrant(
		refreshToken: string,
		clientId: string,
		scope: string[],
		graceMs: number,
		ttlSeconds: number,
	): Promise<RefreshResult> {
		const hash = await hashSecret(refreshToken);
		const record = await this.ctx.storage.get<RefreshTokenRecord>(`refresh:${hash}`);
		const grant = record ? await this.ctx.storage.get<Grant>(`grant:${record.grantId}`) : undefined;
		const decision = decideRefresh({ hash, record, grant, clientId, scope, graceMs, now: this.now() });
		if (decision.status !== "ok") return decision;
		const { step } = decision;
		for (const spent of step.spent) await this.ctx.storage.delete(`refresh:${spent}`);
		if (step.keep) await this.ctx.storage.put(`refresh:${hash}`, step.keep);
		await this.ctx.storage.put(`grant:${step.grant.id}`, step.grant);
		const tokens = await this.issueTokens(step.grant, scope, ttlSeconds);
		return { status: "ok", grant: step.grant, tokens, viaGrace: step.viaGrace };
	}

	async lookupAccessToken(accessToken: string): Promise<{ record: AccessTokenRecord; grant: Grant } | undefined> {
		const record = await this.getLive<AccessTokenRecord>(`access:${await hashSecret(accessToken)}`);
		if (!record) return undefined;
		const grant = await this.ctx.storage.get<Grant>(`grant:${record.grantId}`);
		if (!grant || grant.revoked) return undefined;
		return { record, grant };
	}

	/** A refresh token that could be presented now (live, or previous within the grace), with its live grant. */
	async lookupRefreshToken(
		refreshToken: string,
		graceMs: number,
	): Promise<{ record: RefreshTokenRecord; grant: Grant } | undefined> {
		const hash = await hashSecret(refreshToken);
		const record = await this.ctx.storage.get<RefreshTokenRecord>(`refresh:${hash}`);
		if (!record) return undefined;
		const grant = await this.ctx.storage.get<Grant>(`grant:${record.grantId}`);
		if (!grant || grant.revoked || !usableRefresh(hash, record, grant, graceMs, this.now())) return undefined;
		return { record, grant };
	}

	/** RFC 7009: a refresh token ends its grant; an access token ends only itself. */
	async revokeToken(token: string, clientId: string, graceMs: number): Promise<void> {
		const hash = await hashSecret(token);
		const refresh = await this.lookupRefreshToken(token, graceMs).then((found) => found?.record);
		if (refresh && refresh.clientId === clientId) {
			await this.revokeGrant(refresh.grantId);
			return;
		}
		const access = await this.ctx.storage.get<AccessTokenRecord>(`access:${hash}`);
		if (access && access.clientId === clientId) await this.ctx.storage.delete(`access:${hash}`);
	}

	private async revokeGrant(grantId: string): Promise<void> {
		const grant = await this.ctx.storage.get<Grant>(`grant:${grantId}`);
		if (grant)
			await this.ctx.storage.put(`grant:${grantId}`, {
				...grant,
				revoked: true,
			});
	}

	// --- controls ------------------------------------------------------------

	/** As the patient or practice revoking the app in athena: every grant for the patient ends. */
	async revokePatient(patient: string): Promise<number> {
		const grants = await this.ctx.storage.list<Grant>({ prefix: "grant:" });
		let revoked = 0;
		for (const [key, grant] of grants) {
			if (grant.patient === patient && !grant.revoked) {
				await this.ctx.storage.put(key, { ...grant, revoked: true });
				revoked++;
			}
		}
		return revoked;
	}

	async expireAccessTokens(): Promise<number> {
		const now = this.now();
		const tokens = await this.ctx.storage.list<AccessTokenRecord>({
			prefix: "access:",
		});
		let expired = 0;
		for (const [key, record] of tokens) {
			if (record.expiresAt > now) {
				await this.ctx.storage.put(key, { ...record, expiresAt: now });
				expired++;
			}
		}
		return expired;
	}

	/** Wipes everything except the sandbox's signing key (clients may have cached its JWKS); the clock runs again. */
	async reset(): Promise<void> {
		const key = await this.getSigningKey();
		await this.ctx.storage.deleteAlarm();
		await this.ctx.storage.deleteAll();
		this.nextSeq = {};
		this.frozenAt = undefined;
		await this.ctx.storage.put("signing-key", key);
	}

	async getOverrides(): Promise<ConfigOverrides> {
		return (await this.ctx.storage.get<ConfigOverrides>("overrides")) ?? {};
	}

	async setOverrides(overrides: ConfigOverrides): Promise<ConfigOverrides> {
		const next = { ...(await this.getOverrides()), ...overrides };
		await this.ctx.storage.put("overrides", next);
		return next;
	}

	async setFault(target: FaultTarget, fault: Fault | null): Promise<void> {
		if (fault === null) await this.ctx.storage.delete(`fault:${target}`);
		else await this.ctx.storage.put(`fault:${target}`, fault);
	}

	async getFaults(): Promise<Partial<Record<FaultTarget, Fault>>> {
		const token = await this.ctx.storage.get<Fault>("fault:token");
		const fhir = await this.ctx.storage.get<Fault>("fault:fhir");
		return { ...(token ? { token } : {}), ...(fhir ? { fhir } : {}) };
	}

	/** Returns the active fault for this request and spends one of its `times`. */
	async takeFault(target: FaultTarget): Promise<Fault | undefined> {
		const fault = await this.ctx.storage.get<Fault>(`fault:${target}`);
		if (!fault) return undefined;
		if (fault.times !== undefined) {
			if (fault.times <= 1) await this.ctx.storage.delete(`fault:${target}`);
			else
				await this.ctx.storage.put(`fault:${target}`, {
					...fault,
					times: fault.times - 1,
				});
		}
		return fault;
	}

	// --- what the sandbox received -------------------------------------------
	//
	// One small key per entry, so recording a request costs a write of its own
	// size: a FHIR read under load must not rewrite the whole log.

	/** Next sequence number per log, loaded once from storage. */
	private nextSeq: Partial<Record<ReceivedLog, number>> = {};

	private async appendReceived(
		log: ReceivedLog,
		entry: ReceivedAssertion | ReceivedTokenCall | ReceivedLogout,
	): Promise<void> {
		let seq = this.nextSeq[log];
		if (seq === undefined) {
			const last = await this.ctx.storage.list({ prefix: receivedPrefix(log), reverse: true, limit: 1 });
			const lastKey = [...last.keys()][0];
			seq = lastKey ? Number(lastKey.slice(receivedPrefix(log).length)) + 1 : 0;
		}
		this.nextSeq[log] = seq + 1;
		await this.ctx.storage.put(receivedKey(log, seq), entry);
		if (seq >= RECEIVED_CAP) await this.ctx.storage.delete(receivedKey(log, seq - RECEIVED_CAP));
	}

	private async count(name: string): Promise<void> {
		const key = `count:${name}`;
		await this.ctx.storage.put(key, ((await this.ctx.storage.get<number>(key)) ?? 0) + 1);
	}

	/** Stamped here, in arrival order, so the log's `at` never runs backwards. */
	async record(entry: ReceivedEntry): Promise<void> {
		const at = this.now();
		if (entry.count) await this.count(entry.count);
		if (entry.assertion) await this.appendReceived("assertion", { at, ...entry.assertion });
		if (entry.tokenCall) await this.appendReceived("token", { at, ...entry.tokenCall });
		if (entry.logout) await this.appendReceived("logout", { at, ...entry.logout });
	}

	async getReceived(): Promise<Received> {
		const counts: Record<string, number> = {};
		for (const [key, value] of await this.ctx.storage.list<number>({ prefix: "count:" })) {
			counts[key.slice("count:".length)] = value;
		}
		const assertions = await this.ctx.storage.list<ReceivedAssertion>({ prefix: receivedPrefix("assertion") });
		const tokenCalls = await this.ctx.storage.list<ReceivedTokenCall>({ prefix: receivedPrefix("token") });
		const logouts = await this.ctx.storage.list<ReceivedLogout>({ prefix: receivedPrefix("logout") });
		return {
			assertions: [...assertions.values()],
			tokenCalls: [...tokenCalls.values()],
			logouts: [...logouts.values()],
			counts,
		};
	}

	/**
	 * Everything a FHIR request needs from state in one step: counts it, checks
	 * its bearer token (live, grant not revoked), for an accepted token takes
	 * the injected FHIR fault if any, and reads the clock (a search's
	 * `timestamp`), so a page of a long walk costs one call here, not two.
	 */
	async admitFhir(
		accessToken: string | undefined,
	): Promise<{ now: number; access?: { record: AccessTokenRecord; grant: Grant }; fault?: Fault }> {
		await this.count("fhir");
		if (!accessToken) return { now: this.now() };
		const access = await this.lookupAccessToken(accessToken);
		if (!access) return { now: this.now() };
		const fault = await this.takeFault("fhir");
		return fault ? { now: this.now(), access, fault } : { now: this.now(), access };
	}

	// --- client JWKS cache ---------------------------------------------------

	async getJwksCache(url: string): Promise<JwksCacheEntry | undefined> {
		return this.getLive<JwksCacheEntry>(`jwks:${url}`);
	}

	async putJwksCache(url: string, entry: JwksCacheEntry): Promise<void> {
		await this.ctx.storage.put(`jwks:${url}`, entry);
		await this.ensureSweep();
	}
}
