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
	const aud = s.assertionAudience || s.tokenUrl;
	const kid = `athena does not know the key our assertion names (kid): the JWKS URL on the portal is not ${s.publicJwksUrl}, the key is not published there, or athena still holds an older copy`;
	const kidFix = `Portal "JWKS URL" = ${s.publicJwksUrl}; publish with \`npm run keys\`, then wait JWKS_MAX_AGE_SECONDS + ${PROPAGATION_SECONDS} s = ${wait} s before it signs`;
	const audFix = `ATHENA_ASSERTION_AUDIENCE: set it to the URL athena expects (now ${aud})`;
	const idFix = `CLIENT_ID: this environment's client ID from the portal (now ${s.clientId})`;
	const row = (cause: string, whatYouSee: string, whatToChange: string): Diagnosis => ({
		cause,
		whatYouSee,
		whatToChange,
	});
	if (endpoint === "id_token") {
		return row(
			"id_token_unverified",
			"athena's id_token did not verify: another issuer, or a key not in athena's JWKS",
			"ATHENA_ISSUER: athena's Okta issuer (discovery's issuer when empty); ATHENA_JWKS_URL: athena's /oauth2/v1/keys (the worker adds ?client_id=)",
		);
	}
	if (error === "invalid_client") {
		if (/\bkid\b/.test(text)) return row("kid_unknown", kid, kidFix);
		if (/signature/.test(text)) {
			return row(
				"key_mismatch",
				"the key athena holds under our kid is not the one that signed: the deployed SIGNING_KEY is not the published key",
				"Run `npm run keys -- live check`; `rotate activate` sets SIGNING_KEY and the JWKS together",
			);
		}
		if (/aud/.test(text)) return row("assertion_audience", `athena expects another aud than ${aud}`, audFix);
		if (/client_id/.test(text)) return row("client_id_unknown", `athena does not know client ID ${s.clientId}`, idFix);
		if (/expire|\bexp\b|\biat\b/.test(text)) {
			return row(
				"assertion_time",
				"athena judged the assertion expired or not yet valid",
				"The clock of whatever signs (worker or this machine) must be right to within seconds",
			);
		}
		return row(
			"client_rejected",
			`athena refused our client assertion: ${kid}; or its aud; or the client ID`,
			`${kidFix}. Else ${audFix}. Else ${idFix}`,
		);
	}
	if (error === "invalid_scope") {
		return row(
			"scope_not_registered",
			"athena refused a scope the app asks for: one is not ticked on the portal",
			`Tick on the portal every scope in SCOPES, or remove it from SCOPES: ${s.scopes}`,
		);
	}
	if (/redirect/.test(text)) {
		return row(
			"redirect_uri_mismatch",
			`athena does not have ${s.redirectUri} as a redirect URI of this app`,
			`Portal "Redirect URI" must be exactly REDIRECT_URI: ${s.redirectUri}`,
		);
	}
	if (endpoint === "token" && (error === "unauthorized_client" || error === "unsupported_grant_type")) {
		return row(
			"client_authenticated",
			"athena accepted the client assertion and refused only the grant (patient apps are 3-legged)",
			"Nothing: client authentication works",
		);
	}
	if (error === "invalid_grant") {
		return row(
			"code_refused",
			"athena refused the code: expired, used already, or another redirect_uri or PKCE verifier",
			"Start the sign-in again; if it repeats, check REDIRECT_URI is the one the portal has",
		);
	}
	return row(
		"athena_refused",
		`athena answered ${error}${refusal.status ? ` (HTTP ${refusal.status})` : ""}`,
		"Read athena's description; `npm run keys -- live check` checks the keys, discovery and redirect URI",
	);
}
