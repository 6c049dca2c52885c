import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { decodeJwt, decodeProtectedHeader } from "jose";
import { errors, Provider, type ProviderContext } from "oidc-provider";

/**
 * A SMART on FHIR server that is not ours: panva's oidc-provider (OpenID
 * Certified) as the authorization server, configured the way SMART App Launch
 * 2.2 asks of an EHR, plus a tiny FHIR API that accepts only the provider's
 * own (opaque) access tokens. One loopback HTTP server, in the test's process,
 * so the test can look into the provider's token store.
 */

export const CLIENT_ID = "smart-test-client";
/** A UUID-style FHIR id, nothing like athena's `a-{practice}.E-{id}`. */
export const PATIENT_ID = "0b9e3c2c-5a7e-4f55-9d1e-2f1c7b3e8a10";
export const PATIENT_LOGIN = { username: "alex@patients.example", password: "correct horse battery" };
const ACCOUNT_ID = "alex-rivera";

/** The FHIR API's path on this server; its `.well-known/smart-configuration` sits under it, as SMART asks. */
export const FHIR_PATH = "/fhir";
/** A second base whose smart-configuration offers neither PKCE S256 nor private_key_jwt. */
export const WEAK_FHIR_PATH = "/fhir-without-pkce";

/** Identity, refresh, standalone patient context, and SMART v2 and v1 read scopes. */
const SCOPES = ["openid", "fhirUser", "offline_access", "launch/patient", "patient/*.rs", "patient/*.read"];

const OBSERVATIONS = ["heart-rate", "body-weight", "hba1c"].map((kind, index) => ({
	resourceType: "Observation",
	id: `obs-${index + 1}`,
	status: "final",
	code: { text: kind },
	subject: { reference: `Patient/${PATIENT_ID}` },
	valueQuantity: { value: [72, 81.5, 5.4][index], unit: ["/min", "kg", "%"][index] },
}));
const PAGE_SIZE = 2;
/** Search parameters the Observation search knows; anything else is refused, as strict FHIR servers do. */
const OBSERVATION_PARAMETERS = new Set(["patient", "subject", "category", "code", "_count", "_page"]);

/** A call the worker made to the provider's token or revocation endpoint, as the provider saw it. */
export interface ClientCall {
	endpoint: "token" | "revocation";
	status: number;
	grantType: string | undefined;
	/** The client assertion's header and claims (private_key_jwt, RFC 7523). */
	assertion: { header: Record<string, unknown>; claims: Record<string, unknown> } | undefined;
	/** What the provider authenticated the client as, and how. */
	client: { id: string; method: string } | undefined;
	/** The refresh token presented (grant_type=refresh_token) or the token revoked. */
	presented: string | undefined;
	/** The token response's body (200 only). */
	issued: Record<string, unknown> | undefined;
	error: string | undefined;
}

/**
 * When offline_access earns a refresh token: `smart` (the default) whenever
 * the patient consents to it; `oidc` only with prompt=consent on the authorize
 * request, oidc-provider's own reading of OpenID Connect Core §11; `never`:
 * the server does not grant offline access at all.
 */
export type OfflineAccessRule = "smart" | "oidc" | "never";

export interface FhirRequest {
	path: string;
	query: URLSearchParams;
	status: number;
}

export interface SmartServer {
	origin: string;
	issuer: string;
	fhirBase: string;
	weakFhirBase: string;
	/** Query parameters of every authorization request that reached the provider. */
	authorizeRequests: URLSearchParams[];
	clientCalls: ClientCall[];
	fhirRequests: FhirRequest[];
	/** Errors the provider reported (for failure messages). */
	problems: string[];
	setOfflineAccess(rule: OfflineAccessRule): void;
	/** Ends every access token issued so far at the provider, as if each had expired. */
	expireAccessTokens(): Promise<number>;
	/** Revokes, at the provider, the grant behind every refresh token issued so far (a patient revoking the app in the EHR). */
	revokeGrants(): Promise<number>;
	/** What the provider's store says of a refresh token. */
	refreshTokenState(token: string): Promise<"active" | "consumed" | "gone">;
	accessTokenActive(token: string): Promise<boolean>;
	close(): Promise<void>;
}

