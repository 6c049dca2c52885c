import type { Context } from "hono";
import { deleteCookie, setCookie } from "hono/cookie";
import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import type { Config } from "../config";
import { type ConsumeResult, type PendingAuthorization, STATE_LIFETIME_MS } from "../durable/oauth-state";
import { tokenBudget } from "../durable/token-budget";
import { durableCall } from "../durable/unavailable";
import { ehrProfile } from "../ehr-profile";
import { AppError } from "../errors";
import { log } from "../log";
import { requireConfig } from "../middleware/require-config";
import { BROWSER_COOKIE, launchCookie, limitSignInAttempts, signInClients } from "../middleware/sign-in-attempts";
import { budgetedTokenCall } from "../oauth/budgeted-token-call";
import { type AuthorizationServer, authorizationServer } from "../oauth/discovery";
import { diagnose, type Refusal, sanitisedDescription } from "../oauth/first-contact";
import { verifyIdToken } from "../oauth/id-token";
import { createPkce } from "../oauth/pkce";
import { safeReturnTo } from "../oauth/return-to";
import {
	exchangeCode,
	type OAuthClient,
	revokeGrant,
	revokeToken,
	TokenRefusal,
	type TokenSet,
	UnusableTokenResponse,
} from "../oauth/token-client";
import { DiagnosedError } from "../pages/outcome";
import { RANDOM_TOKEN_PATTERN, randomToken, sha256 } from "../random";
import { type LogoutResult, SESSION_COOKIE, sessionTag } from "../session/contract";
import { sessionFor, sessionStub } from "../session/lookup";
import { SESSION_ABSOLUTE_MS } from "../session/session-object";
import { athenaClient } from "../signer";

export { BROWSER_COOKIE };

const MAX_PARAM_LENGTH = 2048;
const PRACTICE_PATTERN = /^\d{1,12}$/;

const cookieBase = { path: "/", secure: true, httpOnly: true, sameSite: "Lax" } as const;

function refused(code: string, message: string, detail?: string): AppError {
	return new AppError({ code, status: 400, message, detail });
}

function param(c: Context<AppEnv>, name: string): string | undefined {
	const values = c.req.queries(name);
	if (!values) return undefined;
	if (values.length > 1) throw refused("parameter_repeated", `The ${name} parameter was given more than once.`);
	const value = values[0] ?? "";
	if (value.length > MAX_PARAM_LENGTH) throw refused("parameter_too_long", `The ${name} parameter is too long.`);
	return value;
}

const SIGN_IN_UNAVAILABLE = "Sign-in is not available right now. Please try again in a moment.";
const SESSION_UNAVAILABLE = "Your session could not be reached right now. Please try again in a moment.";

/** Checks a token response against the launch that asked for it: the patient, and the practice it names (athena). */
function acceptedPatient(
	config: Config,
	tokens: TokenSet,
	pending: PendingAuthorization,
): { patient: string; practice: string | undefined } {
	if (!tokens.patient) {
		throw new AppError({
			code: "token_response_invalid",
			status: 502,
			message: "The record server did not say which patient signed in. Please try connecting again.",
			detail: "token response has no patient for launch/patient",
		});
	}
	const { practice } = ehrProfile(config.profile).acceptPatient(tokens.patient, pending.practice);
	return { patient: tokens.patient, practice };
}

