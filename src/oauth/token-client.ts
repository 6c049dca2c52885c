import * as z from "zod/mini";
import { AppError, type AppErrorOptions } from "../errors";
import type { SigningKey } from "../keys/signing-key";
import { CLIENT_ASSERTION_TYPE, signClientAssertion } from "./client-assertion";
import { sanitisedDescription } from "./first-contact";

/** How this worker authenticates to athena's OAuth endpoints (token, revoke). */
export interface OAuthClient {
	clientId: string;
	key: SigningKey;
	fetch: typeof fetch;
	/** No response headers within this long: athena is treated as unavailable. */
	timeoutMs?: number;
	now?: () => number;
	/** The client assertion's `aud` on token calls, when not the token URL itself (athena's expectation is unknown). */
	tokenAudience?: string | undefined;
}

/** A validated token response. */
export interface TokenSet {
	accessToken: string;
	/** Epoch milliseconds. */
	expiresAt: number;
	/** The scopes athena granted, which may differ from the request. */
	scope: string[];
	patient: string | undefined;
	refreshToken: string | undefined;
	idToken: string | undefined;
}

/** Used when the client names no timeout; the worker's comes from `TOKEN_TIMEOUT_MS` in config. */
const DEFAULT_TIMEOUT_MS = 10_000;
const MAX_RESPONSE_BYTES = 64 * 1024;

const TokenResponse = z.object({
	access_token: z.string().check(z.minLength(1)),
	token_type: z.string(),
	expires_in: z.optional(z.union([z.number(), z.string().check(z.regex(/^\d+$/))])),
	scope: z.optional(z.string()),
	patient: z.optional(z.string().check(z.minLength(1))),
	refresh_token: z.optional(z.string().check(z.minLength(1))),
	id_token: z.optional(z.string().check(z.minLength(1))),
});

/**
 * A 2xx token response this worker cannot use (no access_token, not Bearer,
 * ...). athena may still have rotated the refresh token in it: the old one no
 * longer works, so the caller keeps (or revokes) the one carried here rather
 * than lose the grant.
 */
export class UnusableTokenResponse extends AppError {
	readonly refreshToken: string | undefined;

	constructor(detail: string, refreshToken: string | undefined) {
		super({
			code: "token_response_invalid",
			status: 502,
			message: "athenahealth sent an answer this app could not understand. Please try again.",
			detail,
		});
		this.name = "UnusableTokenResponse";
		this.refreshToken = refreshToken;
	}
}

function rotatedRefreshToken(json: unknown): string | undefined {
	if (typeof json !== "object" || json === null) return undefined;
	const value = (json as Record<string, unknown>).refresh_token;
	return typeof value === "string" && value.length > 0 ? value : undefined;
}

/** athena's refusal of a token request, with its RFC 6749 §5.2 error (description sanitised) for diagnosis. */
export class TokenRefusal extends AppError {
	readonly refusal: { error: string; error_description: string | undefined; status: number };

	constructor(refusal: TokenRefusal["refusal"], options: AppErrorOptions) {
		super(options);
		this.refusal = refusal;
	}
}

const ErrorResponse = z.object({ error: z.string(), error_description: z.optional(z.string()) });

function retryAfter(response: Response, now: number): number {
	const header = response.headers.get("Retry-After");
	if (header && /^\d+$/.test(header)) return Math.max(1, Number(header));
	const date = header ? Date.parse(header) : Number.NaN;
	if (!Number.isNaN(date)) return Math.max(1, Math.ceil((date - now) / 1000));
	// athena's rule: no new tokens for the rest of the current minute.
	return Math.max(1, 60 - Math.floor((now / 1000) % 60));
}

async function readJson(response: Response): Promise<unknown> {
	const text = await response.text();
	if (text.length > MAX_RESPONSE_BYTES) return undefined;
	try {
		return JSON.parse(text);
	} catch {
		return undefined;
	}
}

/** Posts a client-authenticated form to an athena OAuth endpoint. */
async function postWithAssertion(
	client: OAuthClient,
	url: string,
	form: Record<string, string>,
	audience = url,
): Promise<Response> {
	const now = client.now?.() ?? Date.now();
	const body = new URLSearchParams(form);
	// Sent on every call (code, refresh, revoke): athena authenticates each one.
	// client_id beside the assertion is allowed (RFC 7521 §4.2) and names the app
	// even where a server reads it before the assertion.
	body.set("client_id", client.clientId);
	body.set("client_assertion_type", CLIENT_ASSERTION_TYPE);
	body.set(
		"client_assertion",
		await signClientAssertion({ key: client.key, clientId: client.clientId, audience, now }),
	);
	try {
		return await client.fetch(url, {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
			body,
			signal: AbortSignal.timeout(client.timeoutMs ?? DEFAULT_TIMEOUT_MS),
			redirect: "manual",
		});
	} catch (error) {
		const timedOut = error instanceof Error && (error.name === "TimeoutError" || error.name === "AbortError");
		throw new AppError({
			code: "athena_unavailable",
			status: 503,
			message: "athenahealth did not answer in time. Please try again in a moment.",
			detail: timedOut ? `no answer from ${url} in time` : `network error calling ${url}`,
			retryAfterSeconds: 30,
		});
	}
}

