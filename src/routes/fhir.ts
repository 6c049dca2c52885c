import type { Context } from "hono";
import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import { settings } from "../config";
import { AppError } from "../errors";
import { FhirAudit } from "../fhir/audit-record";
import { passedThroughBody, rewrittenBody } from "../fhir/body-streams";
import { clientResponseHeaders, isJsonBody } from "../fhir/headers";
import { operationOutcome } from "../fhir/operation-outcome";
import { rawTarget } from "../fhir/raw-target";
import { readServers } from "../fhir/read-servers";
import { describeCombinations, requiredCombinations, smallBody } from "../fhir/required-parameters";
import { createRewriter } from "../fhir/rewrite-stream";
import { AccessTokenCache, isolateTokenCache } from "../fhir/token-cache";
import { type ReadState, type SessionAccess, upstreamReader } from "../fhir/upstream-read";
import { sessionTag } from "../session/contract";
import { sessionFor } from "../session/lookup";

/** Where the proxy serves the session's first connection: the app's FHIR base is `{PUBLIC_ORIGIN}/fhir/r4`. */
const PROXY_PREFIX = "/fhir/r4";
const ROUTE = `${PROXY_PREFIX}/*`;
/** Where it serves each connection: `{PUBLIC_ORIGIN}/fhir/{connection id}/r4` (ids: CONNECTION_ID_PATTERN). */
const CONNECTION_ROUTE = "/fhir/:connection{[A-Za-z0-9_-]{8}}/r4/*";
/** The connection route as audit lines name it. */
const CONNECTION_ROUTE_NAME = "/fhir/:connection/r4/*";
/** Read interactions only: a patient app reads its record; `POST {type}/_search` is not forwarded. */
const ALLOWED_METHODS = "GET, HEAD";

export interface FhirRouteOptions {
	/** The session named by the request's cookie (`sessionFor` from src/session/lookup.ts, injectable for tests). */
	sessionFor?: (c: Context<AppEnv>) => Promise<SessionAccess | undefined>;
	/** Header timeout; when absent, config's `fhirTimeoutMs` (`FHIR_TIMEOUT_MS`, default 20 s). */
	timeoutMs?: number;
	/** The network, for tests that answer athena themselves. */
	fetch?: typeof fetch;
	tokenCache?: AccessTokenCache;
}

/** A read that ended without athena's answer: a session state the app shows the patient, or athena's silence. */
function stateResponse(c: Context<AppEnv>, state: ReadState, requestId: string): Response {
	switch (state.status) {
		case "timeout":
			return operationOutcome(504, "timeout", "athena did not answer in time", requestId);
		case "unreachable":
			return operationOutcome(502, "transient", "athena could not be reached", requestId);
	}
	c.header("Cache-Control", "private, no-store");
	// Another session's connection id, or one never issued: nothing to read, and nothing said about it.
	if (state.status === "unknown_connection") return c.json({ status: state.status }, 404);
	if (state.status === "unavailable") {
		c.header("Retry-After", String(state.retryAfterSeconds ?? 30));
		return c.json({ status: "unavailable", error: state.code, message: state.message }, 503);
	}
	return c.json({ status: state.status }, 401);
}

/** What the client gets instead of athena's answer, when it is not one to pass on (2xx, 304, 4xx incl. 429 are). */
function troubleResponse(upstreamStatus: number, requestId: string): Response | undefined {
	if (upstreamStatus === 401) {
		// Only reached after the refreshes and retries: athena's fault, and the session is kept.
		return operationOutcome(502, "security", "athena refused the refreshed access token", requestId);
	}
	if (upstreamStatus >= 500) return operationOutcome(502, "transient", `athena answered ${upstreamStatus}`, requestId);
	// A redirect could point anywhere; the token-bearing request is never re-aimed.
	if (upstreamStatus >= 300 && upstreamStatus < 400 && upstreamStatus !== 304) {
		return operationOutcome(502, "exception", "athena answered with a redirect", requestId);
	}
	return undefined;
}

/**
 * athena's 403 for a search missing a required parameter combination becomes
 * a 400 that names the combinations; any other 403 goes on as athena sent it.
 */
async function parameterRefusal(
	body: ReadableStream<Uint8Array>,
	requestId: string,
): Promise<{ kind: "answer"; response: Response } | { kind: "pass"; text: string }> {
	const text = await smallBody(body);
	if (text === undefined) {
		const response = operationOutcome(403, "security", "athena refused this read", requestId);
		return { kind: "answer", response };
	}
	const combinations = requiredCombinations(text);
	if (!combinations) return { kind: "pass", text };
	const message = `athena needs one of these search parameter combinations: ${describeCombinations(combinations)}`;
	return { kind: "answer", response: operationOutcome(400, "required", message, requestId) };
}

/**
 * `GET|HEAD /fhir/r4/*` (the session's first connection) and
 * `/fhir/{connection id}/r4/*` (each connection): the patient's record from
 * athena, with that connection's token, streamed back with athena's URLs
 * pointing at the same mount of this proxy. Each request
 * logs one audit record (audit-record.ts) in place of the generic request line.
 *
 * @example
 * app.route("/", fhirProxyRoutes({ timeoutMs: 5_000 }));
 */