export const authRoutes = new Hono<AppEnv>()
	/** Starts the patient's standalone launch: state, PKCE and nonce kept in a Durable Object. */
	.get("/launch", limitSignInAttempts("launch"), requireConfig(), async (c) => {
		const config = c.get("config");
		// Optional: athena's own sign-in asks the patient which record (and practice) to share.
		const practice = ehrProfile(config.profile).knowsPractices
			? param(c, "practice") || config.defaultPractice
			: undefined;
		if (practice !== undefined && !PRACTICE_PATTERN.test(practice)) {
			throw refused("practice_invalid", "A practice ID is a number, e.g. 80000.");
		}
		const rawReturnTo = param(c, "return_to");
		const returnTo = rawReturnTo === undefined || rawReturnTo === "" ? "/" : safeReturnTo(rawReturnTo);
		if (!returnTo) throw refused("return_to_invalid", "return_to must be a path on this site, such as /records.");

		// Reusing the binding lets a patient start sign-in in two tabs at once.
		const browser = launchCookie(c) ?? randomToken();
		const state = randomToken();
		const pkce = await createPkce();
		const nonce = config.scopes.includes("openid") ? randomToken() : undefined;
		// Settled now and kept with the state, so a discovery outage never loses a callback.
		const server = await authorizationServer(config, fetch);
		const now = Date.now();
		const stateObject = c.env.OAUTH_STATE.get(c.env.OAUTH_STATE.idFromName(await sha256(state)));
		const pending: PendingAuthorization = {
			browserHash: await sha256(browser),
			codeVerifier: pkce.verifier,
			nonce,
			practice,
			server,
			returnTo,
			createdAt: now,
			expiresAt: now + STATE_LIFETIME_MS,
		};
		await durableCall(() => stateObject.create(pending), "sign_in_unavailable", SIGN_IN_UNAVAILABLE);
		setCookie(c, BROWSER_COOKIE, browser, { ...cookieBase, maxAge: STATE_LIFETIME_MS / 1000 });

		const authorize = new URL(server.authorizeUrl);
		const query = authorize.searchParams;
		query.set("response_type", "code");
		query.set("client_id", config.clientId);
		query.set("redirect_uri", config.redirectUri);
		query.set("scope", config.scopes.join(" "));
		query.set("state", state);
		query.set("aud", config.athena.fhirBaseUrl);
		query.set("code_challenge", pkce.challenge);
		query.set("code_challenge_method", "S256");
		if (nonce) query.set("nonce", nonce);
		if (ehrProfile(config.profile).consentForOffline && config.scopes.includes("offline_access")) {
			query.set("prompt", "consent");
		}
		if (practice) c.get("logFields").practice = practice;
		c.header("Cache-Control", "no-store");
		return c.redirect(authorize.toString(), 302);
	})
	.get("/session", requireConfig(), async (c) => {
		c.header("Cache-Control", "no-store");
		const session = await sessionFor(c);
		if (!session) return c.json({ status: "signed_out" });
		return c.json(await durableCall(() => session.api.view(), "session_unavailable", SESSION_UNAVAILABLE));
	})
	.post("/logout", requireConfig(), async (c) => {
		const session = await sessionFor(c);
		// A session that cannot be reached is not signed out: keep the cookie so the patient can retry.
		const result: LogoutResult = session
			? await durableCall(() => session.api.logout(), "session_unavailable", SESSION_UNAVAILABLE)
			: { revokedAtAthena: false };
		deleteCookie(c, SESSION_COOKIE, cookieBase);
		c.header("Cache-Control", "no-store");
		if (c.req.header("Accept")?.includes("text/html")) {
			c.header("Referrer-Policy", "no-referrer");
			const home = result.revocationOffered === false ? "/?signed_out=grant_kept" : "/";
			return c.redirect(athenaEndSession(c.get("config"), result.idTokenHint) ?? home, 303);
		}
		// A server without a revocation endpoint is a normal case: our session ended, its grant could not be handed back.
		const notOffered = result.revocationOffered === false ? { serverRevocation: "not_offered" } : {};
		return c.json({ status: "signed_out", revokedAtAthena: result.revokedAtAthena, ...notOffered });
	});

/** A redeemed code: the tokens athena issued and the client that redeemed them (to hand them back if unused). */
interface Redeemed {
	tokens: TokenSet;
	client: OAuthClient;
}

/**
 * Where the browser goes after signing out here: athena's end-session
 * endpoint (OpenID RP-Initiated Logout), which ends the patient's athena
 * browser session and sends them back to our home page, so on a shared
 * computer the next person is asked to sign in. The id_token travels only to
 * athena, in the one place the protocol puts it; without one (or without the
 * setting) the patient lands on our home page.
 */
function athenaEndSession(config: Config, idTokenHint: string | undefined): string | undefined {
	if (!config.athena.logoutUrl || !idTokenHint) return undefined;
	const url = new URL(config.athena.logoutUrl);
	url.searchParams.set("id_token_hint", idTokenHint);
	url.searchParams.set("post_logout_redirect_uri", `${config.publicOrigin}/`);
	return url.toString();
}

/**
 * Phase one of the callback: redeem the code. Until athena has the code (the
 * budget said no, our key could not load, athena was busy or down), any
 * failure puts the state back so the same callback can be retried.
 */
