import { DurableObject } from "cloudflare:workers";

/** The one instance that meters an environment's token-endpoint calls. */
export const TOKEN_BUDGET_NAME = "athena-token-endpoint";

/** The environment's one TokenBudget instance. */
export function tokenBudget(env: Env) {
	return env.TOKEN_BUDGET.get(env.TOKEN_BUDGET.idFromName(TOKEN_BUDGET_NAME));
}

export type BudgetAnswer = { ok: true } | { ok: false; retryAfterSeconds: number };

interface Window {
	/** Calendar minute (epoch ms / 60 000) this count belongs to. */
	minute: number;
	used: number;
	/** athena said 429: no calls until then (epoch ms). */
	blockedUntil: number;
}

const STORAGE_KEY = "window";

function secondsToNextMinute(now: number): number {
	return Math.max(1, Math.ceil((60_000 - (now % 60_000)) / 1000));
}

/**
 * athena issues at most 5 new tokens a minute in preview and 50 in production,
 * then answers 429 for the rest of that minute. Every code exchange and
 * refresh of the environment reserves a call here first, so the worker stays
 * inside the budget instead of discovering it through 429s. A fixed window
 * per calendar minute mirrors athena's own counting.
 */
export class TokenBudget extends DurableObject<Env> {
	private window: Window | undefined;

	private async current(now: number): Promise<Window> {
		this.window ??= (await this.ctx.storage.get<Window>(STORAGE_KEY)) ?? { minute: 0, used: 0, blockedUntil: 0 };
		const minute = Math.floor(now / 60_000);
		if (this.window.minute !== minute) this.window = { ...this.window, minute, used: 0 };
		return this.window;
	}

	/** Takes one call from this minute's budget of `limit`, or says when to come back. */
	async reserve(limit: number, now = Date.now()): Promise<BudgetAnswer> {
		const window = await this.current(now);
		if (window.blockedUntil > now) {
			return { ok: false, retryAfterSeconds: Math.max(1, Math.ceil((window.blockedUntil - now) / 1000)) };
		}
		if (window.used >= limit) return { ok: false, retryAfterSeconds: secondsToNextMinute(now) };
		window.used += 1;
		await this.ctx.storage.put(STORAGE_KEY, window);
		return { ok: true };
	}

	/** athena answered 429 anyway (clock skew, another client): stop until it says. */
	async athenaRefused(retryAfterSeconds: number, now = Date.now()): Promise<void> {
		const window = await this.current(now);
		window.blockedUntil = Math.max(window.blockedUntil, now + retryAfterSeconds * 1000);
		await this.ctx.storage.put(STORAGE_KEY, window);
	}
}