export function fhirProxyRoutes(options: FhirRouteOptions = {}): Hono<AppEnv> {
	const read = proxyRead({
		findSession: options.sessionFor ?? sessionFor,
		tokenCache: options.tokenCache ?? new AccessTokenCache(),
		fetch: options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init)),
		timeoutMs: options.timeoutMs,
	});
	return new Hono<AppEnv>()
		.on(["GET", "HEAD"], ROUTE, (c) => read(c, { prefix: PROXY_PREFIX, route: ROUTE, connectionId: undefined }))
		.on(["GET", "HEAD"], CONNECTION_ROUTE, (c) => {
			const connectionId = c.req.param("connection");
			const mount = { prefix: `/fhir/${connectionId}/r4`, route: CONNECTION_ROUTE_NAME, connectionId };
			return read(c, mount);
		})
		.all(ROUTE, (c) => refusedMethod(c, ROUTE))
		.all(CONNECTION_ROUTE, (c) => refusedMethod(c, CONNECTION_ROUTE_NAME));
}

/** Where a read arrived: the proxy base it was under, its route (for the audit line), and the connection it names. */
interface ProxyMount {
	prefix: string;
	route: string;
	/** undefined: the session's first connection (`/fhir/r4`). */
	connectionId: string | undefined;
}

interface ProxyReadOptions {
	findSession: (c: Context<AppEnv>) => Promise<SessionAccess | undefined>;
	tokenCache: AccessTokenCache;
	fetch: typeof fetch;
	timeoutMs: number | undefined;
}

/** The read handler, for either mount. */
function proxyRead(options: ProxyReadOptions) {
	return async function proxyFhirRead(c: Context<AppEnv>, mount: ProxyMount): Promise<Response> {
		const requestId = c.get("requestId");
		const fields = c.get("logFields");
		fields.ownLine = true;
		const audit = new FhirAudit({ requestId, method: c.req.method, route: mount.route, fields });
		const noBody = (response: Response): Response => {
			audit.status = response.status;
			audit.write(0, "no-body");
			return response;
		};
		try {
			const config = settings(c.env);
			const found = await options.findSession(c);
			if (!found) return noBody(stateResponse(c, { status: "signed_out" }, requestId));
			audit.session = sessionTag(found.idHash);

			const method = c.req.method === "HEAD" ? "HEAD" : "GET";
			const read = upstreamReader({
				session: { ...found, connectionId: mount.connectionId },
				...readServers(config),
				tokenCache: options.tokenCache,
				fetch: options.fetch,
				timeoutMs: options.timeoutMs ?? config.fhirTimeoutMs,
				requestId,
			});
			const result = await read({ ...rawTarget(c.req.url, mount.prefix), method, headers: c.req.raw.headers });
			audit.noteRead(result);
			if (result.kind === "state") return noBody(stateResponse(c, result.state, requestId));

			let upstream = result.response;
			const trouble = troubleResponse(upstream.status, requestId);
			const json = isJsonBody(upstream.headers.get("content-type"));
			if (upstream.status === 403 && json && upstream.body && method === "GET") {
				const refusal = await parameterRefusal(upstream.body, requestId);
				if (refusal.kind === "answer") return noBody(refusal.response);
				upstream = new Response(refusal.text, upstream);
			}
			const headers = clientResponseHeaders(upstream.headers, requestId, { bodyUnchanged: !json });
			if (trouble || !upstream.body || method === "HEAD") {
				await upstream.body?.cancel();
				return noBody(trouble ?? new Response(null, { status: upstream.status, headers }));
			}
			audit.status = upstream.status;
			if (!json) {
				const length = Number(upstream.headers.get("content-length") ?? Number.NaN);
				const declared = Number.isSafeInteger(length) ? length : undefined;
				const body = passedThroughBody(upstream.body, audit, declared, (p) => c.executionCtx.waitUntil(p));
				return new Response(body, { status: upstream.status, headers });
			}
			// Links come back under the mount they were read through: a connection's pages stay that connection's.
			const rewriter = createRewriter(result.fhirBaseUrl, `${config.publicOrigin}${mount.prefix}`);
			return new Response(rewrittenBody(upstream.body, audit, rewriter), { status: upstream.status, headers });
		} catch (error) {
			audit.status = error instanceof AppError ? error.status : 500;
			audit.error = error instanceof AppError ? error.code : "internal_error";
			audit.write(0, "no-body");
			throw error;
		}
	};
}

/** Any method but GET and HEAD: 405, with its own audit line. */
function refusedMethod(c: Context<AppEnv>, route: string): Response {
	const fields = c.get("logFields");
	fields.ownLine = true;
	const audit = new FhirAudit({ requestId: c.get("requestId"), method: c.req.method, route, fields });
	audit.interaction = "refused-method";
	audit.status = 405;
	audit.write(0, "no-body");
	const text = "The FHIR proxy forwards read interactions only (GET, HEAD)";
	return operationOutcome(405, "not-supported", text, c.get("requestId"), { Allow: ALLOWED_METHODS });
}

/** The proxy as the worker mounts it: the real session lookup, athena over the network, the isolate's token cache. */
export const fhirRoutes = fhirProxyRoutes({ tokenCache: isolateTokenCache });
