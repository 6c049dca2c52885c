/**
 * What the rest of the worker may ask of a patient's session. The Session
 * Durable Object (src/session/session-object.ts) implements it; the FHIR proxy
 * and the pages use only this, never the tokens' storage.
 */

import { base64url } from "jose";
import { toHex } from "../random";

/** Name of the session cookie: `__Host-` pins it to this origin, path `/`, Secure. */
export const SESSION_COOKIE = "__Host-athena_session";

/**
 * The short form of a session's id hash that logs and counters use: its
 * first 8 bytes in hex, enough to tell sessions apart, and (hex) never
 * containing a JWT's `eyJ` by chance.
 */
export function sessionTag(idHash: string): string {
	return toHex(base64url.decode(idHash.slice(0, 12)).slice(0, 8));
}

/** Refresh when the access token has less than this left: a minute covers a slow refresh and clock skew with athena. */
export const REFRESH_MARGIN_MS = 60_000;

/** The answer to "give me a usable access token for this session". */
export type AccessResult =
	| {
			status: "connected";
			accessToken: string;
			/** Epoch milliseconds. */
			expiresAt: number;
			/** athena patient ID, e.g. `a-80000.E-14545`. */
			patient: string;
			/** athena: the practice ID, digits, e.g. `80000`; other servers: none. */
			practice: string | undefined;
			/** The FHIR base the token was issued for. */
			fhirBaseUrl: string;
			/** The SMART_SERVERS id of the connection's server; absent: the environment's athena. */
			serverId?: string | undefined;
	  }
	/** The patient or practice revoked access (refresh said invalid_grant): reconnect. */
	| { status: "revoked" }
	/** The session has no connection of that id (another session's, or never issued). */
	| { status: "unknown_connection" }
	/** No session, expired (idle or absolute) or logged out. */
	| { status: "signed_out" }
	/** athena or our token budget cannot serve now; nothing was lost, retry later. */
	| { status: "unavailable"; code: string; message: string; retryAfterSeconds?: number };

/**
 * A connection's state. `revoked`: the server ended the grant (refresh said
 * invalid_grant), or, in a session with other connections, the grant can no
 * longer be refreshed (no refresh token); either way the patient connects it again.
 */
export type ConnectionStatus = "connected" | "revoked";

/** Connection ids: 8 characters, URL-safe (new ones 4 random bytes in hex; unique within a session; the session cookie guards them). */
export const CONNECTION_ID_PATTERN = /^[A-Za-z0-9_-]{8}$/;

/** One connected record as `GET /session` lists it: never a token. */
export interface ConnectionView {
	id: string;
	status: ConnectionStatus;
	/** The server's patient id, e.g. athena's `a-80000.E-14545`. */
	patient: string;
	/** athena: the practice ID; other servers: none. */
	practice: string | undefined;
	/** Who holds the record: "athenahealth", a listed server's name, or another server's host. */
	server: string;
	/** The SMART_SERVERS id of its server; absent for the environment's athena. */
	serverId?: string;
	scopes: string[];
	/** The resource types those scopes let the app read (SMART v1 or v2), or "all" for a wildcard. */
	reads: string[] | "all";
	/** Where the app reads this connection through the proxy: `/fhir/{id}/r4`. */
	fhirBase: string;
	/** Epoch milliseconds; connected connections only. */
	accessExpiresAt?: number;
}

/**
 * What `GET /session` shows: never a token. The top-level fields describe the
 * first connection (the one `/fhir/r4` serves, as before sessions held
 * several); `connections` lists them all, the first one first.
 */
export interface SessionView {
	status: ConnectionStatus | "signed_out";
	patient?: string;
	practice?: string | undefined;
	scopes?: string[];
	/** The resource types those scopes let the app read (SMART v1 or v2), or "all" for a wildcard. */
	reads?: string[] | "all";
	/** Epoch milliseconds. */
	accessExpiresAt?: number;
	connections?: ConnectionView[];
}

/** What ending a session did, and what ending the patient's athena browser session needs. */
export interface LogoutResult {
	revokedAtAthena: boolean;
	/** false when the server offers no revocation endpoint: our session ended, the grant there could not be handed back. */
	revocationOffered?: boolean;
	/** athena's id_token for this sign-in, for its end-session endpoint's `id_token_hint`; never shown to anyone else. */
	idTokenHint?: string | undefined;
}

/** The RPC surface of a session's Durable Object. */
export interface SessionApi {
	/**
	 * A token of connection `connectionId` (the first connection when omitted)
	 * valid for at least REFRESH_MARGIN_MS, refreshing first if needed
	 * (single-flight per connection).
	 */
	accessToken(connectionId?: string): Promise<AccessResult>;
	/**
	 * athena answered 401 to `staleAccessToken` of connection `connectionId`
	 * (the first when omitted): refresh that connection once, unless another
	 * caller already replaced that token, then return the current one.
	 */
	refreshAfterUnauthorized(staleAccessToken: string, connectionId?: string): Promise<AccessResult>;
	view(): Promise<SessionView>;
	/** Revokes at athena (best effort), then deletes the session. */
	logout(): Promise<LogoutResult>;
}
