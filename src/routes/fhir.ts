import { type Context, Hono } from "hono";
import type { AppEnv } from "../app-env";
import { configFor } from "../config";
import { AppError } from "../errors";
import { clientResponseHeaders, isJsonBody, upstreamRequestHeaders } from "../fhir/headers";
import { operationOutcome } from "../fhir/operation-outcome";
import { type OutboundRequest, outboundFhirRequest } from "../fhir/outbound-url";
import { createRewriter, type Rewriter } from "../fhir/rewrite-stream";
import { AccessTokenCache, type ConnectedAccess } from "../fhir/token-cache";
import { log } from "../log";
import type { AccessResult, SessionApi } from "../session/contract";
import { sessionFor } from "../session/lookup";

/** Where the proxy is mounted: the app's FHIR base is `{PUBLIC_ORIGIN}/fhir/r4`. */
const PROXY_PREFIX = "/fhir/r4";
/** How long athena may take to send response headers before the client gets a 504. */
const DEFAULT_TIMEOUT_MS = 20_000;
/** Read interactions only (issue 5); `POST {type}/_search` is not forwarded. */
const ALLOWED_METHODS = "GET, HEAD";

/** All the proxy asks of a session: a usable token, and a new one after athena's 401. */
export type ProxySessionApi = Pick<SessionApi, "accessToken" | "refreshAfterUnauthorized">;

export interface FhirRouteOptions {
	/** The session named by the request's cookie (`sessionFor` from src/session/lookup.ts, injectable for tests). */
	sessionFor?: (c: Context<AppEnv>) => Promise<{ idHash: string; api: ProxySessionApi } | undefined>;
	/** Header timeout; when absent, the `FHIR_TIMEOUT_MS` var, else 20 s. */
	timeoutMs?: number;
	/** The network, for tests that answer athena themselves. */
	fetch?: typeof fetch;
	tokenCache?: AccessTokenCache;
}

type Outcome = "complete" | "aborted" | "cancelled" | "no-body";

interface Audit {
	requestId: string;
	method: string;
	session: string | undefined;
	resourceType: string | undefined;
	interaction: string | undefined;
	status: number;
	upstreamStatus: number | undefined;
	started: number;
}

/**
 * The single log line of a FHIR request (it stands in for the generic request
 * line, which FHIR routes skip): identifiers and measurements only, never a
 * query value or PHI. `bytes` is undefined where it is not known (a native
 * pass-through without Content-Length).
 */
function writeAudit(audit: Audit, bytes: number | undefined, outcome: Outcome): void {
	log(outcome === "aborted" ? "warn" : "info", "fhir", {
		requestId: audit.requestId,
		method: audit.method,
		route: `${PROXY_PREFIX}/*`,
		session: audit.session,
		resourceType: audit.resourceType,
		interaction: audit.interaction,
		status: audit.status,
		upstreamStatus: audit.upstreamStatus,
		bytes,
		durationMs: Math.round((performance.now() - audit.started) * 10) / 10,
		outcome,
	});
}

/** athena's body arrives in ~4 KiB chunks; each costs a trip through JS, so read at least this much per pull. */
const MIN_READ_BYTES = 64 * 1024;
const READ_BUFFER_BYTES = 128 * 1024;

/** Reads at least MIN_READ_BYTES per call where the stream allows it (workerd's BYOB `readAtLeast`). */
function batchedReader(source: ReadableStream<Uint8Array>): {
	read(): Promise<Uint8Array | undefined>;
	cancel(reason: unknown): Promise<void>;
} {
	let byob: ReadableStreamBYOBReader | undefined;
	try {
		byob = source.getReader({ mode: "byob" });
	} catch {
		// Not a byte stream: fall back to the chunks as they come.
	}
	if (byob) {
		const reader = byob;
		// The first read takes whatever has arrived, so the first byte is not held back.
		let minimum = 1;
		return {
			async read() {
				const { done, value } = await reader.readAtLeast(minimum, new Uint8Array(READ_BUFFER_BYTES));
				minimum = MIN_READ_BYTES;
				// A final short read can carry bytes together with done.
				return value && value.byteLength > 0 ? value : done ? undefined : new Uint8Array(0);
			},
			cancel: (reason) => reader.cancel(reason),
		};
	}
	const reader = source.getReader();
	return {
		async read() {
			const { done, value } = await reader.read();
			return done ? undefined : value;
		},
		cancel: (reason) => reader.cancel(reason),
	};
}

