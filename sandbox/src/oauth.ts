import { type Context, Hono } from "hono";
import { getCookie } from "hono/cookie";
import { compactVerify, importJWK, SignJWT } from "jose";
import { CLIENT_ASSERTION_TYPE, decodeAssertion, verifyClientAssertion } from "./assertion";
import { clientJwks } from "./client-jwks";
import { type SandboxConfig, sandboxUrls } from "./config";
import { type AppEnv, effectiveConfig, type StateStub, sleep, stateStub } from "./context";
import type { SandboxEnv } from "./env";
import { OAuthError, oauthErrorResponse } from "./errors";
import { consentPage, errorPage, htmlFaultPage, recordPickerPage, signedOutPage, signInPage } from "./pages";
import type { Grant, IssuedTokens, PendingAuthorization } from "./records";
import { findLogin, findRecord, recordsFor } from "./users";

/** Pending sign-ins expire like an abandoned Okta session. */
const PENDING_TTL_MS = 10 * 60_000;
/** Codes are short-lived (RFC 6749 §4.1.2 recommends at most 10 minutes; Okta uses 60 s). */
const CODE_TTL_MS = 90_000;
const ID_TOKEN_TTL_SECONDS = 3600;
/** Okta's default idle lifetime of a sign-in session is 2 hours; the sandbox counts it from the sign-in. */
const BROWSER_SESSION_TTL_MS = 2 * 60 * 60_000;
/**
 * athena's browser session cookie, on the sandbox's origin. Scoped to /oauth2:
 * cookies ignore ports, so on localhost the worker on :3000 would otherwise
 * receive it too.
 */
const SESSION_COOKIE = "athena_sandbox_sid";
/** RFC 7636 §4.1: 43 to 128 unreserved characters. */
const VERIFIER_PATTERN = /^[A-Za-z0-9\-._~]{43,128}$/;

export const oauth = new Hono<AppEnv>();

function redirectWith(redirectUri: string, params: Record<string, string | undefined>): Response {
	const url = new URL(redirectUri);
	for (const [name, value] of Object.entries(params)) {
		if (value !== undefined) url.searchParams.set(name, value);
	}
	return new Response(null, {
		status: 302,
		headers: { Location: url.toString(), "Cache-Control": "no-store" },
	});
}

async function sha256Base64url(text: string): Promise<string> {
	const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
	let binary = "";
	for (const b of digest) binary += String.fromCharCode(b);
	return btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "");
}

oauth.get("/v1/authorize", async (c) => {
	const stub = stateStub(c.env);
	await stub.record({ count: "authorize" });
	const config = await effectiveConfig(c.env, stub);
	const urls = sandboxUrls(c.req.url);
	const q = (name: string) => c.req.query(name);

	// Until client_id and redirect_uri check out, nothing may be sent to the
	// redirect_uri: the error is shown here (RFC 6749 §4.1.2.1).
	const clientId = q("client_id");
	if (!clientId) return errorPage("The request has no client_id.");
	if (clientId !== config.clientId) return errorPage("The client_id is not registered.");
	const redirectUri = q("redirect_uri");
	if (!redirectUri) return errorPage("The request has no redirect_uri.");
	if (!config.redirectUris.includes(redirectUri)) {
		// Okta's words; athena shows its own page and never redirects (exact match required).
		return errorPage("The 'redirect_uri' parameter must be a Login redirect URI in the client app settings");
	}

	const state = q("state");
	const fail = (error: string, description: string) =>
		redirectWith(redirectUri, {
			error,
			error_description: description,
			state,
			iss: config.issuer,
		});
	if (q("response_type") !== "code") return fail("unsupported_response_type", "response_type must be code");
	// Okta refuses a request without state; the client's CSRF defence depends on it.
	if (!state) return fail("invalid_request", "state is required");
	const scope = (q("scope") ?? "").split(" ").filter(Boolean);
	if (scope.length === 0) return fail("invalid_scope", "scope is required");
	// athena (reportedly): one scope outside the registration fails the whole request.
	const unknown = scope.filter((s) => !config.allowedScopes.has(s));
	// Okta's description names no scope: the client has to know what it asked for.
	if (unknown.length > 0)
		return fail("invalid_scope", "One or more scopes are not configured for the authorization server resource.");
	if (q("aud") !== urls.fhirBase) return fail("invalid_request", `aud must be the FHIR base ${urls.fhirBase}`);
	const codeChallenge = q("code_challenge");
	const method = q("code_challenge_method");
	if (!codeChallenge) return fail("invalid_request", "PKCE code_challenge is required");
	if (method !== "S256") return fail("invalid_request", "code_challenge_method must be S256");
	if (!/^[A-Za-z0-9_-]{43}$/.test(codeChallenge)) {
		return fail("invalid_request", "code_challenge must be a base64url SHA-256 digest");
	}
	const nonce = q("nonce");
	// athena's sign-in widget reuses the browser's athena session: no password
	// again until /oauth2/v1/logout ends it (shared/athena-observed.md).
	const cookie = getCookie(c, SESSION_COOKIE);
	const session = cookie ? await stub.browserSession(cookie) : undefined;
	const requestId = await stub.createPending(
		{
			clientId,
			redirectUri,
			scope,
			state,
			codeChallenge,
			...(nonce ? { nonce } : {}),
			...(session ? { login: session.login } : {}),
		},
		PENDING_TTL_MS,
	);
	if (session) {
		await stub.record({ count: "sessionReused" });
		return recordPickerPage(requestId, recordsFor(session.login));
	}
	return signInPage(requestId);
});

