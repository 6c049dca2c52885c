import type { JWK } from "jose";

/*
 * What the sandbox's state object (sandbox-state.ts) stores and answers.
 * Storage keys and lifetimes are listed in ../README.md ("Storage").
 */

export interface PendingAuthorization {
	clientId: string;
	redirectUri: string;
	scope: string[];
	state: string;
	codeChallenge: string;
	nonce?: string;
	/** The username, once signed in (by password, or by the browser's athena session). */
	login?: string;
	/** The record picked on "Select a health record"; consent is refused before that. */
	patient?: string;
	expiresAt: number;
}

/**
 * athena's (Okta's) browser session: after a password sign-in, a new
 * authorize request in the same browser skips the login page until
 * `/oauth2/v1/logout` ends it or it expires.
 */
export interface BrowserSession {
	login: string;
	createdAt: number;
	expiresAt: number;
}

export interface CodeRecord {
	clientId: string;
	redirectUri: string;
	scope: string[];
	codeChallenge: string;
	nonce?: string;
	patient: string;
	expiresAt: number;
	/** Set on first presentation; a second presentation revokes the grant (RFC 6749 §4.1.2). */
	usedAt?: number;
	grantId?: string;
}

export interface Grant {
	id: string;
	clientId: string;
	patient: string;
	scope: string[];
	nonce?: string;
	revoked: boolean;
	createdAt: number;
	/** SHA-256 of the grant's live refresh token (one chain per grant). */
	currentRefresh?: string;
	/** SHA-256 of the one rotated-out refresh token still usable within the grace period. */
	previousRefresh?: string;
}

export interface AccessTokenRecord {
	grantId: string;
	clientId: string;
	patient: string;
	scope: string[];
	issuedAt: number;
	expiresAt: number;
}

export interface RefreshTokenRecord {
	grantId: string;
	clientId: string;
	patient: string;
	scope: string[];
	issuedAt: number;
	/** Set when rotated out; kept (as the grant's previous token) only while a grace period runs. */
	rotatedAt?: number;
	/** rotatedAt + the grace at rotation time, for the sweep. */
	expiresAt?: number;
}

export type RefreshResult =
	| { status: "ok"; grant: Grant; tokens: IssuedTokens; viaGrace: boolean }
	| { status: "invalid_grant" }
	| { status: "invalid_scope"; extra: string[] };

export interface IssuedTokens {
	accessToken: string;
	refreshToken?: string;
	expiresIn: number;
}

export type FaultTarget = "token" | "fhir";

export interface Fault {
	/** Answer with this HTTP status instead of doing the work. */
	status?: number;
	/** Wait this long before answering. */
	delayMs?: number;
	/** token only: what to break in an otherwise normal answer. */
	response?: "html" | "missing_patient" | "missing_access_token";
	/** token only: answer this RFC 6749 error (Okta's words in `description`) instead of doing the work. */
	oauthError?: string;
	description?: string;
	/** fhir only: end the body with an error after this many bytes. */
	cutAfterBytes?: number;
	/** Apply to the next N requests only; absent means until cleared. */
	times?: number;
}

export interface ReceivedAssertion {
	at: number;
	endpoint: string;
	header: unknown;
	claims: unknown;
	accepted: boolean;
	error?: string;
}

export interface ReceivedTokenCall {
	at: number;
	grantType: string | null;
	status: number;
	error?: string;
}

/** One `/oauth2/v1/logout` request, accepted or refused. */
export interface ReceivedLogout {
	at: number;
	/** Whether the request carried a browser session that this logout ended. */
	sessionEnded: boolean;
	postLogoutRedirectUri?: string;
	/** Set when the logout was refused (bad hint, unregistered URI). */
	error?: string;
}

export interface Received {
	assertions: ReceivedAssertion[];
	tokenCalls: ReceivedTokenCall[];
	logouts: ReceivedLogout[];
	counts: Record<string, number>;
}

export interface JwksCacheEntry {
	jwks: unknown;
	fetchedAt: number;
	expiresAt: number;
}

export interface SigningKeyPair {
	privateJwk: JWK;
	publicJwk: JWK;
}

/** `GET /_sandbox/clock`: the sandbox's time (epoch ms) and whether a test froze it. */
export interface ClockReading {
	now: number;
	frozen: boolean;
}

/** What the stateless code asks the object to log; the object stamps `at` with its own clock. */
export interface ReceivedEntry {
	count?: string;
	assertion?: Omit<ReceivedAssertion, "at">;
	tokenCall?: Omit<ReceivedTokenCall, "at">;
	logout?: Omit<ReceivedLogout, "at">;
}
