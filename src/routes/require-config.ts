import type { MiddlewareHandler } from "hono";
import type { AppEnv } from "../app-env";
import { configFor } from "../config";
import { AppError } from "../errors";

/** Puts the validated config on the context, or stops with a 503 naming what is wrong (for the operator's logs). */
export function requireConfig(): MiddlewareHandler<AppEnv> {
	return async function requireConfigMiddleware(c, next) {
		const result = configFor(c.env);
		if (!result.ok) {
			throw new AppError(
				"config_invalid",
				503,
				"This service is not configured correctly yet. The operator can see what is missing at /health.",
				result.problems.join("; "),
			);
		}
		c.set("config", result.config);
		await next();
	};
}
