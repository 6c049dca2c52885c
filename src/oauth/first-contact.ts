/**
 * Why athena refused a sign-in, and which setting or portal field to change.
 * One table for the worker (callback log and preview error page) and for
 * `npm run keys -- live check`, which imports this file with Node's type
 * stripping: erasable TypeScript only, no imports.
 *
 * @example
 * diagnose({ endpoint: "token", error: "invalid_client", settings }).whatToChange;
 */

export interface FirstContactSettings {
	clientId: string;
	redirectUri: string;
	scopes: string;
	/** The URL token requests are posted to. */
	tokenUrl: string;
	/** ATHENA_ASSERTION_AUDIENCE, when set. */
	assertionAudience?: string | undefined;
	jwksMaxAgeSeconds: number;
	/** Where athena fetches our keys: PUBLIC_ORIGIN + /.well-known/jwks.json. */
	publicJwksUrl: string;
}

export interface Diagnosis {
	cause: string;
	whatYouSee: string;
	whatToChange: string;
}

export interface Refusal {
	/** Where athena said no: the authorize redirect, the token endpoint, or the id_token check. */
	endpoint: "authorize" | "token" | "id_token";
	error: string;
	error_description?: string | undefined;
	status?: number | undefined;
	settings: FirstContactSettings;
}

/** KV propagation (60 s) plus each worker isolate's 10 s JWKS cache (README, key rotation). */
export const PROPAGATION_SECONDS = 70;

/**
 * athena's error_description, fit for a log line or a page: one line, at most
 * 200 characters, and anything shaped like a JWT or a long opaque value (a
 * token or code athena might echo) replaced with "[redacted]".
 */
export function sanitisedDescription(text: string | undefined): string | undefined {
	if (text === undefined) return undefined;
	return text
		.replace(/\p{Cc}+/gu, " ")
		.replace(/eyJ[\w-]*(\.[\w-]*)*|[\w-]{32,}/g, "[redacted]")
		.slice(0, 200);
}

/**
 * The cause of one refusal. Okta's descriptions (athena's authorization
 * server) tell the invalid_client causes apart; without one, every
 * candidate is named in order of likelihood.
 */
export function diagnose(refusal: Refusal): Diagnosis {
	const { endpoint, error, settings: s } = refusal;
	const text = (refusal.error_description ?? "").toLowerCase();
	const wait = s.jwksMaxAgeSeconds + PROPAGATION_SECONDS;
	const kid = "athena does not know our kid: not published, or athena's cached JWKS is older";
	const kidFix = `Portal "JWKS URL" = ${s.publicJwksUrl}; wait JWKS_MAX_AGE_SECONDS + ${PROPAGATION_SECONDS} s = ${wait} s after publishing a key`;
	const audFix = `ATHENA_ASSERTION_AUDIENCE (aud now ${s.assertionAudience || s.tokenUrl})`;
	const idFix = `CLIENT_ID (now ${s.clientId})`;
	const row = (cause: string, whatYouSee: string, whatToChange: string): Diagnosis => ({
		cause,
		whatYouSee,
		whatToChange,
	});
	if (endpoint === "id_token") {
		return row(
			"id_token_unverified",
			"athena's id_token did not verify: another issuer or key",
			"ATHENA_ISSUER (empty: discovery's); ATHENA_JWKS_URL, athena's /oauth2/v1/keys (?client_id= is added)",
		);
	}
	if (error === "invalid_client") {
		if (/\bkid\b/.test(text)) return row("kid_unknown", kid, kidFix);
		if (/signature/.test(text)) {
			return row(
				"key_mismatch",
				"SIGNING_KEY is not the key published under its kid",
				"SIGNING_KEY: set it with `npm run keys -- rotate activate`",
			);
		}
		if (/aud/.test(text)) return row("assertion_audience", "athena expects another assertion aud", audFix);
		if (/client_id/.test(text)) return row("client_id_unknown", "athena does not know this client ID", idFix);
		if (/expire|\bexp\b|\biat\b/.test(text)) {
			return row("assertion_time", "athena judged the assertion expired", "The signer's clock");
		}
		return row("client_rejected", `${kid}; or the aud; or the client ID`, `${kidFix}; else ${audFix}; else ${idFix}`);
	}
	if (error === "invalid_scope") {
		return row(
			"scope_not_registered",
			"a scope asked for is not ticked on the portal",
			`Tick on the portal (or drop from SCOPES): ${s.scopes}`,
		);
	}
	if (/redirect/.test(text)) {
		return row(
			"redirect_uri_mismatch",
			"athena does not have our redirect URI",
			`Portal "Redirect URI" = REDIRECT_URI, exactly: ${s.redirectUri}`,
		);
	}
	if (endpoint === "token" && (error === "unauthorized_client" || error === "unsupported_grant_type")) {
		return row("client_authenticated", "athena accepted our assertion, refused only the grant", "Nothing");
	}
	if (error === "invalid_grant") {
		return row(
			"code_refused",
			"athena refused the code (expired, reused, or redirect_uri/PKCE differ)",
			"Sign in again; if it repeats, REDIRECT_URI",
		);
	}
	return row(
		"athena_refused",
		`athena answered ${error}${refusal.status ? ` (HTTP ${refusal.status})` : ""}`,
		"See athena's description; run `npm run keys -- live check`",
	);
}