async function tokenRequest(client: OAuthClient, tokenUrl: string, form: Record<string, string>): Promise<TokenSet> {
	const started = client.now?.() ?? Date.now();
	const response = await postWithAssertion(client, tokenUrl, form, client.tokenAudience ?? tokenUrl);
	if (response.status === 429) {
		await response.body?.cancel();
		throw new AppError({
			code: "athena_rate_limited",
			status: 503,
			message: "athenahealth is limiting sign-ins right now. Please try again shortly.",
			detail: "token endpoint answered 429",
			retryAfterSeconds: retryAfter(response, started),
		});
	}
	if (response.status >= 500) {
		await response.body?.cancel();
		throw new AppError({
			code: "athena_unavailable",
			status: 503,
			message: "athenahealth is unavailable right now. Please try again in a moment.",
			detail: `token endpoint answered ${response.status}`,
			retryAfterSeconds: 30,
		});
	}
	const json = await readJson(response);
	if (!response.ok) {
		const error = z.safeParse(ErrorResponse, json);
		const code = error.success ? error.data.error.slice(0, 40) : `http_${response.status}`;
		const refusal = {
			error: code,
			error_description: sanitisedDescription(error.success ? error.data.error_description : undefined),
			status: response.status,
		};
		// athena's own words reach the log (detail), never the page: the callback diagnoses them.
		const detail = `token endpoint error ${code} (HTTP ${response.status})${refusal.error_description ? `: ${refusal.error_description}` : ""}`;
		if (code === "invalid_grant") {
			throw new TokenRefusal(refusal, {
				code: "invalid_grant",
				status: 401,
				message: "athenahealth no longer accepts this sign-in.",
				detail,
			});
		}
		if (code === "invalid_client") {
			throw new TokenRefusal(refusal, {
				code: "athena_rejected_client",
				status: 502,
				message:
					"athenahealth did not accept this app's credentials. The operator should check the client ID and published keys.",
				detail,
			});
		}
		throw new TokenRefusal(refusal, {
			code: "token_request_refused",
			status: 502,
			message: "athenahealth refused the sign-in request.",
			detail,
		});
	}
	const parsed = z.safeParse(TokenResponse, json);
	if (!parsed.success) {
		throw new UnusableTokenResponse(
			json === undefined
				? `token response is not JSON (content-type ${response.headers.get("Content-Type") ?? "none"})`
				: `token response invalid at ${parsed.error.issues.map((i) => i.path.join(".")).join(", ")}`,
			rotatedRefreshToken(json),
		);
	}
	const data = parsed.data;
	if (data.token_type.toLowerCase() !== "bearer") {
		throw new UnusableTokenResponse(`token_type ${data.token_type.slice(0, 20)} is not Bearer`, data.refresh_token);
	}
	// athena access tokens last an hour; a missing expires_in is read as that.
	const expiresIn = data.expires_in === undefined ? 3600 : Number(data.expires_in);
	return {
		accessToken: data.access_token,
		expiresAt: started + expiresIn * 1000,
		scope: (data.scope ?? form.scope ?? "").split(/\s+/).filter(Boolean),
		patient: data.patient,
		refreshToken: data.refresh_token,
		idToken: data.id_token,
	};
}

/**
 * Redeems an authorization code (RFC 6749 §4.1.3) with PKCE and a client assertion.
 *
 * @example
 * const tokens = await exchangeCode(client, config.athena.tokenUrl, { code, redirectUri, codeVerifier });
 */
export function exchangeCode(
	client: OAuthClient,
	tokenUrl: string,
	input: { code: string; redirectUri: string; codeVerifier: string },
): Promise<TokenSet> {
	return tokenRequest(client, tokenUrl, {
		grant_type: "authorization_code",
		code: input.code,
		redirect_uri: input.redirectUri,
		code_verifier: input.codeVerifier,
	});
}

/**
 * Refreshes (RFC 6749 §6). athena reportedly requires `scope` on refresh, so
 * the granted scopes are always sent.
 */
export function refreshTokens(
	client: OAuthClient,
	tokenUrl: string,
	input: { refreshToken: string; scope: string[] },
): Promise<TokenSet> {
	return tokenRequest(client, tokenUrl, {
		grant_type: "refresh_token",
		refresh_token: input.refreshToken,
		scope: input.scope.join(" "),
	});
}

/** Revokes a token (RFC 7009). Resolves to whether the server confirmed it; false when it has no revocation endpoint. */
export async function revokeToken(
	client: OAuthClient,
	revokeUrl: string | undefined,
	input: { token: string; hint: "refresh_token" | "access_token" },
): Promise<boolean> {
	// A server without a revocation endpoint (allowed by SMART): nothing to hand back to.
	if (!revokeUrl) return false;
	try {
		const response = await postWithAssertion(client, revokeUrl, { token: input.token, token_type_hint: input.hint });
		await response.body?.cancel();
		return response.ok;
	} catch {
		return false;
	}
}

/**
 * Hands a grant back to athena: the refresh token when there is one (which
 * ends the grant), else the access token.
 *
 * @example
 * await revokeGrant(client, config.athena.revokeUrl, tokens);
 */
export function revokeGrant(
	client: OAuthClient,
	revokeUrl: string | undefined,
	tokens: { accessToken: string; refreshToken?: string | undefined },
): Promise<boolean> {
	return tokens.refreshToken
		? revokeToken(client, revokeUrl, { token: tokens.refreshToken, hint: "refresh_token" })
		: revokeToken(client, revokeUrl, { token: tokens.accessToken, hint: "access_token" });
}
