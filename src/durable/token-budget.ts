import { DurableObject } from "cloudflare:workers";
import { ATHENA_SERVER_ID } from "../config";

/** The instance that meters the token-endpoint calls of the environment's athena (its name from before servers had ids). */
export const TOKEN_BUDGET_NAME = "athena-token-endpoint";

/** The TokenBudget instance of a server: athena's keeps its name, each SMART_SERVERS entry has its own. */
export function tokenBudgetName(serverId: string): string {
	return serverId === ATHENA_SERVER_ID ? TOKEN_BUDGET_NAME : `server:${serverId}:token-endpoint`;
}

/** The TokenBudget instance that meters one server's token endpoint (default: the environment's athena). */
export function tokenBudget(env: Env, serverId: string = ATHENA_SERVER_ID) {
	return env.TOKEN_BUDGET.get(env.TOKEN_BUDGET.idFromName(tokenBudgetName(serverId)));
}

/**
 * Failed code exchanges a client may cause in a minute before its callbacks
 * are refused without a token call. A patient's own callback fails only when
 * a code is replayed or stale, so two is generous; every failure beyond it
 * would be a budget slot an anonymous visitor takes from real patients.
 */
export const FAILED_EXCHANGES_PER_CLIENT_MINUTE = 2;
/**
 * Refreshes one session may spend in a minute, unless SESSION_REFRESHES_PER_MINUTE
 * says otherwise. A read needs at most two (the proxy retries a 401 at most
 * twice); three leaves room for a page of parallel reads, and stops a
 * signed-in user from draining the budget with tokens athena keeps refusing.
 */
export const REFRESHES_PER_SESSION_MINUTE = 3;
/** Per-client and per-session counters kept per minute; past this, new keys share one slot. */
const MAX_TRACKED_KEYS = 10_000;

/** What a caller asks the budget for. */
export type BudgetRequest =
	| {
			purpose: "sign_in";
			/** athena's limit of new tokens a minute for this environment. */
			limit: number;
			/** Share of `limit` sign-ins may take; the rest is kept for refreshes of existing sessions. */
			signInShare: number;
			/** Who is signing in (hashed client address, hashed launch cookie): their failures are counted. */
			clients: string[];
	  }
	| {
			purpose: "refresh";
			limit: number;
			/** Short hash of the session refreshing. */
			session: string;
			/** Refreshes this session may make a minute (default REFRESHES_PER_SESSION_MINUTE). */
			sessionLimit?: number;
	  };

export type BudgetAnswer =
	| { ok: true }
	| {
			ok: false;
			/** `spent`: the minute's budget (or its sign-in share) is used; `client_blocked`: this client failed too often; `session_limited`: this session refreshed too often. */
			reason: "spent" | "client_blocked" | "session_limited";
			retryAfterSeconds: number;
	  };

interface Window {
	/** Calendar minute (epoch ms / 60 000) this count belongs to. */
	minute: number;
	used: number;
	/** Of `used`, how many were sign-ins. */
	signIns: number;
	/** athena said 429: no calls until then (epoch ms). */
	blockedUntil: number;
}

const STORAGE_KEY = "window";

function secondsToNextMinute(now: number): number {
	return Math.max(1, Math.ceil((60_000 - (now % 60_000)) / 1000));
}

/** Sign-ins a minute may take: at least one, and never the whole budget when it has room for more. */
export function signInCap(limit: number, share: number): number {
	const cap = Math.max(1, Math.floor(limit * share));
	return limit > 1 ? Math.min(cap, limit - 1) : cap;
}

/** Counts per key within one minute; forgotten when the minute changes. */
class MinuteCounter {
	private minute = 0;
	private counts = new Map<string, number>();

	private roll(minute: number): void {
		if (minute === this.minute) return;
		this.minute = minute;
		this.counts.clear();
	}

	get(key: string, minute: number): number {
		this.roll(minute);
		return this.counts.get(key) ?? this.counts.get("*overflow") ?? 0;
	}