async function redeemCode(
	c: Context<AppEnv>,
	restoreState: () => Promise<unknown>,
	pending: PendingAuthorization,
	server: AuthorizationServer,
	code: string,
	clients: string[],
): Promise<Redeemed> {
	const config = c.get("config");
	let client: OAuthClient | undefined;
	let codeSent = false;
	try {
		const oauthClient = await athenaClient(config, config.tokenTimeoutMs);
		client = oauthClient;
		const budget = {
			purpose: "sign_in",
			limit: config.tokenRequestsPerMinute,
			signInShare: config.signInShare,
			clients,
		} as const;
		const tokens = await budgetedTokenCall(tokenBudget(c.env), budget, () => {
			codeSent = true;
			return exchangeCode(oauthClient, server.tokenUrl, {
				code,
				redirectUri: config.redirectUri,
				codeVerifier: pending.codeVerifier,
			});
		});
		return { tokens, client: oauthClient };
	} catch (failure) {
		const unredeemed =
			!codeSent ||
			(failure instanceof AppError &&
				(failure.code === "athena_rate_limited" || failure.code === "athena_unavailable"));
		if (unredeemed) await restoreState();
		if (failure instanceof UnusableTokenResponse && failure.refreshToken && client) {
			// A grant we cannot use is handed back rather than left live.
			c.executionCtx.waitUntil(
				revokeToken(client, server.revokeUrl, { token: failure.refreshToken, hint: "refresh_token" }),
			);
		}
		throw failure;
	}
}

/**
 * Phase two: athena has spent the code. Check what it sent and start the
 * session; on any failure the grant is handed back rather than left live.
 */
async function startSession(
	c: Context<AppEnv>,
	pending: PendingAuthorization,
	server: AuthorizationServer,
	redeemed: Redeemed,
): Promise<string> {
	const config = c.get("config");
	const { tokens, client } = redeemed;
	const handBack = () => c.executionCtx.waitUntil(revokeGrant(client, server.revokeUrl, tokens));
	let accepted: { patient: string; practice: string | undefined };
	try {
		accepted = acceptedPatient(config, tokens, pending);
		if (tokens.idToken) {
			if (!pending.nonce)
				throw new AppError({
					code: "id_token_invalid",
					status: 502,
					message: "Unexpected sign-in confirmation.",
					detail: "id_token without nonce",
				});
			if (!server.jwksUrl)
				throw new AppError({
					code: "id_token_invalid",
					status: 502,
					message: "The record server's sign-in confirmation could not be checked.",
					detail: "id_token but no jwks_uri configured or discovered",
				});
			await verifyIdToken(tokens.idToken, {
				jwksUrl: server.jwksUrl,
				addClientId: ehrProfile(config.profile).keysNeedClientId,
				issuer: server.issuer,
				clientId: config.clientId,
				nonce: pending.nonce,
			});
		}
	} catch (failure) {
		handBack();
		throw failure;
	}
	const previous = await sessionFor(c);
	if (previous) c.executionCtx.waitUntil(previous.api.logout().catch(() => undefined));
	// A new session id at every sign-in (OWASP session fixation).
	const sessionId = randomToken();
	const idHash = await sha256(sessionId);
	try {
		await durableCall(
			() =>
				sessionStub(c.env, idHash).begin({
					idHash,
					tokens,
					...accepted,
					server: { tokenUrl: server.tokenUrl, revokeUrl: server.revokeUrl },
				}),
			"session_unavailable",
			"Your sign-in worked but could not be saved. Please connect again in a moment.",
		);
	} catch (failure) {
		handBack();
		throw failure;
	}
	setCookie(c, SESSION_COOKIE, sessionId, { ...cookieBase, maxAge: SESSION_ABSOLUTE_MS / 1000 });
	c.get("logFields").session = sessionTag(idHash);
	log("info", "patient connected", {
		session: sessionTag(idHash),
		profile: config.profile,
		practice: accepted.practice,
	});
	return idHash;
}

/**
 * athena refused the sign-in: the cause and what to change go to the log
 * always, and onto the error page in preview and local only (whoever tests
 * there runs the deployment; a patient in production sees the plain message).
 */
function explained(
	c: Context<AppEnv>,
	failure: AppError,
	refusal: Omit<Refusal, "settings">,
	tokenUrl: string | undefined,
): AppError {
	const config = c.get("config");
	const diagnosis = diagnose({
		...refusal,
		settings: {
			clientId: config.clientId,
			redirectUri: config.redirectUri,
			scopes: config.scopes.join(" "),
			tokenUrl: tokenUrl ?? "",
			assertionAudience: config.athena.assertionAudience,
			jwksMaxAgeSeconds: config.jwksMaxAgeSeconds,
			publicJwksUrl: `${config.publicOrigin}/.well-known/jwks.json`,
		},
	});
	c.get("logFields").cause = diagnosis.cause;
	log("warn", "athena refused the sign-in", {
		requestId: c.get("requestId"),
		endpoint: refusal.endpoint,
		error: refusal.error,
		description: refusal.error_description,
		...diagnosis,
	});
	return config.environment === "production" ? failure : new DiagnosedError(failure, diagnosis);
}

