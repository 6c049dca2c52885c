import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { configFor } from "../config";
import { AppError } from "../errors";

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * State-changing requests must come from our own pages (OWASP CSRF: verify
 * origin with standard headers). Browsers send `Origin` on every POST; where
 * it is absent, `Sec-Fetch-Site: same-origin` is accepted instead.
 */
export function sameOriginOnly(): MiddlewareHandler<AppEnv> {
	return async function sameOriginMiddleware(c, next) {
		if (SAFE_METHODS.has(c.req.method)) return next();
		const result = configFor(c.env);
		const expected = result.ok ? result.config.publicOrigin : new URL(c.req.url).origin;
		const origin = c.req.header("Origin");
		const fetchSite = c.req.header("Sec-Fetch-Site");
		const sameOrigin = origin ? origin === expected : fetchSite === "same-origin";
		if (!sameOrigin) {
			throw new AppError({
				code: "cross_site_refused",
				status: 403,
				message: "This request did not come from this site.",
				detail: `origin ${origin ?? "none"}`,
			});
		}
		await next();
	};
}
