import type { SandboxEnv } from "./env";

/**
 * Patient-access resource types from athena's FHIR R4 documentation
 * (shared/athena-reference.md). Every one gets a SMART v1 `.read` and a v2
 * `.rs` scope in the default allowed set.
 */
export const PATIENT_ACCESS_TYPES = [
	"AllergyIntolerance",
	"Binary",
	"CarePlan",
	"CareTeam",
	"Condition",
	"Coverage",
	"Device",
	"DiagnosticReport",
	"DocumentReference",
	"Encounter",
	"Goal",
	"Immunization",
	"Location",
	"Medication",
	"MedicationRequest",
	"Observation",
	"Organization",
	"Patient",
	"Practitioner",
	"Procedure",
	"Provenance",
	"ServiceRequest",
] as const;

export type ResourceType = (typeof PATIENT_ACCESS_TYPES)[number];

export const DEFAULT_ALLOWED_SCOPES = [
	"openid",
	"fhirUser",
	"offline_access",
	"launch/patient",
	...PATIENT_ACCESS_TYPES.flatMap((t) => [`patient/${t}.read`, `patient/${t}.rs`]),
];

/**
 * The sandbox's issuer: an Okta authorization server's URL, like athena's
 * (`https://athena.okta.com/oauth2/aus...`, shared/athena-observed.md), on
 * another host than the API (127.0.0.1, not localhost) so a client that
 * assumes "issuer = API origin" fails here as it would at athena. Nothing is
 * served there: clients compare it, they do not fetch it.
 */
export const DEFAULT_ISSUER = "http://127.0.0.1:3001/oauth2/aus5sandbox0preview";

/** The one registered client, as athena would hold the app's registration. */
export interface SandboxConfig {
	/** `iss` of id_tokens and of authorization responses (RFC 9207), and discovery's `issuer`. */
	issuer: string;
	clientId: string;
	redirectUris: readonly string[];
	/** Okta's "Sign-out redirect URIs": where `/oauth2/v1/logout` may send the browser (exact match). */
	postLogoutRedirectUris: readonly string[];
	jwksUrl: string;
	allowedScopes: ReadonlySet<string>;
	accessTokenTtl: number;
	/** New tokens per calendar minute; 0 means unlimited. */
	tokenRateLimit: number;
	/**
	 * Okta's grace period for refresh token rotation: after a rotation the
	 * previous refresh token stays usable this long; 0 = strict (spent at once).
	 * athena's setting is unconfirmed; Okta's default is 30 s, its range 0–60.
	 */
	refreshGraceSeconds: number;
}

/** Runtime overrides set through `/_sandbox/config`, stored in the Durable Object. */
export interface ConfigOverrides {
	issuer?: string;
	postLogoutRedirectUris?: string[];
	accessTokenTtl?: number;
	tokenRateLimit?: number;
	refreshGraceSeconds?: number;
	allowedScopes?: string[];
}

function words(value: string | undefined): string[] | undefined {
	const list = value?.split(/\s+/).filter(Boolean);
	return list && list.length > 0 ? list : undefined;
}

function nonNegativeInt(name: string, value: string | undefined, fallback: number): number {
	if (value === undefined || value.trim() === "") return fallback;
	const n = Number(value);
	if (!Number.isInteger(n) || n < 0) {
		throw new Error(`${name} must be a non-negative integer`);
	}
	return n;
}

/** An absolute http(s) URL without query or fragment, as an issuer or a registered URI must be. */
export function isPlainHttpUrl(value: string): boolean {
	try {
		const url = new URL(value);
		return (url.protocol === "http:" || url.protocol === "https:") && url.search === "" && url.hash === "";
	} catch {
		return false;
	}
}

function urlList(name: string, value: string | undefined, fallback: string[]): string[] {
	const list = words(value) ?? fallback;
	const bad = list.find((uri) => !isPlainHttpUrl(uri));
	if (bad !== undefined) throw new Error(`${name} must list absolute http(s) URLs without query or fragment`);
	return list;
}