const EXPIRED_REQUEST = "This sign-in request has expired or was already used. Start again from the app.";

oauth.post("/v1/authorize/signin", async (c) => {
	const stub = stateStub(c.env);
	const form = await c.req.formData();
	const requestId = String(form.get("request") ?? "");
	if (!(await stub.getPending(requestId))) return errorPage(EXPIRED_REQUEST);
	const login = findLogin(String(form.get("username") ?? ""));
	if (!login || login.password !== String(form.get("password") ?? "")) {
		return signInPage(requestId, "The username or password is not correct.", 401);
	}
	await stub.signInPending(requestId, login.username);
	const cookie = await stub.startBrowserSession(login.username, BROWSER_SESSION_TTL_MS);
	await stub.record({ count: "passwordSignIn" });
	// athena shows the picker even when the login opens one record only.
	const response = recordPickerPage(requestId, recordsFor(login.username));
	response.headers.append("Set-Cookie", sessionCookie(c.req.url, cookie, BROWSER_SESSION_TTL_MS / 1000));
	return response;
});

/** `Secure` only over https: the local sandbox is plain http. */
function sessionCookie(requestUrl: string, value: string, maxAgeSeconds: number): string {
	const secure = new URL(requestUrl).protocol === "https:" ? "; Secure" : "";
	return `${SESSION_COOKIE}=${value}; Path=/oauth2; HttpOnly; SameSite=Lax; Max-Age=${maxAgeSeconds}${secure}`;
}

/** The picked record, if it is one the signed-in login may open. */
function pickedRecord(pending: PendingAuthorization, patient: string) {
	const record = findRecord(patient);
	return record && pending.login && recordsFor(pending.login).includes(record) ? record : undefined;
}

oauth.post("/v1/authorize/select", async (c) => {
	const stub = stateStub(c.env);
	const form = await c.req.formData();
	const requestId = String(form.get("request") ?? "");
	const pending = await stub.getPending(requestId);
	if (!pending) return errorPage(EXPIRED_REQUEST);
	if (!pending.login) return errorPage("Sign in before choosing a health record.");
	const record = pickedRecord(pending, String(form.get("record") ?? ""));
	if (!record) {
		return recordPickerPage(requestId, recordsFor(pending.login), "Choose one of the health records listed.", 400);
	}
	await stub.selectRecord(requestId, record.patient);
	return consentPage(requestId, record, pending.scope);
});

oauth.post("/v1/authorize/consent", async (c) => {
	const stub = stateStub(c.env);
	const { issuer } = await effectiveConfig(c.env, stub);
	const form = await c.req.formData();
	const allow = form.get("decision") === "allow";
	const decided = await stub.decidePending(String(form.get("request") ?? ""), allow, CODE_TTL_MS);
	if (!decided) return errorPage("This sign-in request has expired or was already answered. Start again from the app.");
	const { pending, code } = decided;
	// RFC 9207: iss on every authorization response, success or error.
	if (!code)
		return redirectWith(pending.redirectUri, {
			error: "access_denied",
			state: pending.state,
			iss: issuer,
		});
	return redirectWith(pending.redirectUri, {
		code,
		state: pending.state,
		iss: issuer,
	});
});