/**
 * The redirect URI's handler (routed at the configured REDIRECT_URI's path).
 * Outcomes a patient can cause (denied at consent) are pages, not errors.
 */
export async function callback(c: Context<AppEnv>): Promise<Response> {
	const config = c.get("config");
	c.header("Referrer-Policy", "no-referrer");
	c.header("Cache-Control", "no-store");
	const state = param(c, "state");
	const code = param(c, "code");
	const error = param(c, "error");
	const iss = param(c, "iss");
	if (!state || !RANDOM_TOKEN_PATTERN.test(state)) {
		throw refused(
			"state_invalid",
			"This sign-in link is not valid. Please start connecting again.",
			"state missing or malformed",
		);
	}
	const browser = launchCookie(c);
	if (!browser) {
		throw refused(
			"state_other_browser",
			"This sign-in was started in another browser or its cookie was lost. Please start connecting again here.",
			"launch cookie missing",
		);
	}
	const stateObject = c.env.OAUTH_STATE.get(c.env.OAUTH_STATE.idFromName(await sha256(state)));
	const browserHash = await sha256(browser);
	if (error !== undefined) {
		// Burnt if possible; the state's alarm deletes it anyway, and the patient still learns what happened.
		await stateObject.consume(browserHash).catch(() => undefined);
		if (error === "access_denied") {
			c.get("logFields").outcome = "denied";
			throw new AppError({
				code: "access_denied",
				status: 403,
				message: "You chose not to share your athenahealth record with this app. Nothing was shared.",
				detail: "authorize error access_denied",
			});
		}
		c.get("logFields").outcome = "authorize_error";
		// Okta words the cause (invalid_scope, invalid_request ...) in error_description.
		const refusal = {
			endpoint: "authorize",
			error: error.slice(0, 40),
			error_description: sanitisedDescription(c.req.query("error_description")),
		} as const;
		const failure = new AppError({
			code: "authorize_error",
			status: 400,
			message: "athenahealth could not complete the sign-in. Please try connecting again.",
			detail: `authorize error ${refusal.error}${refusal.error_description ? `: ${refusal.error_description}` : ""}`,
		});
		throw explained(c, failure, refusal, config.athena.tokenUrl);
	}
	if (!code) {
		throw refused("code_missing", "This sign-in link is incomplete. Please start connecting again.", "no code");
	}
	const consumed = await durableCall(
		async (): Promise<ConsumeResult> => stateObject.consume(browserHash),
		"sign_in_unavailable",
		SIGN_IN_UNAVAILABLE,
	);
	if (!consumed.ok) {
		const messages = {
			unknown: "This sign-in link has already been used or is not ours. Please start connecting again.",
			expired: "This sign-in took too long and has expired. Please start connecting again.",
			other_browser: "This sign-in was started in another browser. Please start connecting again here.",
		} as const;
		throw refused(`state_${consumed.reason}`, messages[consumed.reason], `state ${consumed.reason}`);
	}
	const pending = consumed.pending;
	// The server was settled at launch (states from before that fall back to config and discovery).
	const server = pending.server ?? (await authorizationServer(config, fetch));
	// RFC 9207: a callback naming another issuer is a mix-up attack; its state stays spent.
	if (iss !== undefined && iss !== server.issuer) {
		throw refused(
			"issuer_mismatch",
			"This sign-in came back from an unexpected server. Please start connecting again.",
			"iss mismatch",
		);
	}
	const restoreState = () => stateObject.restore(pending).catch(() => undefined);
	try {
		const redeemed = await redeemCode(c, restoreState, pending, server, code, await signInClients(c));
		await startSession(c, pending, server, redeemed);
	} catch (failure) {
		if (failure instanceof TokenRefusal)
			throw explained(c, failure, { endpoint: "token", ...failure.refusal }, server.tokenUrl);
		if (failure instanceof AppError && failure.code === "id_token_invalid") {
			throw explained(c, failure, { endpoint: "id_token", error: failure.code }, server.tokenUrl);
		}
		throw failure;
	}
	c.get("logFields").outcome = "connected";
	// Checked again on the way out: a state stored before a stricter rule still obeys it.
	return c.redirect(safeReturnTo(pending.returnTo) ?? "/", 302);
}