/**
 * A JSON body, rewritten and counted as it goes out.
 * Pull-based with no buffer of its own beyond one read, so athena is read
 * only as fast as the client reads; an upstream error errors this stream
 * too, which aborts the client's response rather than ending it as if
 * complete. Reading, rewriting and counting share one pull: every extra
 * stream layer costs a JS round trip per chunk (BENCHMARKS.md, row 5).
 */
function proxiedBody(source: ReadableStream<Uint8Array>, audit: Audit, rewriter: Rewriter): ReadableStream<Uint8Array> {
	const reader = batchedReader(source);
	let bytes = 0;
	let done = false;
	return new ReadableStream<Uint8Array>(
		{
			async pull(controller) {
				// Loop until something is enqueued: a rewrite may hold a whole short read back.
				for (;;) {
					let chunk: Uint8Array | undefined;
					try {
						chunk = await reader.read();
					} catch (error) {
						writeAudit(audit, bytes, "aborted");
						controller.error(error);
						return;
					}
					if (chunk === undefined) {
						const rest = rewriter.flush();
						if (rest.length > 0) {
							bytes += rest.byteLength;
							controller.enqueue(rest);
						}
						done = true;
						writeAudit(audit, bytes, "complete");
						controller.close();
						return;
					}
					const out = rewriter.push(chunk);
					if (out.byteLength > 0) {
						bytes += out.byteLength;
						controller.enqueue(out);
						return;
					}
				}
			},
			cancel(reason) {
				if (!done) writeAudit(audit, bytes, "cancelled");
				return reader.cancel(reason);
			},
		},
		{ highWaterMark: 0 },
	);
}

/**
 * A body that needs no rewriting goes through natively: workerd pipes it with
 * no JS per chunk (BENCHMARKS.md, row 5). The audit line is written when the
 * pipe settles; its byte count is athena's Content-Length, when it sent one.
 * An upstream error still aborts the client's response.
 */
function passThroughBody(
	source: ReadableStream<Uint8Array>,
	audit: Audit,
	declaredBytes: number | undefined,
	waitUntil: (promise: Promise<unknown>) => void,
): ReadableStream<Uint8Array> {
	const { readable, writable } = new IdentityTransformStream();
	waitUntil(
		source.pipeTo(writable).then(
			() => writeAudit(audit, declaredBytes, "complete"),
			() => writeAudit(audit, undefined, "aborted"),
		),
	);
	return readable as ReadableStream<Uint8Array>;
}

/** The raw path after `/fhir/r4` and the raw query, exactly as the client sent them (no decoding). */
function rawPathAndQuery(requestUrl: string): { path: string; query: string } {
	const afterScheme = requestUrl.indexOf("//") + 2;
	const pathStart = requestUrl.indexOf("/", afterScheme);
	const target = pathStart === -1 ? "/" : requestUrl.slice(pathStart);
	const hash = target.indexOf("#");
	const withoutHash = hash === -1 ? target : target.slice(0, hash);
	const question = withoutHash.indexOf("?");
	const path = question === -1 ? withoutHash : withoutHash.slice(0, question);
	return {
		path: path.slice(PROXY_PREFIX.length),
		query: question === -1 ? "" : withoutHash.slice(question + 1),
	};
}

function timeoutFrom(env: unknown, fallback: number): number {
	const raw = (env as Record<string, unknown>).FHIR_TIMEOUT_MS;
	const value = typeof raw === "string" ? Number(raw) : Number.NaN;
	return Number.isInteger(value) && value > 0 && value <= 120_000 ? value : fallback;
}

/** A session state the app shows to the patient (reconnect, or try later): not a FHIR error. */
function sessionStateResponse(c: Context<AppEnv>, access: Exclude<AccessResult, ConnectedAccess>): Response {
	c.header("Cache-Control", "private, no-store");
	if (access.status === "unavailable") {
		const retryAfter = String(access.retryAfterSeconds ?? 30);
		c.header("Retry-After", retryAfter);
		return c.json({ status: "unavailable", error: access.code, message: access.message }, 503);
	}
	return c.json({ status: access.status }, 401);
}

class UpstreamTimeout extends Error {}

/**
 * Refresh-and-retry rounds after athena's 401, per read. athena's tokens live
 * an hour, so a refused token is refreshed once; a second round covers a
 * token refused right after it was issued (revoked meanwhile: the refresh then
 * says so; or expired again, as the load run's sandbox does every few
 * seconds), and the bound keeps a persistently refusing athena from looping.
 */