interface ClientAuthContext {
	env: SandboxEnv;
	stub: StateStub;
	config: SandboxConfig;
	form: FormData;
	headers: Headers;
	endpoint: string;
	audiences: readonly string[];
	/** The sandbox's time for this request (epoch ms), from the state object's clock. */
	now: number;
}

/** private_key_jwt is the only client authentication athena accepts for this app type. */
async function authenticateClient(ctx: ClientAuthContext): Promise<void> {
	const { form, config, stub } = ctx;
	if (ctx.headers.has("Authorization") || form.has("client_secret")) {
		throw new OAuthError("invalid_client", "Only private_key_jwt client authentication is accepted", 401);
	}
	if (form.get("client_assertion_type") !== CLIENT_ASSERTION_TYPE) {
		throw new OAuthError("invalid_client", `client_assertion_type must be ${CLIENT_ASSERTION_TYPE}`, 401);
	}
	const assertion = form.get("client_assertion");
	if (typeof assertion !== "string" || assertion === "") {
		throw new OAuthError("invalid_client", "client_assertion is required", 401);
	}
	const clientIdParam = form.get("client_id");
	const decoded = decodeAssertion(assertion);
	const record = (accepted: boolean, error?: string) =>
		stub.record({
			assertion: {
				endpoint: ctx.endpoint,
				header: decoded.header,
				claims: decoded.claims,
				accepted,
				...(error ? { error } : {}),
			},
		});
	try {
		if (clientIdParam !== null && clientIdParam !== config.clientId) {
			throw new OAuthError("invalid_client", "Invalid value for 'client_id' parameter.", 401);
		}
		const client = ctx.env.CLIENT;
		await verifyClientAssertion({
			assertion,
			clientId: config.clientId,
			jwksUrl: config.jwksUrl,
			audiences: ctx.audiences,
			nowSeconds: Math.floor(ctx.now / 1000),
			jwks: () =>
				clientJwks({
					url: config.jwksUrl,
					fetch: (url) => (client ? client.fetch(url) : fetch(url)),
					cache: {
						get: (url) => stub.getJwksCache(url),
						put: (url, entry) => stub.putJwksCache(url, entry),
					},
					now: ctx.now,
					onFetch: () => stub.record({ count: "jwksFetch" }),
				}),
			consumeJti: (jti, expiresAt) => stub.consumeJti(config.clientId, jti, expiresAt),
		});
		await record(true);
	} catch (error) {
		await record(false, error instanceof OAuthError ? error.description : "unexpected error");
		throw error;
	}
}

async function signIdToken(
	stub: StateStub,
	issuer: string,
	fhirBase: string,
	grant: Grant,
	nonce: string | undefined,
	nowMs: number,
): Promise<string> {
	const { privateJwk } = await stub.getSigningKey();
	const key = await importJWK(privateJwk, "RS256");
	const now = Math.floor(nowMs / 1000);
	return new SignJWT({
		fhirUser: `${fhirBase}/Patient/${grant.patient}`,
		auth_time: Math.floor(grant.createdAt / 1000),
		...(nonce ? { nonce } : {}),
	})
		.setProtectedHeader({
			alg: "RS256",
			kid: String(privateJwk.kid),
			typ: "JWT",
		})
		.setIssuer(issuer)
		.setSubject(grant.patient)
		.setAudience(grant.clientId)
		.setIssuedAt(now)
		.setExpirationTime(now + ID_TOKEN_TTL_SECONDS)
		.sign(key);
}

function tokenBody(
	tokens: IssuedTokens,
	scope: string[],
	grant: Grant,
	idToken: string | undefined,
): Record<string, unknown> {
	return {
		access_token: tokens.accessToken,
		token_type: "Bearer",
		expires_in: tokens.expiresIn,
		scope: scope.join(" "),
		...(scope.includes("launch/patient") ? { patient: grant.patient } : {}),
		...(tokens.refreshToken ? { refresh_token: tokens.refreshToken } : {}),
		...(idToken ? { id_token: idToken } : {}),
	};
}

function required(form: FormData, name: string): string {
	const value = form.get(name);
	if (typeof value !== "string" || value === "") throw new OAuthError("invalid_request", `${name} is required`);
	return value;
}

