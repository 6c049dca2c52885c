import { type Context, Hono } from "hono";
import { importJWK, SignJWT } from "jose";
import { CLIENT_ASSERTION_TYPE, decodeAssertion, verifyClientAssertion } from "./assertion";
import { clientJwks } from "./client-jwks";
import { type SandboxConfig, sandboxUrls } from "./config";
import { type AppEnv, effectiveConfig, type StateStub, sleep, stateStub } from "./context";
import { findUser } from "./data";
import type { SandboxEnv } from "./env";
import { OAuthError, oauthErrorResponse } from "./errors";
import { consentPage, errorPage, htmlFaultPage, signedOutPage, signInPage } from "./pages";
import type { Grant, IssuedTokens } from "./records";

/** Pending sign-ins expire like an abandoned Okta session. */
const PENDING_TTL_MS = 10 * 60_000;
/** Codes are short-lived (RFC 6749 §4.1.2 recommends at most 10 minutes; Okta uses 60 s). */
const CODE_TTL_MS = 90_000;
const ID_TOKEN_TTL_SECONDS = 3600;
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
		return errorPage("The redirect_uri is not registered for this client (exact match required).");
	}

	const state = q("state");
	const fail = (error: string, description: string) =>
		redirectWith(redirectUri, {
			error,
			error_description: description,
			state,
			iss: urls.issuer,
		});
	if (q("response_type") !== "code") return fail("unsupported_response_type", "response_type must be code");
	// Okta refuses a request without state; the client's CSRF defence depends on it.
	if (!state) return fail("invalid_request", "state is required");
	const scope = (q("scope") ?? "").split(" ").filter(Boolean);
	if (scope.length === 0) return fail("invalid_scope", "scope is required");
	// athena (reportedly): one scope outside the registration fails the whole request.
	const unknown = scope.filter((s) => !config.allowedScopes.has(s));
	if (unknown.length > 0) return fail("invalid_scope", `Invalid Scope: ${unknown.join(" ")}`);
	if (q("aud") !== urls.fhirBase) return fail("invalid_request", `aud must be the FHIR base ${urls.fhirBase}`);
	const codeChallenge = q("code_challenge");
	const method = q("code_challenge_method");
	if (!codeChallenge) return fail("invalid_request", "PKCE code_challenge is required");
	if (method !== "S256") return fail("invalid_request", "code_challenge_method must be S256");
	if (!/^[A-Za-z0-9_-]{43}$/.test(codeChallenge)) {
		return fail("invalid_request", "code_challenge must be a base64url SHA-256 digest");
	}
	const nonce = q("nonce");
	const requestId = await stub.createPending(
		{ clientId, redirectUri, scope, state, codeChallenge, ...(nonce ? { nonce } : {}) },
		PENDING_TTL_MS,
	);
	return signInPage(requestId);
});

oauth.post("/v1/authorize/signin", async (c) => {
	const stub = stateStub(c.env);
	const form = await c.req.formData();
	const requestId = String(form.get("request") ?? "");
	const pending = await stub.getPending(requestId);
	if (!pending) return errorPage("This sign-in request has expired or was already used. Start again from the app.");
	const user = findUser(String(form.get("username") ?? ""));
	if (!user || user.password !== String(form.get("password") ?? "")) {
		return signInPage(requestId, "The username or password is not correct.", 401);
	}
	const practice = String(form.get("practice") ?? "");
	if (practice !== "" && practice !== user.practiceId) {
		return signInPage(requestId, `This account has no portal access at practice ${practice}.`, 401);
	}
	await stub.signInPending(requestId, user.id);
	return consentPage(requestId, `${user.given} ${user.family}`, pending.scope);
});

oauth.post("/v1/authorize/consent", async (c) => {
	const stub = stateStub(c.env);
	const urls = sandboxUrls(c.req.url);
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
			iss: urls.issuer,
		});
	return redirectWith(pending.redirectUri, {
		code,
		state: pending.state,
		iss: urls.issuer,
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
			throw new OAuthError("invalid_client", "client_id is not registered", 401);
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
				? await signIdToken(stub, urls.issuer, urls.fhirBase, grant, record.nonce, now)
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
				? await signIdToken(stub, urls.issuer, urls.fhirBase, refreshed.grant, undefined, now)
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
			iss: urls.issuer,
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

oauth.get("/v1/keys", async (c) => {
	const { publicJwk } = await stateStub(c.env).getSigningKey();
	return c.json({ keys: [publicJwk] }, 200, {
		"Cache-Control": "public, max-age=300",
	});
});

/** Okta-style RP-initiated logout; the sandbox keeps no browser session, so it only redirects. */
oauth.get("/v1/logout", async (c) => {
	const stub = stateStub(c.env);
	const config = await effectiveConfig(c.env, stub);
	const target = c.req.query("post_logout_redirect_uri");
	if (!target) return signedOutPage();
	let allowed = false;
	try {
		const origin = new URL(target).origin;
		allowed = config.redirectUris.some((uri) => new URL(uri).origin === origin);
	} catch {}
	if (!allowed) return errorPage("post_logout_redirect_uri is not registered for this client.");
	return redirectWith(target, { state: c.req.query("state") });
});