	add(key: string, minute: number): void {
		this.roll(minute);
		const slot = this.counts.has(key) || this.counts.size < MAX_TRACKED_KEYS ? key : "*overflow";
		this.counts.set(slot, (this.counts.get(slot) ?? 0) + 1);
	}
}

/**
 * athena issues at most 5 new tokens a minute in preview and 50 in production,
 * then answers 429 for the rest of that minute. Every code exchange and
 * refresh of the environment reserves a call here first, so the worker stays
 * inside the budget instead of discovering it through 429s. A fixed window
 * per calendar minute mirrors athena's own counting.
 *
 * Anyone can start a sign-in, so sign-ins may take only a share of the
 * minute: the rest is kept for refreshes, and a flood of sign-ins (real or
 * fake codes) never cuts off patients who are already connected. A client
 * whose code exchanges keep failing is refused before it spends anything.
 * Those per-client and per-session counts live in memory only: losing them
 * when the object restarts forgives at most one minute.
 */
export class TokenBudget extends DurableObject<Env> {
	private window: Window | undefined;
	private readonly failures = new MinuteCounter();
	private readonly refreshes = new MinuteCounter();
	/** Tests replace this to pin the minute. */
	private clock: () => number = () => Date.now();

	private async current(now: number): Promise<Window> {
		this.window ??= (await this.ctx.storage.get<Window>(STORAGE_KEY)) ?? {
			minute: 0,
			used: 0,
			signIns: 0,
			blockedUntil: 0,
		};
		const minute = Math.floor(now / 60_000);
		if (this.window.minute !== minute) this.window = { ...this.window, minute, used: 0, signIns: 0 };
		this.window.signIns ??= 0;
		return this.window;
	}

	/** Takes one call from this minute's budget, or says why not and when to come back. */
	async reserve(request: BudgetRequest): Promise<BudgetAnswer> {
		const now = this.clock();
		const window = await this.current(now);
		const nextMinute = secondsToNextMinute(now);
		if (request.purpose === "sign_in") {
			// Checked before anything else: a blocked client learns nothing about the budget.
			if (
				request.clients.some((client) => this.failures.get(client, window.minute) >= FAILED_EXCHANGES_PER_CLIENT_MINUTE)
			) {
				return { ok: false, reason: "client_blocked", retryAfterSeconds: nextMinute };
			}
		} else if (
			this.refreshes.get(request.session, window.minute) >= (request.sessionLimit ?? REFRESHES_PER_SESSION_MINUTE)
		) {
			return { ok: false, reason: "session_limited", retryAfterSeconds: nextMinute };
		}
		if (window.blockedUntil > now) {
			return {
				ok: false,
				reason: "spent",
				retryAfterSeconds: Math.max(1, Math.ceil((window.blockedUntil - now) / 1000)),
			};
		}
		const full =
			request.purpose === "sign_in"
				? window.used >= request.limit || window.signIns >= signInCap(request.limit, request.signInShare)
				: window.used >= request.limit;
		if (full) return { ok: false, reason: "spent", retryAfterSeconds: nextMinute };
		window.used += 1;
		if (request.purpose === "sign_in") window.signIns += 1;
		else this.refreshes.add(request.session, window.minute);
		await this.ctx.storage.put(STORAGE_KEY, window);
		return { ok: true };
	}

	/** athena refused a code these clients sent: count it against each of them. */
	async exchangeFailed(clients: string[]): Promise<void> {
		const minute = Math.floor(this.clock() / 60_000);
		for (const client of clients) this.failures.add(client, minute);
	}

	/** athena answered 429 anyway (clock skew, another client): stop until it says. */
	async athenaRefused(retryAfterSeconds: number): Promise<void> {
		const now = this.clock();
		const window = await this.current(now);
		window.blockedUntil = Math.max(window.blockedUntil, now + retryAfterSeconds * 1000);
		await this.ctx.storage.put(STORAGE_KEY, window);
	}
}