oauth.post("/v1/token", async (c) => {
	const stub = stateStub(c.env);
	const urls = sandboxUrls(c.req.url);
	let grantType: string | null = null;
	let status = 200;
	let errorCode: string | undefined;
	try {
		const fault = await stub.takeFault("token");
		if (fault?.delayMs) await sleep(fault.delayMs);
		if (fault?.response === "html") {
			status = fault.status ?? 200;
			return htmlFaultPage(status);
		}
		if (fault?.oauthError) {
			const status = fault.status ?? (fault.oauthError === "invalid_client" ? 401 : 400);
			throw new OAuthError(fault.oauthError, fault.description ?? "Injected fault", status);
		}
		if (fault?.status) {
			throw new OAuthError(
				fault.status === 429 ? "rate_limit_exceeded" : "temporarily_unavailable",
				"Injected fault",
				fault.status,
				fault.status === 429 ? { "Retry-After": "60" } : {},
			);
		}
		if (!(c.req.header("Content-Type") ?? "").startsWith("application/x-www-form-urlencoded")) {
			throw new OAuthError("invalid_request", "The body must be application/x-www-form-urlencoded");
		}
		const form = await c.req.formData();
		grantType = typeof form.get("grant_type") === "string" ? String(form.get("grant_type")) : null;
		const config = await effectiveConfig(c.env, stub);
		const now = await stub.now();
		await authenticateClient({
			env: c.env,
			stub,
			config,
			form,
			headers: c.req.raw.headers,
			endpoint: "token",
			audiences: [urls.token],
			now,
		});
		// athena's patient apps are 3-legged only: the assertion is checked first, then the grant refused.
		if (grantType === "client_credentials") {
			throw new OAuthError(
				"unauthorized_client",
				"The client is not authorized to use the provided grant type. Configured grant types: [authorization_code, refresh_token].",
			);
		}
		if (grantType !== "authorization_code" && grantType !== "refresh_token") {
			throw new OAuthError("unsupported_grant_type", "grant_type must be authorization_code or refresh_token");
		}
		// Every login and every refresh spends from athena's per-minute budget.
		const budget = await stub.takeTokenBudget(config.tokenRateLimit);
		if (!budget.allowed) {
			throw new OAuthError("rate_limit_exceeded", `No more than ${config.tokenRateLimit} new tokens per minute`, 429, {
				"Retry-After": String(budget.retryAfter),
			});
		}

		let body: Record<string, unknown>;
		if (grantType === "authorization_code") {
			const code = required(form, "code");
			const redirectUri = required(form, "redirect_uri");
			const verifier = required(form, "code_verifier");
			const presented = await stub.presentCode(code);
			if (presented.status !== "ok") {
				throw new OAuthError(
					"invalid_grant",
					presented.status === "reused" ? "The code was already used" : "The code is unknown or expired",
				);
			}
			const { record, codeKey } = presented;
			if (record.clientId !== config.clientId)
				throw new OAuthError("invalid_grant", "The code was issued to another client");
			if (record.redirectUri !== redirectUri) {
				throw new OAuthError("invalid_grant", "redirect_uri does not match the authorization request");
			}
			if (!VERIFIER_PATTERN.test(verifier) || (await sha256Base64url(verifier)) !== record.codeChallenge) {
				throw new OAuthError("invalid_grant", "PKCE verification failed");
			}
			const grant = await stub.createGrant(
				{
					clientId: record.clientId,
					patient: record.patient,
					scope: record.scope,
					...(record.nonce ? { nonce: record.nonce } : {}),
				},
				codeKey,
			);
			const tokens = await stub.issueTokens(grant, record.scope, config.accessTokenTtl);
			const idToken = record.scope.includes("openid")
				? await signIdToken(stub, config.issuer, urls.fhirBase, grant, record.nonce, now)
				: undefined;
			body = tokenBody(tokens, record.scope, grant, idToken);
		} else {
			const refreshToken = required(form, "refresh_token");
			// athena reportedly requires scope on refresh.
			const scope = required(form, "scope").split(" ").filter(Boolean);
			// Rotation with Okta's grace period (config.refreshGraceSeconds; athena's value unconfirmed):
			// one atomic step in the state object, see SandboxState.refreshGrant.
			const refreshed = await stub.refreshGrant(
				refreshToken,
				config.clientId,
				scope,
				config.refreshGraceSeconds * 1000,
				config.accessTokenTtl,
			);
			if (refreshed.status === "invalid_grant") {
				throw new OAuthError("invalid_grant", "The refresh token is invalid, expired or revoked");
			}
			if (refreshed.status === "invalid_scope") {
				throw new OAuthError("invalid_scope", `Not in the original grant: ${refreshed.extra.join(" ")}`);
			}
			// Counted so a run can see how often a client needed the grace (a lost answer, or a second refresher).
			if (refreshed.viaGrace) await stub.record({ count: "refreshViaGrace" });
			const idToken = scope.includes("openid")
				? await signIdToken(stub, config.issuer, urls.fhirBase, refreshed.grant, undefined, now)
				: undefined;
			body = tokenBody(refreshed.tokens, scope, refreshed.grant, idToken);
		}
		if (fault?.response === "missing_patient") delete body.patient;
		if (fault?.response === "missing_access_token") delete body.access_token;
		return Response.json(body, {
			headers: { "Cache-Control": "no-store", Pragma: "no-cache" },
		});
	} catch (error) {
		if (!(error instanceof OAuthError)) throw error;
		status = error.status;
		errorCode = error.code;
		return oauthErrorResponse(error);
	} finally {
		await stub.record({
			count: "token",
			tokenCall: {
				grantType,
				status,
				...(errorCode ? { error: errorCode } : {}),
			},
		});
	}
});

