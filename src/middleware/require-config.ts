import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { settings } from "../config";

/** Puts the validated config on the context, or stops with the one `config_invalid` 503 (its detail, for the operator's log, lists what is wrong). */
export function requireConfig(): MiddlewareHandler<AppEnv> {
	return async function requireConfigMiddleware(c, next) {
		c.set("config", settings(c.env));
		await next();
	};
}
