import type { MiddlewareHandler } from "hono";

type Level = "info" | "warn" | "error";

/**
 * One structured JSON line. Callers pass identifiers and measurements only:
 * never tokens, codes, verifiers, query values, PHI or raw session ids.
 */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
	const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
	if (level === "error") console.error(line);
	else if (level === "warn") console.warn(line);
	else console.log(line);
}

/** Fields routes may add to their request's log line (e.g. a hashed session id). */
export type LogFields = Record<string, string | number | boolean | undefined>;

/**
 * Emits one `request` line per request: id, method, matched route pattern (not
 * the raw URL, which could carry query values), status and duration.
 */
export function requestLog(): MiddlewareHandler<{ Variables: { requestId: string; logFields: LogFields } }> {
	return async function requestLogMiddleware(c, next) {
		const started = performance.now();
		c.set("logFields", {});
		await next();
		// Routes that write their own, richer line (the FHIR audit) set ownLine.
		const { ownLine, ...fields } = c.get("logFields");
		if (ownLine) return;
		log(c.res.status >= 500 ? "error" : "info", "request", {
			requestId: c.get("requestId"),
			method: c.req.method,
			route: c.req.routePath,
			status: c.res.status,
			durationMs: Math.round((performance.now() - started) * 10) / 10,
			...fields,
		});
	};
}
