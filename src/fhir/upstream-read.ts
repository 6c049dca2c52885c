import { log } from "../log";
import type { AccessResult, SessionApi } from "../session/contract";
import { upstreamRequestHeaders } from "./headers";
import { type OutboundRequest, outboundFhirRequest } from "./outbound-url";
import type { AccessTokenCache, ConnectedAccess } from "./token-cache";

/**
 * Refresh-and-retry rounds after athena's 401, per read. athena's tokens live
 * an hour, so a refused token is refreshed once; a second round covers a
 * token refused right after it was issued (revoked meanwhile: the refresh then
 * says so; or expired again, as the load run's sandbox does every few
 * seconds), and the bound keeps a persistently refusing athena from looping.
 */
const MAX_REFRESHES_PER_READ = 2;

/** All a read asks of a session: a usable token, and a new one after athena's 401. */
export type ReadSessionApi = Pick<SessionApi, "accessToken" | "refreshAfterUnauthorized">;

/** The patient's session: its hashed id (the token cache's key), its Durable Object, and which connection to read. */
export interface SessionAccess {
	idHash: string;
	api: ReadSessionApi;
	/** The connection read (`/fhir/{id}/r4`); absent: the session's first connection (`/fhir/r4`). */
	connectionId?: string | undefined;
}

/** The token cache's key for a session's connection: never the cookie value, and never shared between connections. */
export function tokenCacheKey(session: SessionAccess): string {
	return session.connectionId === undefined ? session.idHash : `${session.idHash}:${session.connectionId}`;
}

/** Why a read has no answer from athena to pass on. */
export type ReadState =
	/** The session's own answer: signed out, revoked, or unable to serve now (its Durable Object included). */
	| Exclude<AccessResult, ConnectedAccess>
	/** athena sent no response headers within the timeout. */
	| { status: "timeout" }
	/** athena could not be reached at all. */
	| { status: "unreachable" };

export type UpstreamRead =
	/** `outbound` is undefined when the session stood in the way before the URL was built. */
	| { kind: "state"; state: ReadState; outbound: OutboundRequest | undefined }
	/**
	 * athena's answer, whatever its status, body unread. A 401 here is athena
	 * refusing even the refreshed token; redirects are never followed.
	 */
	| {
			kind: "response";
			response: Response;
			outbound: OutboundRequest;
			/** The FHIR base the answer came from (its links point there): the connection's server's. */
			fhirBaseUrl: string;
	  };

/** Where a connection's server is read, as configured: the only base its tokens are sent to, and its search rules. */
export interface ReadServer {
	fhirBaseUrl: string;
	completeSearches: boolean;
}

export interface UpstreamReaderOptions {
	session: SessionAccess;
	/** The configured FHIR base, without a trailing slash: the only place a token is ever sent. */
	fhirBaseUrl: string;
	/** athena's profile: add `ah-practice` and the session's patient to searches that lack them (src/ehr-profile.ts). */
	completeSearches: boolean;
	/**
	 * A connection of a SMART_SERVERS server: that server as configured now,
	 * undefined when it is no longer listed (nothing is sent). Connections
	 * without a server id read `fhirBaseUrl` with `completeSearches`.
	 */
	listedServer?: (serverId: string) => ReadServer | undefined;
	tokenCache: AccessTokenCache;
	fetch: typeof fetch;
	/** How long athena may take to send response headers, per request to athena. */
	timeoutMs: number;
	/** Names the request in the lines that explain a failure. */
	requestId: string;
}

export interface UpstreamReadRequest {
	/** The raw path under the FHIR base (`/Patient/a-1.E-2`), checked by outboundFhirRequest. */
	path: string;
	/** The raw query, without `?`. */
	query: string;
	method: "GET" | "HEAD";
	/** The client's headers: only the conditional and preference ones reach athena. */
	headers: Headers;
	/** Ends the read when whoever asked no longer wants it: no request, refresh or retry after it fires. */
	signal?: AbortSignal | undefined;
}

class UpstreamTimeout extends Error {}

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

/** athena's response headers, or an UpstreamTimeout when they take longer than `timeoutMs`. */
async function fetchWithTimeout(
	upstreamFetch: typeof fetch,
	url: string,
	init: RequestInit,
	timeoutMs: number,
	unwanted: AbortSignal | undefined,
): Promise<Response> {
	const controller = new AbortController();
	let timedOut = false;
	const timer = setTimeout(() => {
		timedOut = true;
		controller.abort();
	}, timeoutMs);
	const giveUp = () => controller.abort();
	unwanted?.addEventListener("abort", giveUp);
	try {
		if (unwanted?.aborted) throw new DOMException("The read is no longer wanted.", "AbortError");
		return await upstreamFetch(url, { ...init, signal: controller.signal });
	} catch (error) {
		throw timedOut ? new UpstreamTimeout() : error;
	} finally {
		// Headers are in: the body may take as long as it needs.
		clearTimeout(timer);
		unwanted?.removeEventListener("abort", giveUp);
	}
}