const MAX_REFRESHES_PER_READ = 2;

/**
 * What the client gets instead of athena's answer, when athena's answer is
 * not one to pass on; undefined when it is (2xx, 304, 4xx incl. 429 with its
 * Retry-After).
 */
function troubleResponse(upstreamStatus: number, requestId: string): Response | undefined {
	if (upstreamStatus === 401) {
		// Only reached after the refreshes and retries: athena's fault, and the session is kept.
		return operationOutcome(502, "security", "athena refused the refreshed access token", requestId);
	}
	if (upstreamStatus >= 500) {
		return operationOutcome(502, "transient", `athena answered ${upstreamStatus}`, requestId);
	}
	if (upstreamStatus >= 300 && upstreamStatus < 400 && upstreamStatus !== 304) {
		// A redirect could point anywhere; the token-bearing request is never re-aimed.
		return operationOutcome(502, "exception", "athena answered with a redirect", requestId);
	}
	return undefined;
}

/** The session's answer, with a Durable Object failure turned into "try again later" rather than a 500. */
async function askSession(question: () => Promise<AccessResult>, requestId: string): Promise<AccessResult> {
	try {
		return await question();
	} catch (error) {
		log("error", "session unavailable", { requestId, name: error instanceof Error ? error.name : "unknown" });
		return {
			status: "unavailable",
			code: "session_unavailable",
			message: "Your session could not be reached. Try again in a moment.",
			retryAfterSeconds: 5,
		};
	}
}

/**
 * `GET|HEAD /fhir/r4/*`: the patient's record from athena, with the session's
 * token, streamed back with athena's URLs pointing at this proxy.
 *
 * @example
 * app.route("/", fhirProxyRoutes({ timeoutMs: 5_000 }));
 */
