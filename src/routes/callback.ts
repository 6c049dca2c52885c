import type { Context } from "hono";
import { setCookie } from "hono/cookie";
import type { AppEnv } from "../app-env";
import { ATHENA_SERVER_ID, type SmartServer, serverById } from "../config";
import type { ConsumeResult, PendingAuthorization } from "../durable/oauth-state";
import { tokenBudget } from "../durable/token-budget";
import { durableCall } from "../durable/unavailable";
import { ehrProfile } from "../ehr-profile";
import { AppError } from "../errors";
import { log } from "../log";
import { launchCookie, signInClients } from "../middleware/sign-in-attempts";
import { budgetedTokenCall } from "../oauth/budgeted-token-call";
import { type AuthorizationServer, serverEndpoints } from "../oauth/discovery";
import { diagnose, type Refusal, sanitisedDescription } from "../oauth/first-contact";
import { verifyIdToken } from "../oauth/id-token";
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
import { SESSION_COOKIE, sessionTag } from "../session/contract";
import { sessionFor, sessionStub } from "../session/lookup";
import {
	type ConnectRecord,
	type ConnectResult,
	MAX_CONNECTIONS,
	SESSION_ABSOLUTE_MS,
} from "../session/session-object";
import { serverClient } from "../signer";

import { cookieBase, param, refused, SIGN_IN_UNAVAILABLE } from "./sign-in-request";

/** Checks a token response against the launch that asked for it: the patient, and the practice it names (athena). */
function acceptedPatient(
	target: SmartServer,
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
	const { practice } = ehrProfile(target.profile).acceptPatient(tokens.patient, pending.practice);
	return { patient: tokens.patient, practice };
}