/**
 * Reads from athena on behalf of one session's connection: a token from the isolate's
 * cache or the session, the outbound URL checked and completed
 * (outbound-url.ts), the timed request, and after athena's 401 a refresh and
 * a retry, at most twice per read, the second only when athena refused the
 * new token too (each refresh is the session's own single flight). Throws only
 * what outboundFhirRequest throws: an AppError for a path or query it refuses.
 *
 * @example
 * const read = upstreamReader({ session, fhirBaseUrl, tokenCache, fetch, timeoutMs: 20_000, requestId });
 * const result = await read({ path: "/Patient/a-80000.E-14545", query: "", method: "GET", headers: new Headers() });
 * if (result.kind === "response") console.log(result.response.status);
 */
export function upstreamReader(
	options: UpstreamReaderOptions,
): (request: UpstreamReadRequest) => Promise<UpstreamRead> {
	const { session, tokenCache, requestId } = options;
	const cacheKey = tokenCacheKey(session);
	const connectionId = session.connectionId;

	return async function readUpstream(request) {
		let access: AccessResult =
			tokenCache.get(cacheKey) ?? (await askSession(() => session.api.accessToken(connectionId), requestId));
		if (access.status !== "connected") {
			tokenCache.forget(cacheKey);
			return { kind: "state", state: access, outbound: undefined };
		}
		// A token is only ever sent to the configured base of its connection's server
		// (checklist: never to a host named in a body, nor to another server's base).
		const server = serverOf(options, access.serverId);
		if (!server) {
			tokenCache.forget(cacheKey);
			return { kind: "state", state: NOT_LISTED, outbound: undefined };
		}
		if (access.fhirBaseUrl.replace(/\/+$/, "") !== server.fhirBaseUrl) {
			log("warn", "session FHIR base differs from its server's configured one", { requestId });
			return { kind: "state", state: { status: "signed_out" }, outbound: undefined };
		}
		tokenCache.set(cacheKey, access);

		const outbound = outboundFhirRequest(request.path, request.query, {
			fhirBaseUrl: server.fhirBaseUrl,
			patient: access.patient,
			practice: access.practice,
			completeSearches: server.completeSearches,
		});
		const send = (token: string) =>
			fetchWithTimeout(
				options.fetch,
				outbound.url,
				{ method: request.method, headers: upstreamRequestHeaders(request.headers, token), redirect: "manual" },
				options.timeoutMs,
				request.signal,
			);

		let upstream: Response;
		try {
			upstream = await send(access.accessToken);
			// Nothing has been passed on yet, so a refresh and a retry are safe: at most
			// MAX_REFRESHES_PER_READ of them, and another only when the session handed out a
			// new token that athena refused as well.
			for (let refreshes = 0; upstream.status === 401 && refreshes < MAX_REFRESHES_PER_READ; refreshes++) {
				await upstream.body?.cancel();
				// Nobody waits for this read any more: a refresh now would only spend the token budget.
				if (request.signal?.aborted) return { kind: "state", state: { status: "unreachable" }, outbound };
				tokenCache.forget(cacheKey);
				const stale = access.accessToken;
				const renewed = await askSession(() => session.api.refreshAfterUnauthorized(stale, connectionId), requestId);
				if (renewed.status !== "connected") return { kind: "state", state: renewed, outbound };
				access = renewed;
				tokenCache.set(cacheKey, access);
				upstream = await send(access.accessToken);
				if (access.accessToken === stale) break;
			}
		} catch (error) {
			if (error instanceof UpstreamTimeout) return { kind: "state", state: { status: "timeout" }, outbound };
			// Given up by whoever asked (an export that has ended): not athena's failure, nothing to log.
			if (request.signal?.aborted) return { kind: "state", state: { status: "unreachable" }, outbound };
			log("warn", "athena unreachable", { requestId, name: error instanceof Error ? error.name : "unknown" });
			return { kind: "state", state: { status: "unreachable" }, outbound };
		}
		if (upstream.status === 401) tokenCache.forget(cacheKey);
		return { kind: "response", response: upstream, outbound, fhirBaseUrl: server.fhirBaseUrl };
	};
}

/** A connection whose server SMART_SERVERS no longer lists: not read, and not the session's end either. */
const NOT_LISTED: ReadState = {
	status: "unavailable",
	code: "server_not_listed",
	message: "This app no longer reads records from this record's server.",
};

/** The configured server a token of `serverId` may be sent to. */
function serverOf(options: UpstreamReaderOptions, serverId: string | undefined): ReadServer | undefined {
	if (serverId === undefined) return { fhirBaseUrl: options.fhirBaseUrl, completeSearches: options.completeSearches };
	return options.listedServer?.(serverId);
}