/**
 * Revoke and introspect: athena asks for the client assertion on these calls
 * too. Which `aud` Okta expects there is unconfirmed, so both the token URL
 * and the endpoint's own URL are accepted. The call is counted, the client
 * authenticated, then `handle` runs; an OAuthError becomes its JSON answer.
 */
function clientEndpoint(
	endpoint: "revoke" | "introspect",
	handle: (call: {
		form: FormData;
		config: SandboxConfig;
		stub: StateStub;
		urls: ReturnType<typeof sandboxUrls>;
	}) => Promise<Response>,
) {
	return async (c: Context<AppEnv>) => {
		const stub = stateStub(c.env);
		const urls = sandboxUrls(c.req.url);
		await stub.record({ count: endpoint });
		try {
			const form = await c.req.formData();
			const config = await effectiveConfig(c.env, stub);
			await authenticateClient({
				env: c.env,
				stub,
				config,
				form,
				headers: c.req.raw.headers,
				endpoint,
				audiences: [urls.token, urls[endpoint]],
				now: await stub.now(),
			});
			return await handle({ form, config, stub, urls });
		} catch (error) {
			if (error instanceof OAuthError) return oauthErrorResponse(error);
			throw error;
		}
	};
}

oauth.post(
	"/v1/revoke",
	clientEndpoint("revoke", async ({ form, config, stub }) => {
		// RFC 7009 §2.2: an unknown or already invalid token is still a 200.
		await stub.revokeToken(required(form, "token"), config.clientId, config.refreshGraceSeconds * 1000);
		return new Response(null, {
			status: 200,
			headers: { "Cache-Control": "no-store" },
		});
	}),
);

oauth.post(
	"/v1/introspect",
	clientEndpoint("introspect", async ({ form, config, stub, urls }) => {
		const token = required(form, "token");
		const hint = form.get("token_type_hint");
		const headers = { "Cache-Control": "no-store" };
		const common = (clientId: string, patient: string, scope: string[]) => ({
			active: true,
			client_id: clientId,
			sub: patient,
			patient,
			scope: scope.join(" "),
			iss: config.issuer,
			aud: urls.fhirBase,
		});
		if (hint !== "refresh_token") {
			const access = await stub.lookupAccessToken(token);
			if (access && access.record.clientId === config.clientId) {
				return Response.json(
					{
						...common(access.record.clientId, access.record.patient, access.record.scope),
						token_type: "Bearer",
						iat: Math.floor(access.record.issuedAt / 1000),
						exp: Math.floor(access.record.expiresAt / 1000),
					},
					{ headers },
				);
			}
		}
		const refresh = await stub.lookupRefreshToken(token, config.refreshGraceSeconds * 1000);
		if (refresh && refresh.record.clientId === config.clientId) {
			return Response.json(
				{
					...common(refresh.record.clientId, refresh.record.patient, refresh.record.scope),
					token_type: "refresh_token",
					iat: Math.floor(refresh.record.issuedAt / 1000),
				},
				{ headers },
			);
		}
		// RFC 7662 §2.2: nothing else is said about an inactive token.
		return Response.json({ active: false }, { headers });
	}),
);