/** A redeemed code: the tokens athena issued and the client that redeemed them (to hand them back if unused). */
interface Redeemed {
	tokens: TokenSet;
	client: OAuthClient;
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
	target: SmartServer,
	server: AuthorizationServer,
	code: string,
	clients: string[],
): Promise<Redeemed> {
	const config = c.get("config");
	let client: OAuthClient | undefined;
	let codeSent = false;
	try {
		const oauthClient = await serverClient(config, target, config.tokenTimeoutMs);
		client = oauthClient;
		const budget = {
			purpose: "sign_in",
			limit: target.tokenRequestsPerMinute,
			signInShare: config.signInShare,
			clients,
		} as const;
		// Each server's sign-ins and refreshes spend that server's own budget.
		const tokens = await budgetedTokenCall(tokenBudget(c.env, target.id), budget, () => {
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
 * "Connect another record": adds the grant to the session the launch named,
 * which must be the one this browser's cookie names now (a state is bound to
 * the browser, this binds it to the session too). False when that session has
 * ended meanwhile: the caller starts a new one, as any sign-in does.
 */
async function addToSession(c: Context<AppEnv>, connectTo: string, grant: ConnectRecord): Promise<boolean> {
	const session = await sessionFor(c);
	if (session?.idHash !== connectTo) {
		throw refused(
			"connect_session_changed",
			"This record was to be added to a session this browser no longer has. Please connect it again.",
			"session cookie does not name the session the launch named",
		);
	}
	const result = await durableCall(
		async (): Promise<ConnectResult> => sessionStub(c.env, connectTo).addConnection(grant),
		"session_unavailable",
		"Your sign-in worked but could not be saved. Please connect again in a moment.",
	);
	if (result.status === "signed_out") return false;
	if (result.status === "full") {
		throw new AppError({
			code: "connections_full",
			status: 409,
			message: `This session already holds ${MAX_CONNECTIONS} records. Sign out and in again to choose others.`,
			detail: "MAX_CONNECTIONS reached",
		});
	}
	log("info", "record connected", {
		session: sessionTag(connectTo),
		practice: grant.practice,
		added: result.added,
	});
	return true;
}

/**
 * A new session id once a record is added, as after every sign-in (OWASP
 * session fixation): the session moves to the new id's Durable Object and
 * the browser gets the new cookie, so the old value opens nothing. If the
 * move fails, the session stays under its id and the record stays added.
 */
async function renewSessionId(c: Context<AppEnv>, idHash: string): Promise<string> {
	const sessionId = randomToken();
	const newHash = await sha256(sessionId);
	const moved = await sessionStub(c.env, idHash)
		.moveTo(newHash)
		.catch(() => undefined);
	if (!moved) return idHash;
	const maxAge = Math.max(1, Math.floor((moved.absoluteExpiresAt - Date.now()) / 1000));
	setCookie(c, SESSION_COOKIE, sessionId, { ...cookieBase, maxAge });
	c.get("logFields").session = sessionTag(newHash);
	return newHash;
}

/**
 * Phase two: athena has spent the code. Check what it sent and start the
 * session (or add it to the patient's session: "Connect another record");
 * on any failure the grant is handed back rather than left live.
 */
async function startSession(
	c: Context<AppEnv>,
	pending: PendingAuthorization,
	target: SmartServer,
	server: AuthorizationServer,
	redeemed: Redeemed,
): Promise<string> {
	const { tokens, client } = redeemed;
	const handBack = () => c.executionCtx.waitUntil(revokeGrant(client, server.revokeUrl, tokens));
	let accepted: { patient: string; practice: string | undefined };
	try {
		accepted = acceptedPatient(target, tokens, pending);
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
				addClientId: ehrProfile(target.profile).keysNeedClientId,
				issuer: server.issuer,
				clientId: target.clientId,
				nonce: pending.nonce,
			});
		}
	} catch (failure) {
		handBack();
		throw failure;
	}
	const grant = {
		tokens,
		...accepted,
		...(target.id === ATHENA_SERVER_ID ? {} : { serverId: target.id }),
		server: { tokenUrl: server.tokenUrl, revokeUrl: server.revokeUrl, clientId: target.clientId },
	};
	if (pending.connectTo) {
		const connected = await addToSession(c, pending.connectTo, grant).catch((failure: unknown) => {
			handBack();
			throw failure;
		});
		if (connected) return renewSessionId(c, pending.connectTo);
	}
	const previous = await sessionFor(c);
	if (previous) c.executionCtx.waitUntil(previous.api.logout().catch(() => undefined));
	// A new session id at every sign-in (OWASP session fixation).
	const sessionId = randomToken();
	const idHash = await sha256(sessionId);
	try {
		await durableCall(
			() => sessionStub(c.env, idHash).begin({ idHash, ...grant }),
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
		profile: target.profile,
		server: target.id,
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
	target?: SmartServer,
): AppError {
	const config = c.get("config");
	const diagnosis = diagnose({
		...refusal,
		settings: {
			clientId: target?.clientId ?? config.clientId,
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
	const target = serverById(config, pending.serverId);
	if (!target) {
		throw refused(
			"server_unknown",
			"This app no longer connects to that record server. Please choose one of the servers on the home page.",
			"state names a server SMART_SERVERS no longer lists",
		);
	}
	// The server was settled at launch (states from before that fall back to config and discovery).
	const server = pending.server ?? (await serverEndpoints(config, target, fetch));
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
		const redeemed = await redeemCode(c, restoreState, pending, target, server, code, await signInClients(c));
		await startSession(c, pending, target, server, redeemed);
	} catch (failure) {
		if (failure instanceof TokenRefusal)
			throw explained(c, failure, { endpoint: "token", ...failure.refusal }, server.tokenUrl, target);
		if (failure instanceof AppError && failure.code === "id_token_invalid") {
			throw explained(c, failure, { endpoint: "id_token", error: failure.code }, server.tokenUrl, target);
		}
		throw failure;
	}
	c.get("logFields").outcome = "connected";
	// Checked again on the way out: a state stored before a stricter rule still obeys it.
	return c.redirect(safeReturnTo(pending.returnTo) ?? "/", 302);
}