/** Okta allows a refresh token rotation grace period of 0 to 60 seconds. */
export const MAX_REFRESH_GRACE_SECONDS = 60;

/** Parses the sandbox's vars once; a bad value fails loudly, naming the var. */
export function parseConfig(env: SandboxEnv): SandboxConfig {
	const ttl = nonNegativeInt("SANDBOX_ACCESS_TOKEN_TTL", env.SANDBOX_ACCESS_TOKEN_TTL, 3600);
	if (ttl === 0) throw new Error("SANDBOX_ACCESS_TOKEN_TTL must be at least 1");
	const refreshGrace = nonNegativeInt("SANDBOX_REFRESH_GRACE_SECONDS", env.SANDBOX_REFRESH_GRACE_SECONDS, 30);
	if (refreshGrace > MAX_REFRESH_GRACE_SECONDS) {
		throw new Error(`SANDBOX_REFRESH_GRACE_SECONDS must be at most ${MAX_REFRESH_GRACE_SECONDS} (Okta's range)`);
	}
	const issuer = env.SANDBOX_ISSUER?.trim() || DEFAULT_ISSUER;
	if (!isPlainHttpUrl(issuer)) throw new Error("SANDBOX_ISSUER must be an absolute http(s) URL without query");
	return {
		issuer,
		clientId: env.SANDBOX_CLIENT_ID?.trim() || "local-dev-client",
		redirectUris: words(env.SANDBOX_REDIRECT_URIS) ?? ["http://localhost:3000/callback"],
		postLogoutRedirectUris: urlList("SANDBOX_POST_LOGOUT_REDIRECT_URIS", env.SANDBOX_POST_LOGOUT_REDIRECT_URIS, [
			"http://localhost:3000/",
		]),
		jwksUrl: env.SANDBOX_CLIENT_JWKS_URL?.trim() || "http://localhost:3000/.well-known/jwks.json",
		allowedScopes: new Set(words(env.SANDBOX_ALLOWED_SCOPES) ?? DEFAULT_ALLOWED_SCOPES),
		accessTokenTtl: ttl,
		tokenRateLimit: nonNegativeInt("SANDBOX_TOKEN_RATE_LIMIT", env.SANDBOX_TOKEN_RATE_LIMIT, 5),
		refreshGraceSeconds: refreshGrace,
	};
}

export function applyOverrides(config: SandboxConfig, overrides: ConfigOverrides): SandboxConfig {
	return {
		...config,
		issuer: overrides.issuer ?? config.issuer,
		postLogoutRedirectUris: overrides.postLogoutRedirectUris ?? config.postLogoutRedirectUris,
		accessTokenTtl: overrides.accessTokenTtl ?? config.accessTokenTtl,
		tokenRateLimit: overrides.tokenRateLimit ?? config.tokenRateLimit,
		refreshGraceSeconds: overrides.refreshGraceSeconds ?? config.refreshGraceSeconds,
		allowedScopes: overrides.allowedScopes ? new Set(overrides.allowedScopes) : config.allowedScopes,
	};
}

/**
 * athena's endpoint URLs as seen from this sandbox, derived from the request's
 * origin. The issuer is not among them: it is configuration (`issuer`).
 */
export interface SandboxUrls {
	origin: string;
	authorize: string;
	token: string;
	revoke: string;
	introspect: string;
	keys: string;
	logout: string;
	fhirBase: string;
}

export function sandboxUrls(requestUrl: string): SandboxUrls {
	const origin = new URL(requestUrl).origin;
	return {
		origin,
		authorize: `${origin}/oauth2/v1/authorize`,
		token: `${origin}/oauth2/v1/token`,
		revoke: `${origin}/oauth2/v1/revoke`,
		introspect: `${origin}/oauth2/v1/introspect`,
		keys: `${origin}/oauth2/v1/keys`,
		logout: `${origin}/oauth2/v1/logout`,
		fhirBase: `${origin}/fhir/r4`,
	};
}
