import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import type { AppEnv } from "../app-env";
import { AppError } from "../errors";
import { log } from "../log";
import { RANDOM_TOKEN_PATTERN, sha256 } from "../random";

/** Binds a launch to the browser that started it (SMART 2.2 / RFC 9700 §4.7). */
export const BROWSER_COOKIE = "__Host-athena_launch";
/** The rate limiter's period (Workers Rate Limiting allows 10 or 60 s): what Retry-After says. */
const LIMITER_PERIOD_SECONDS = 60;
/** Hashes are cut to this many characters: enough to tell clients apart, never the address itself. */
const CLIENT_TAG_LENGTH = 16;

/** The launch cookie's value, when it is one we minted. */
export function launchCookie(c: Context<AppEnv>): string | undefined {
	const value = getCookie(c, BROWSER_COOKIE);
	return value && RANDOM_TOKEN_PATTERN.test(value) ? value : undefined;
}

/**
 * Who is asking, as the sign-in limits count them: the client address that
 * Cloudflare puts in `CF-Connecting-IP` (a client cannot set it) and the
 * launch cookie, each hashed so no address is kept or logged in clear.
 */
export async function signInClients(c: Context<AppEnv>): Promise<string[]> {
	const clients: string[] = [];
	const address = c.req.header("CF-Connecting-IP");
	if (address) clients.push(`ip:${(await sha256(address)).slice(0, CLIENT_TAG_LENGTH)}`);
	const browser = launchCookie(c);
	if (browser) clients.push(`browser:${(await sha256(browser)).slice(0, CLIENT_TAG_LENGTH)}`);
	return clients;
}

/**
 * Limits `/launch` and the callback per client with the Workers Rate Limiting
 * binding, before either touches a Durable Object or athena's token budget.
 * Past the limit: 429 with Retry-After and a page that says to wait. The
 * binding's counts are per Cloudflare location and approximate, so this is
 * the cheap first line; the token budget's per-client failure count is the
 * exact one.
 *
 * @example
 * app.get("/launch", limitSignInAttempts("launch"), handler);
 */
export function limitSignInAttempts(step: "launch" | "callback"): MiddlewareHandler<AppEnv> {
	return async function signInAttemptsMiddleware(c, next) {
		const limiter = c.env.SIGN_IN_LIMITER;
		for (const client of await signInClients(c)) {
			let success = true;
			try {
				({ success } = await limiter.limit({ key: `${step}:${client}` }));
			} catch (error) {
				// The limiter failing must not lock patients out: the token budget still protects athena.
				log("warn", "sign-in limiter unavailable", { name: error instanceof Error ? error.name : "unknown" });
			}
			if (!success) {
				c.get("logFields").limited = client.split(":")[0];
				throw new AppError({
					code: "too_many_attempts",
					status: 429,
					message: "Too many sign-in attempts came from this device or network. Wait a minute, then connect again.",
					detail: `${step} rate limited per ${client.split(":")[0]}`,
					retryAfterSeconds: LIMITER_PERIOD_SECONDS,
				});
			}
		}
		await next();
	};
}