function escapeHtml(text: string): string {
	return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(res: ServerResponse, status: number, title: string, body: string): void {
	res.writeHead(status, { "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store" });
	res.end(`<!doctype html><html><head><title>${escapeHtml(title)}</title></head><body>${body}</body></html>`);
}

function json(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
	res.writeHead(status, { "Content-Type": "application/fhir+json", ...headers });
	res.end(JSON.stringify(body));
}

function outcome(code: string, diagnostics: string) {
	return { resourceType: "OperationOutcome", issue: [{ severity: "error", code, diagnostics }] };
}

async function formBody(req: IncomingMessage): Promise<URLSearchParams> {
	const chunks: Buffer[] = [];
	for await (const chunk of req) chunks.push(chunk as Buffer);
	return new URLSearchParams(Buffer.concat(chunks).toString("utf8"));
}

function decodeAssertion(value: unknown): ClientCall["assertion"] {
	if (typeof value !== "string") return undefined;
	try {
		return { header: { ...decodeProtectedHeader(value) }, claims: { ...decodeJwt(value) } };
	} catch {
		return { header: {}, claims: {} };
	}
}

/**
 * Starts the provider and the FHIR API on 127.0.0.1:`port`. `workerOrigin` is
 * the registered client's origin: its JWKS URL and redirect URI are there.
 */
export async function startSmartServer(options: { port: number; workerOrigin: string }): Promise<SmartServer> {
	const origin = `http://localhost:${options.port}`;
	const issuer = origin;
	const fhirBase = `${origin}${FHIR_PATH}`;
	const weakFhirBase = `${origin}${WEAK_FHIR_PATH}`;
	const authorizeRequests: URLSearchParams[] = [];
	const clientCalls: ClientCall[] = [];
	const fhirRequests: FhirRequest[] = [];
	const problems: string[] = [];
	const accessTokens: string[] = [];
	let offlineAccess: OfflineAccessRule = "smart";

	const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
	const idTokenKey = { ...privateKey.export({ format: "jwk" }), kid: "smart-test-id-token", alg: "RS256", use: "sig" };

	const provider = new Provider(issuer, {
		clients: [
			{
				client_id: CLIENT_ID,
				// SMART client-confidential-asymmetric: the worker's published keys, RS384 assertions.
				token_endpoint_auth_method: "private_key_jwt",
				token_endpoint_auth_signing_alg: "RS384",
				jwks_uri: `${options.workerOrigin}/.well-known/jwks.json`,
				redirect_uris: [`${options.workerOrigin}/callback`],
				grant_types: ["authorization_code", "refresh_token"],
				response_types: ["code"],
			},
		],
		jwks: { keys: [idTokenKey] },
		cookies: { keys: [randomBytes(32).toString("base64url")] },
		claims: { openid: ["sub"], fhirUser: ["fhirUser"] },
		scopes: SCOPES,
		// SMART puts fhirUser in the id_token, not only behind userinfo.
		conformIdTokenClaims: false,
		async findAccount(_ctx: unknown, id: string) {
			if (id !== ACCOUNT_ID) return undefined;
			return {
				accountId: id,
				claims: async () => ({ sub: id, fhirUser: `${fhirBase}/Patient/${PATIENT_ID}` }),
			};
		},
		features: {
			devInteractions: { enabled: false },
			revocation: { enabled: true },
			resourceIndicators: { enabled: false },
		},
		clientAuthMethods: ["private_key_jwt", "client_secret_basic"],
		enabledJWA: { clientAuthSigningAlgValues: ["RS256", "RS384", "PS256", "ES256"] },
		pkce: { required: () => true },
		rotateRefreshToken: true,
		// SMART's `aud` on the authorize request: a server must refuse a FHIR base it does not serve.
		extraParams: {
			aud(_ctx: unknown, value: unknown) {
				if (value !== fhirBase) throw new errors.InvalidRequest("aud is not a FHIR server known here");
			},
		},
		// The patient context goes with the (opaque) access token, for the FHIR API to check.
		async extraTokenClaims(_ctx: unknown, token: { kind: string; scope?: string }) {
			if (token.kind !== "AccessToken" || !token.scope?.split(" ").includes("launch/patient")) return undefined;
			return { patient: PATIENT_ID };
		},
		interactions: { url: (_ctx: unknown, interaction: { uid: string }) => `/interaction/${interaction.uid}` },
		ttl: { AccessToken: 3600, AuthorizationCode: 60, IdToken: 3600, Interaction: 600, Session: 3600 },
		// oidc-provider refuses to fetch from loopback addresses (SSRF protection); the
		// worker's JWKS is on localhost here, so its dispatcher is left out.
		fetch: (url: string, { dispatcher: _dispatcher, ...init }: RequestInit & { dispatcher?: unknown }) =>
			fetch(url, init),
	});

	for (const event of ["server_error", "grant.error", "revocation.error", "authorization.error", "jwks.error"]) {
		provider.on(event, (_ctx: unknown, error: Error & { error_description?: string }) => {
			problems.push(`${event}: ${error.message}${error.error_description ? ` (${error.error_description})` : ""}`);
		});
	}

	provider.use(async (ctx: ProviderContext, next) => {
		if (ctx.method === "GET" && ctx.path === "/auth") {
			const query = new URLSearchParams(ctx.querystring);
			authorizeRequests.push(new URLSearchParams(query));
			// OpenID Connect Core §11 lets a server ignore offline_access without prompt=consent, and
			// oidc-provider does; SMART apps do not send prompt, and SMART servers grant offline_access
			// on their consent page. Asking for consent whenever offline_access is requested does that.
			const offline = query.get("scope")?.split(" ").includes("offline_access");
			if (offlineAccess === "smart" && offline && !query.has("prompt")) {
				query.set("prompt", "consent");
				ctx.querystring = query.toString();
			}
			if (offlineAccess === "never" && offline) {
				query.set(
					"scope",
					(query.get("scope") ?? "")
						.split(" ")
						.filter((s) => s !== "offline_access")
						.join(" "),
				);
				ctx.querystring = query.toString();
			}
		}
		await next();
		const route = ctx.oidc?.route;
		if (route !== "token" && route !== "revocation") return;
		const form = ctx.oidc?.body ?? {};
		const grantType = typeof form.grant_type === "string" ? form.grant_type : undefined;
		const body = typeof ctx.body === "object" && ctx.body !== null ? (ctx.body as Record<string, unknown>) : {};
		if (route === "token" && ctx.status === 200 && typeof body.access_token === "string") {
			accessTokens.push(body.access_token);
			// SMART App Launch: the launch context goes beside the token. oidc-provider has no
			// notion of it, so it is added here, at the code exchange only: SMART's refresh
			// response lists no launch context.
			const scopes = typeof body.scope === "string" ? body.scope.split(" ") : [];
			if (grantType === "authorization_code" && scopes.includes("launch/patient")) {
				ctx.body = { ...body, patient: PATIENT_ID };
			}
		}
		const presented = route === "token" ? form.refresh_token : form.token;
		const client = ctx.oidc?.client;
		clientCalls.push({
			endpoint: route,
			status: ctx.status,
			grantType,
			assertion: decodeAssertion(form.client_assertion),
			client: client ? { id: client.clientId, method: client.clientAuthMethod } : undefined,
			presented: typeof presented === "string" ? presented : undefined,
			issued: ctx.status === 200 && route === "token" ? { ...(ctx.body as Record<string, unknown>) } : undefined,
			error: ctx.status >= 400 && typeof body.error === "string" ? body.error : undefined,
		});
	});

	let metadata: Promise<Record<string, unknown>> | undefined;
	const providerMetadata = () => {
		metadata ??= fetch(`${issuer}/.well-known/openid-configuration`).then(
			(response) => response.json() as Promise<Record<string, unknown>>,
		);
		return metadata;
	};

	/** SMART App Launch 2.2 `.well-known/smart-configuration`, built from what the provider itself says it supports. */
	async function smartConfiguration(): Promise<Record<string, unknown>> {
		const m = await providerMetadata();
		return {
			issuer: m.issuer,
			jwks_uri: m.jwks_uri,
			authorization_endpoint: m.authorization_endpoint,
			token_endpoint: m.token_endpoint,
			revocation_endpoint: m.revocation_endpoint,
			grant_types_supported: ["authorization_code", "refresh_token"],
			response_types_supported: ["code"],
			scopes_supported: m.scopes_supported,
			code_challenge_methods_supported: m.code_challenge_methods_supported,
			token_endpoint_auth_methods_supported: m.token_endpoint_auth_methods_supported,
			token_endpoint_auth_signing_alg_values_supported: m.token_endpoint_auth_signing_alg_values_supported,
			capabilities: [
				"launch-standalone",
				"client-confidential-asymmetric",
				"context-standalone-patient",
				"permission-offline",
				"permission-patient",
				"permission-v1",
				"permission-v2",
				"sso-openid-connect",
			],
		};
	}

	async function patientFor(req: IncomingMessage): Promise<string | undefined> {
		const match = /^Bearer ([^\s]+)$/.exec(req.headers.authorization ?? "");
		if (!match?.[1]) return undefined;
		const token = await provider.AccessToken.find(match[1]);
		if (!token || token.isExpired) return undefined;
		// As oidc-provider's own introspection does: a token whose grant was revoked is no longer active.
		if (!token.grantId || !(await provider.Grant.find(token.grantId))) return undefined;
		const patient = token.extra?.patient;
		return typeof patient === "string" ? patient : undefined;
	}

	function searchPage(query: URLSearchParams): unknown {
		const pageNumber = Number(query.get("_page") ?? "1");
		const entries = OBSERVATIONS.slice((pageNumber - 1) * PAGE_SIZE, pageNumber * PAGE_SIZE);
		const self = `${fhirBase}/Observation?${query}`;
		const link = [{ relation: "self", url: self }];
		if (pageNumber * PAGE_SIZE < OBSERVATIONS.length) {
			const next = new URLSearchParams(query);
			next.set("_page", String(pageNumber + 1));
			link.push({ relation: "next", url: `${fhirBase}/Observation?${next}` });
		}
		return {
			resourceType: "Bundle",
			type: "searchset",
			total: OBSERVATIONS.length,
			link,
			entry: entries.map((resource) => ({
				fullUrl: `${fhirBase}/Observation/${resource.id}`,
				resource,
				search: { mode: "match" },
			})),
		};
	}

	async function fhirApi(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
		const path = url.pathname.slice(FHIR_PATH.length);
		const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
			fhirRequests.push({ path, query: new URLSearchParams(url.search), status });
			json(res, status, body, headers);
		};
		if (path === "/.well-known/smart-configuration") return answer(200, await smartConfiguration());
		if (req.method !== "GET") return answer(405, outcome("not-supported", "read only"));
		const patient = await patientFor(req);
		if (!patient) {
			return answer(401, outcome("login", "unknown or expired access token"), {
				"WWW-Authenticate": 'Bearer error="invalid_token"',
			});
		}
		if (path === `/Patient/${PATIENT_ID}`) {
			return answer(200, {
				resourceType: "Patient",
				id: PATIENT_ID,
				name: [{ family: "Rivera", given: ["Alex"] }],
				gender: "other",
				birthDate: "1990-02-03",
			});
		}
		if (path === "/Observation") {
			const unknown = [...url.searchParams.keys()].filter((name) => !OBSERVATION_PARAMETERS.has(name));
			if (unknown.length > 0) {
				return answer(400, outcome("not-supported", `Unknown search parameter ${unknown.join(", ")}`));
			}
			const named = url.searchParams.get("patient") ?? url.searchParams.get("subject")?.replace(/^Patient\//, "");
			if (named !== patient) return answer(403, outcome("forbidden", "search outside the token's patient"));
			return answer(200, searchPage(url.searchParams));
		}
		return answer(404, outcome("not-found", "no such resource"));
	}

	async function interaction(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
		const details = await provider.interactionDetails(req, res);
		const action = `/interaction/${details.uid}`;
		if (req.method === "GET" && url.pathname === action) {
			if (details.prompt.name === "login") return loginPage(res, action, "");
			const scopes = details.params.scope ?? "";
			return page(
				res,
				200,
				"Share your record",
				`<form method="post" action="${action}/consent"><p>${escapeHtml(details.params.client_id ?? "")} asks for: ` +
					`${escapeHtml(scopes)}</p><button name="decision" value="allow">Allow</button>` +
					`<button name="decision" value="deny">Deny</button></form>`,
			);
		}
		if (req.method === "POST" && url.pathname === `${action}/login`) {
			const form = await formBody(req);
			if (form.get("username") !== PATIENT_LOGIN.username || form.get("password") !== PATIENT_LOGIN.password) {
				return loginPage(res, action, "Wrong username or password.");
			}
			return provider.interactionFinished(
				req,
				res,
				{ login: { accountId: ACCOUNT_ID } },
				{
					mergeWithLastSubmission: false,
				},
			);
		}
		if (req.method === "POST" && url.pathname === `${action}/consent`) {
			const form = await formBody(req);
			if (form.get("decision") !== "allow") {
				return provider.interactionFinished(req, res, {
					error: "access_denied",
					error_description: "The patient chose not to share their record",
				});
			}
			const accountId = details.session?.accountId;
			const clientId = details.params.client_id;
			if (!accountId || !clientId) return page(res, 400, "Error", "<p>No signed-in patient.</p>");
			const grant = details.grantId
				? ((await provider.Grant.find(details.grantId)) ?? new provider.Grant({ accountId, clientId }))
				: new provider.Grant({ accountId, clientId });
			const { missingOIDCScope, missingOIDCClaims } = details.prompt.details;
			if (missingOIDCScope) grant.addOIDCScope(missingOIDCScope.join(" "));
			if (missingOIDCClaims) grant.addOIDCClaims(missingOIDCClaims);
			const grantId = await grant.save();
			return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
		}
		page(res, 404, "Not found", "<p>No such step.</p>");
	}

	function loginPage(res: ServerResponse, action: string, error: string): void {
		page(
			res,
			200,
			"Sign in",
			`${error ? `<p role="alert">${escapeHtml(error)}</p>` : ""}<form method="post" action="${action}/login">` +
				'<input name="username" autocomplete="username"><input name="password" type="password">' +
				"<button>Sign in</button></form>",
		);
	}

	const providerHandler = provider.callback();
	const server = createServer((req, res) => {
		const url = new URL(req.url ?? "/", origin);
		const fail = (error: unknown) => {
			problems.push(`${url.pathname}: ${error instanceof Error ? error.message : String(error)}`);
			if (!res.headersSent) page(res, 500, "Error", "<p>Server error.</p>");
			else res.end();
		};
		if (url.pathname === `${WEAK_FHIR_PATH}/.well-known/smart-configuration`) {
			smartConfiguration()
				.then(({ code_challenge_methods_supported: _pkce, ...document }) => {
					fhirRequests.push({ path: url.pathname, query: new URLSearchParams(url.search), status: 200 });
					json(res, 200, { ...document, token_endpoint_auth_methods_supported: ["client_secret_basic"] });
				})
				.catch(fail);
		} else if (url.pathname === FHIR_PATH || url.pathname.startsWith(`${FHIR_PATH}/`)) {
			fhirApi(req, res, url).catch(fail);
		} else if (url.pathname.startsWith("/interaction/")) {
			interaction(req, res, url).catch(fail);
		} else {
			providerHandler(req, res);
		}
	});
	await new Promise<void>((resolve, reject) => {
		server.once("error", reject);
		server.listen(options.port, "127.0.0.1", () => resolve());
	});
	const port = (server.address() as AddressInfo).port;
	if (port !== options.port) throw new Error(`listening on ${port}, not ${options.port}`);

	return {
		origin,
		issuer,
		fhirBase,
		weakFhirBase,
		authorizeRequests,
		clientCalls,
		fhirRequests,
		problems,
		setOfflineAccess(rule) {
			offlineAccess = rule;
		},
		async expireAccessTokens() {
			let ended = 0;
			for (const value of accessTokens) {
				const token = await provider.AccessToken.find(value);
				if (token) {
					await token.destroy();
					ended += 1;
				}
			}
			return ended;
		},
		async revokeGrants() {
			let revoked = 0;
			const refreshTokens = clientCalls.map((call) => call.issued?.refresh_token).filter((v) => typeof v === "string");
			for (const value of refreshTokens) {
				const grantId = (await provider.RefreshToken.find(value))?.grantId;
				const grant = grantId ? await provider.Grant.find(grantId) : undefined;
				if (!grantId || !grant) continue;
				// What oidc-provider's revocation endpoint does to a grant: every token of it, then the grant.
				await provider.AccessToken.revokeByGrantId(grantId);
				await provider.RefreshToken.revokeByGrantId(grantId);
				await grant.destroy();
				revoked += 1;
			}
			return revoked;
		},
		async refreshTokenState(value) {
			const token = await provider.RefreshToken.find(value);
			if (!token) return "gone";
			return token.consumed ? "consumed" : "active";
		},
		async accessTokenActive(value) {
			const token = await provider.AccessToken.find(value);
			return token !== undefined && !token.isExpired;
		},
		close: () =>
			new Promise<void>((resolve) => {
				server.closeAllConnections();
				server.close(() => resolve());
			}),
	};
}
