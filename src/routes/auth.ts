import { deleteCookie, setCookie } from "hono/cookie";
import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import { ATHENA_SERVER_ID, type Config, serverById } from "../config";
import { type PendingAuthorization, STATE_LIFETIME_MS } from "../durable/oauth-state";
import { durableCall } from "../durable/unavailable";
import { ehrProfile } from "../ehr-profile";
import { AppError } from "../errors";
import { requireConfig } from "../middleware/require-config";
import { BROWSER_COOKIE, launchCookie, limitSignInAttempts } from "../middleware/sign-in-attempts";
import { serverEndpoints } from "../oauth/discovery";
import { createPkce } from "../oauth/pkce";
import { safeReturnTo } from "../oauth/return-to";
import { randomToken, sha256 } from "../random";
import { type LogoutResult, SESSION_COOKIE } from "../session/contract";
import { sessionFor } from "../session/lookup";
import {
	cookieBase,
	PRACTICE_PATTERN,
	param,
	refused,
	SESSION_UNAVAILABLE,
	SIGN_IN_UNAVAILABLE,
} from "./sign-in-request";

export { BROWSER_COOKIE };

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

export const authRoutes = new Hono<AppEnv>()
	/**
	 * Starts the patient's standalone launch: state, PKCE and nonce kept in a
	 * Durable Object. `?connect=1` with a session cookie adds the record the
	 * patient picks to that session ("Connect another record"). `?server=`
	 * names a SMART_SERVERS entry to connect instead of the environment's athena.
	 */
	.get("/launch", limitSignInAttempts("launch"), requireConfig(), async (c) => {
		const config = c.get("config");
		const serverId = param(c, "server") || ATHENA_SERVER_ID;
		const target = serverById(config, serverId);
		if (!target) {
			throw refused(
				"server_unknown",
				"This app does not know that record server. Please choose one of the servers on the home page.",
				"server parameter names no configured server",
			);
		}
		const profile = ehrProfile(target.profile);
		// Optional: athena's own sign-in asks the patient which record (and practice) to share.
		const practice = profile.knowsPractices ? param(c, "practice") || config.defaultPractice : undefined;
		if (practice !== undefined && !PRACTICE_PATTERN.test(practice)) {
			throw refused("practice_invalid", "A practice ID is a number, e.g. 80000.");
		}
		const rawReturnTo = param(c, "return_to");
		const returnTo = rawReturnTo === undefined || rawReturnTo === "" ? "/" : safeReturnTo(rawReturnTo);
		if (!returnTo) throw refused("return_to_invalid", "return_to must be a path on this site, such as /records.");

		// "Connect another record": the callback adds the grant to this browser's session instead of replacing it.
		const connecting = param(c, "connect") === "1";
		// Only from our own page (or typed in): a link on another site must not lead a signed-in
		// patient, whose athena session skips the login, to add a record to their session.
		if (connecting && !["same-origin", "none", undefined].includes(c.req.header("Sec-Fetch-Site"))) {
			throw new AppError({
				code: "cross_site_refused",
				status: 403,
				message: "Connect another record from your record page in this app.",
				detail: `connect from Sec-Fetch-Site ${c.req.header("Sec-Fetch-Site")}`,
			});
		}
		const connectTo = connecting ? (await sessionFor(c))?.idHash : undefined;
		// Reusing the binding lets a patient start sign-in in two tabs at once.
		const browser = launchCookie(c) ?? randomToken();
		const state = randomToken();
		const pkce = await createPkce();
		const nonce = config.scopes.includes("openid") ? randomToken() : undefined;
		// Settled now and kept with the state, so a discovery outage never loses a callback.
		const server = await serverEndpoints(config, target, fetch);
		const now = Date.now();
		const stateObject = c.env.OAUTH_STATE.get(c.env.OAUTH_STATE.idFromName(await sha256(state)));
		const pending: PendingAuthorization = {
			browserHash: await sha256(browser),
			codeVerifier: pkce.verifier,
			nonce,
			practice,
			server,
			...(target.id === ATHENA_SERVER_ID ? {} : { serverId: target.id }),
			returnTo,
			connectTo,
			createdAt: now,
			expiresAt: now + STATE_LIFETIME_MS,
		};
		await durableCall(() => stateObject.create(pending), "sign_in_unavailable", SIGN_IN_UNAVAILABLE);
		setCookie(c, BROWSER_COOKIE, browser, { ...cookieBase, maxAge: STATE_LIFETIME_MS / 1000 });

		const authorize = new URL(server.authorizeUrl);
		const query = authorize.searchParams;
		query.set("response_type", "code");
		query.set("client_id", target.clientId);
		query.set("redirect_uri", config.redirectUri);
		query.set("scope", config.scopes.join(" "));
		query.set("state", state);
		query.set("aud", target.fhirBaseUrl);
		query.set("code_challenge", pkce.challenge);
		query.set("code_challenge_method", "S256");
		if (nonce) query.set("nonce", nonce);
		if (profile.consentForOffline && config.scopes.includes("offline_access")) {
			query.set("prompt", "consent");
		}
		if (practice) c.get("logFields").practice = practice;
		if (target.id !== ATHENA_SERVER_ID) c.get("logFields").server = target.id;
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