/**
 * An Okta-style error body (`errorCode`, `errorSummary`, ...), as Okta answers
 * a bad `client_id` outside the RFC 6749 endpoints. The exact wording athena's
 * keys endpoint uses is unobserved; see sandbox/README.md.
 */
function oktaError(status: number, errorCode: string, errorSummary: string): Response {
	return Response.json(
		{
			errorCode,
			errorSummary,
			errorLink: errorCode,
			errorId: `oae${crypto.randomUUID().replaceAll("-", "")}`,
			errorCauses: [],
		},
		{ status, headers: { "Cache-Control": "no-store" } },
	);
}

/** athena documents `client_id` as required here: the key set is the client's to ask for. */
oauth.get("/v1/keys", async (c) => {
	const stub = stateStub(c.env);
	const clientId = c.req.query("client_id");
	if (!clientId) return oktaError(400, "invalid_client", "A client_id must be provided in the request.");
	const config = await effectiveConfig(c.env, stub);
	if (clientId !== config.clientId) return oktaError(400, "invalid_client", "Invalid value for 'client_id' parameter.");
	const { publicJwk } = await stub.getSigningKey();
	return c.json({ keys: [publicJwk] }, 200, {
		"Cache-Control": "public, max-age=300",
	});
});

/** The claims of an id_token this sandbox signed for the client, expired or not; undefined otherwise. */
async function ownIdToken(stub: StateStub, config: SandboxConfig, token: string) {
	try {
		const { publicJwk } = await stub.getSigningKey();
		const { payload, protectedHeader } = await compactVerify(token, await importJWK(publicJwk, "RS256"), {
			algorithms: ["RS256"],
		});
		if (protectedHeader.kid !== publicJwk.kid) return undefined;
		const claims = JSON.parse(new TextDecoder().decode(payload)) as { iss?: unknown; aud?: unknown };
		const audiences = Array.isArray(claims.aud) ? claims.aud : [claims.aud];
		return claims.iss === config.issuer && audiences.includes(config.clientId) ? claims : undefined;
	} catch {
		return undefined;
	}
}

/**
 * Okta's RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0): ends
 * athena's browser session, so the next authorize asks for the password
 * again. Okta requires `id_token_hint` (one it issued to the client; an
 * expired one is accepted, since the app may sign out long after sign-in) and
 * redirects only to a registered sign-out redirect URI, exactly. Tokens
 * already issued stay valid: revocation is `/oauth2/v1/revoke`'s job. GET
 * with a query, or POST with a form body, which keeps the id_token out of
 * URLs (RP-Initiated Logout 1.0 §2: the OP must support both).
 */
oauth.on(["GET", "POST"], "/v1/logout", async (c) => {
	const stub = stateStub(c.env);
	const config = await effectiveConfig(c.env, stub);
	// A body that is not a form carries no parameters: refused below for its missing hint.
	const form = c.req.method === "POST" ? await c.req.formData().catch(() => new FormData()) : undefined;
	const param = (name: string): string | undefined => {
		const value = form ? form.get(name) : c.req.query(name);
		return typeof value === "string" ? value : undefined;
	};
	const target = param("post_logout_redirect_uri");
	const refuse = async (message: string) => {
		await stub.record({
			count: "logout",
			logout: { sessionEnded: false, ...(target ? { postLogoutRedirectUri: target } : {}), error: message },
		});
		return errorPage(message);
	};
	const hint = param("id_token_hint");
	if (!hint) return refuse("id_token_hint is required.");
	if (!(await ownIdToken(stub, config, hint))) {
		return refuse("id_token_hint is not an id_token this server issued to a registered client.");
	}
	if (target !== undefined && !config.postLogoutRedirectUris.includes(target)) {
		return refuse("post_logout_redirect_uri is not registered for this client (exact match required).");
	}
	const cookie = getCookie(c, SESSION_COOKIE);
	const sessionEnded = cookie ? await stub.endBrowserSession(cookie) : false;
	await stub.record({
		count: "logout",
		logout: { sessionEnded, ...(target ? { postLogoutRedirectUri: target } : {}) },
	});
	const response = target ? redirectWith(target, { state: param("state") }) : signedOutPage();
	response.headers.append("Set-Cookie", sessionCookie(c.req.url, "", 0));
	return response;
});
