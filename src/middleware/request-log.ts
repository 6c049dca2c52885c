import type { MiddlewareHandler } from "hono";
import { type LogFields, log } from "../log";

/** The response header that carries the request id, as athena's own responses do. */
export const REQUEST_ID_HEADER = "X-Request-Id";
/** A caller's own correlation id is logged only in this shape: no quotes, spaces, newlines or bulk. */
const CLIENT_REQUEST_ID = /^[A-Za-z0-9._-]{1,64}$/;

/**
 * Gives every request an id of our own (a random UUID) and returns it in
 * `X-Request-Id`. A caller's `X-Request-Id` is never adopted: the id is what
 * ties the request line and the FHIR audit line to one request, and a
 * client-chosen value could repeat another request's id to muddle the audit.
 * See `requestLog()` for where a well-formed caller id goes.
 *
 * @example
 * new Hono().use(requestIdentity()).use(requestLog());
 */
export function requestIdentity(): MiddlewareHandler<{ Variables: { requestId: string } }> {
	return async function requestIdentityMiddleware(c, next) {
		const id = crypto.randomUUID();
		c.set("requestId", id);
		c.header(REQUEST_ID_HEADER, id);
		await next();
	};
}

/** The caller's `X-Request-Id` when it has the strict shape above; anything else is dropped. */
export function clientRequestId(header: string | undefined): string | undefined {
	return header !== undefined && CLIENT_REQUEST_ID.test(header) ? header : undefined;
}

/**
 * Emits one `request` line per request: our id (and the caller's, if well
 * formed), method, matched route pattern (not the raw URL, which could carry
 * query values), status and duration.
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
			// Kept apart from requestId, so a caller can correlate but never choose our id.
			clientRequestId: clientRequestId(c.req.header(REQUEST_ID_HEADER)),
			method: c.req.method,
			route: c.req.routePath,
			status: c.res.status,
			durationMs: Math.round((performance.now() - started) * 10) / 10,
			...fields,
		});
	};
}