export function fhirProxyRoutes(options: FhirRouteOptions = {}): Hono<AppEnv> {
	const findSession = options.sessionFor ?? sessionFor;
	const tokenCache = options.tokenCache ?? new AccessTokenCache();
	const upstreamFetch = options.fetch ?? ((input: RequestInfo | URL, init?: RequestInit) => fetch(input, init));

	/** athena's response headers, or an UpstreamTimeout when they take longer than `timeoutMs`. */
	async function fetchWithTimeout(url: string, init: RequestInit, timeoutMs: number): Promise<Response> {
		const controller = new AbortController();
		let timedOut = false;
		const timer = setTimeout(() => {
			timedOut = true;
			controller.abort();
		}, timeoutMs);
		try {
			return await upstreamFetch(url, { ...init, signal: controller.signal });
		} catch (error) {
			throw timedOut ? new UpstreamTimeout() : error;
		} finally {
			// Headers are in: the body may take as long as it needs.
			clearTimeout(timer);
		}
	}

	return new Hono<AppEnv>()
		.on(["GET", "HEAD"], `${PROXY_PREFIX}/*`, async function proxyFhirRead(c) {
			const started = performance.now();
			const requestId = c.get("requestId");
			const logFields = c.get("logFields");
			// One line per request: the audit line below, written when the body ends.
			logFields.ownLine = true;
			const audit: Audit = {
				requestId,
				method: c.req.method,
				session: undefined,
				resourceType: undefined,
				interaction: undefined,
				status: 0,
				upstreamStatus: undefined,
				started,
			};
			const finish = (response: Response): Response => {
				audit.status = response.status;
				writeAudit(audit, 0, "no-body");
				return response;
			};
			try {
				const configResult = configFor(c.env);
				if (!configResult.ok) {
					throw new AppError(
						"config_invalid",
						503,
						"This service is not configured correctly yet. The operator can see what is missing at /health.",
						configResult.problems.join("; "),
					);
				}
				const config = configResult.config;
				const session = await findSession(c);
				if (!session) return finish(sessionStateResponse(c, { status: "signed_out" }));
				audit.session = session.idHash.slice(0, 16);

				let access: AccessResult =
					tokenCache.get(session.idHash) ?? (await askSession(() => session.api.accessToken(), requestId));
				if (access.status !== "connected") {
					tokenCache.forget(session.idHash);
					return finish(sessionStateResponse(c, access));
				}
				// A token is only ever sent to the configured base (checklist: never to a host named in a body).
				if (access.fhirBaseUrl.replace(/\/+$/, "") !== config.athena.fhirBaseUrl) {
					log("warn", "session FHIR base differs from the configured one", { requestId });
					return finish(sessionStateResponse(c, { status: "signed_out" }));
				}
				tokenCache.set(session.idHash, access);

				const { path, query } = rawPathAndQuery(c.req.url);
				const context = { fhirBaseUrl: config.athena.fhirBaseUrl, patient: access.patient, practice: access.practice };
				const outbound: OutboundRequest = outboundFhirRequest(path, query, context);
				audit.resourceType = outbound.resourceType;
				audit.interaction = outbound.interaction;
				logFields.fhirResourceType = outbound.resourceType;
				logFields.fhirInteraction = outbound.interaction;

				const timeoutMs = options.timeoutMs ?? timeoutFrom(c.env, DEFAULT_TIMEOUT_MS);
				const method = c.req.method === "HEAD" ? "HEAD" : "GET";
				const send = (token: string) =>
					fetchWithTimeout(
						outbound.url,
						{ method, headers: upstreamRequestHeaders(c.req.raw.headers, token), redirect: "manual" },
						timeoutMs,
					);

				let upstream: Response;
				try {
					upstream = await send(access.accessToken);
					// Nothing has reached the client yet, so a refresh and a retry are safe: at most
					// MAX_REFRESHES_PER_READ of them, and another only when the session handed out a
					// new token that athena refused as well (each refresh is the session's single flight).
					for (let refreshes = 0; upstream.status === 401 && refreshes < MAX_REFRESHES_PER_READ; refreshes++) {
						await upstream.body?.cancel();
						tokenCache.forget(session.idHash);
						const stale = access.accessToken;
						const renewed = await askSession(() => session.api.refreshAfterUnauthorized(stale), requestId);
						if (renewed.status !== "connected") return finish(sessionStateResponse(c, renewed));
						access = renewed;
						tokenCache.set(session.idHash, access);
						upstream = await send(access.accessToken);
						if (access.accessToken === stale) break;
					}
				} catch (error) {
					if (error instanceof UpstreamTimeout) {
						logFields.upstream = "timeout";
						return finish(operationOutcome(504, "timeout", "athena did not answer in time", requestId));
					}
					logFields.upstream = "unreachable";
					log("warn", "athena unreachable", { requestId, name: error instanceof Error ? error.name : "unknown" });
					return finish(operationOutcome(502, "transient", "athena could not be reached", requestId));
				}

				audit.upstreamStatus = upstream.status;
				logFields.upstreamStatus = upstream.status;
				const trouble = troubleResponse(upstream.status, requestId);
				if (trouble) {
					await upstream.body?.cancel();
					if (upstream.status === 401) tokenCache.forget(session.idHash);
					return finish(trouble);
				}

				const json = isJsonBody(upstream.headers.get("content-type"));
				const headers = clientResponseHeaders(upstream.headers, requestId, { bodyUnchanged: !json });
				audit.status = upstream.status;
				if (!upstream.body || method === "HEAD") {
					await upstream.body?.cancel();
					return finish(new Response(null, { status: upstream.status, headers }));
				}
				if (!json) {
					const length = Number(upstream.headers.get("content-length") ?? Number.NaN);
					const body = passThroughBody(
						upstream.body,
						audit,
						Number.isSafeInteger(length) ? length : undefined,
						(promise) => c.executionCtx.waitUntil(promise),
					);
					return new Response(body, { status: upstream.status, headers });
				}
				const rewriter = createRewriter(config.athena.fhirBaseUrl, `${config.publicOrigin}${PROXY_PREFIX}`);
				return new Response(proxiedBody(upstream.body, audit, rewriter), { status: upstream.status, headers });
			} catch (error) {
				audit.status = error instanceof AppError ? error.status : 500;
				writeAudit(audit, 0, "no-body");
				throw error;
			}
		})
		.all(`${PROXY_PREFIX}/*`, (c) => {
			c.get("logFields").ownLine = true;
			log("info", "fhir", {
				requestId: c.get("requestId"),
				method: c.req.method,
				route: `${PROXY_PREFIX}/*`,
				interaction: "refused-method",
				status: 405,
				bytes: 0,
			});
			return operationOutcome(
				405,
				"not-supported",
				"The FHIR proxy forwards read interactions only (GET, HEAD)",
				c.get("requestId"),
				{ Allow: ALLOWED_METHODS },
			);
		});
}

/** The proxy as the worker mounts it: the real session lookup, athena over the network. */
export const fhirRoutes = fhirProxyRoutes();
