import * as z from "zod/mini";
import { ATHENA_SERVER_ID, type Config, type SmartServer } from "../config";
import { AppError } from "../errors";

/** The authorization server a sign-in talks to, settled at `/launch` and kept with the state and the session. */
export interface AuthorizationServer {
	issuer: string;
	authorizeUrl: string;
	tokenUrl: string;
	/** undefined: the server offers no revocation; sign-out still ends our session. */
	revokeUrl: string | undefined;
	/** undefined: id_tokens cannot be verified, so an id_token in a token response is refused. */
	jwksUrl: string | undefined;
}

/** How long a discovered document is trusted before it is read again. */
const DISCOVERY_TTL_MS = 60 * 60_000;
const DISCOVERY_TIMEOUT_MS = 5000;

// SMART App Launch 2.2 §2.1 (".well-known/smart-configuration"): the fields this worker uses.
const SmartConfiguration = z.object({
	issuer: z.optional(z.string()),
	authorization_endpoint: z.optional(z.string()),
	token_endpoint: z.optional(z.string()),
	revocation_endpoint: z.optional(z.string()),
	jwks_uri: z.optional(z.string()),
	code_challenge_methods_supported: z.optional(z.array(z.string())),
	token_endpoint_auth_methods_supported: z.optional(z.array(z.string())),
});
type SmartConfiguration = z.infer<typeof SmartConfiguration>;

const discovered = new Map<string, { at: number; document: Promise<SmartConfiguration> }>();

function unavailable(detail: string): AppError {
	return new AppError({
		code: "discovery_unavailable",
		status: 503,
		message: "The record server's sign-in settings could not be read. Please try again shortly.",
		detail,
		retryAfterSeconds: 30,
	});
}

/** `{FHIR base}/.well-known/smart-configuration` (athena serves it under the FHIR base only), cached per isolate. */
function smartConfiguration(fhirBaseUrl: string, fetcher: typeof fetch, now: number): Promise<SmartConfiguration> {
	const cached = discovered.get(fhirBaseUrl);
	if (cached && now - cached.at < DISCOVERY_TTL_MS) return cached.document;
	const document = (async () => {
		let response: Response;
		try {
			response = await fetcher(`${fhirBaseUrl}/.well-known/smart-configuration`, {
				headers: { Accept: "application/json" },
				signal: AbortSignal.timeout(DISCOVERY_TIMEOUT_MS),
				redirect: "manual",
			});
		} catch {
			throw unavailable("smart-configuration unreachable");
		}
		const json: unknown = response.ok ? await response.json().catch(() => undefined) : undefined;
		const parsed = z.safeParse(SmartConfiguration, json);
		if (!parsed.success) throw unavailable(`smart-configuration answered ${response.status} without a usable document`);
		return parsed.data;
	})();
	discovered.set(fhirBaseUrl, { at: now, document });
	// A failure is not kept: the next sign-in asks again.
	document.catch(() => {
		if (discovered.get(fhirBaseUrl)?.document === document) discovered.delete(fhirBaseUrl);
	});
	return document;
}

/** A URL a discovery document names: absolute, https (http only for a local environment), no credentials. */
function endpoint(value: string | undefined, name: string, allowHttp: boolean): string | undefined {
	if (value === undefined || value === "") return undefined;
	let url: URL;
	try {
		url = new URL(value);
	} catch {
		throw unavailable(`smart-configuration ${name} is not a URL`);
	}
	if ((url.protocol !== "https:" && !(allowHttp && url.protocol === "http:")) || url.username || url.password) {
		throw unavailable(`smart-configuration ${name} is not an https URL`);
	}
	return url.toString();
}

/**
 * What the server must support for this worker's sign-in: PKCE S256 and
 * `private_key_jwt` (SMART client-confidential-asymmetric). Refused up front,
 * with what is missing, rather than failing at athena's token endpoint.
 */
function checkSupport(document: SmartConfiguration): void {
	const missing: string[] = [];
	if (!document.code_challenge_methods_supported?.includes("S256")) missing.push("PKCE S256");
	if (!document.token_endpoint_auth_methods_supported?.includes("private_key_jwt")) missing.push("private_key_jwt");
	if (missing.length > 0) {
		throw new AppError({
			code: "server_unsupported",
			status: 503,
			message: `The record server does not support what this app needs to sign in safely (${missing.join(" and ")}).`,
			detail: `smart-configuration lacks ${missing.join(", ")}`,
		});
	}
}

/**
 * The authorization server for a sign-in: every endpoint set in config wins;
 * any left empty (and the issuer) come from the FHIR server's
 * smart-configuration, which must then offer PKCE S256 and `private_key_jwt`.
 * With everything configured, nothing is fetched.
 *
 * @example
 * const server = await authorizationServer(config, fetch);
 * new URL(server.authorizeUrl);
 */
export async function authorizationServer(
	config: Pick<Config, "athena" | "environment">,
	fetcher: typeof fetch,
	now = Date.now(),
): Promise<AuthorizationServer> {
	const set = config.athena;
	const complete = set.issuer && set.authorizeUrl && set.tokenUrl && set.revokeUrl && set.jwksUrl;
	if (complete) {
		return {
			issuer: set.issuer as string,
			authorizeUrl: set.authorizeUrl as string,
			tokenUrl: set.tokenUrl as string,
			revokeUrl: set.revokeUrl,
			jwksUrl: set.jwksUrl,
		};
	}
	const document = await smartConfiguration(set.fhirBaseUrl, fetcher, now);
	try {
		checkSupport(document);
	} catch (refusal) {
		// Not kept: a server fixed by its operator is seen at the next sign-in, not in an hour.
		discovered.delete(set.fhirBaseUrl);
		throw refusal;
	}
	const allowHttp = config.environment === "local";
	const issuer = set.issuer ?? document.issuer;
	const authorizeUrl =
		set.authorizeUrl ?? endpoint(document.authorization_endpoint, "authorization_endpoint", allowHttp);
	const tokenUrl = set.tokenUrl ?? endpoint(document.token_endpoint, "token_endpoint", allowHttp);
	if (!issuer || !authorizeUrl || !tokenUrl) {
		throw unavailable("smart-configuration lacks issuer, authorization_endpoint or token_endpoint");
	}
	return {
		issuer,
		authorizeUrl,
		tokenUrl,
		revokeUrl: set.revokeUrl ?? endpoint(document.revocation_endpoint, "revocation_endpoint", allowHttp),
		jwksUrl: set.jwksUrl ?? endpoint(document.jwks_uri, "jwks_uri", allowHttp),
	};
}

/**
 * The authorization server of a server a patient may connect: the
 * environment's athena as configured (authorizationServer), or a SMART_SERVERS
 * entry, every endpoint of which is discovered from its own FHIR base.
 *
 * @example
 * const endpoints = await serverEndpoints(config, serverById(config, "city-clinic"), fetch);
 */
export function serverEndpoints(
	config: Pick<Config, "athena" | "environment">,
	server: Pick<SmartServer, "id" | "fhirBaseUrl">,
	fetcher: typeof fetch,
	now = Date.now(),
): Promise<AuthorizationServer> {
	if (server.id === ATHENA_SERVER_ID) return authorizationServer(config, fetcher, now);
	return authorizationServer(
		{ environment: config.environment, athena: discoverAll(server.fhirBaseUrl) },
		fetcher,
		now,
	);
}

/** Server settings that name nothing but the FHIR base: every endpoint is discovered from it. */
export function discoverAll(fhirBaseUrl: string): Config["athena"] {
	return {
		authorizeUrl: undefined,
		tokenUrl: undefined,
		revokeUrl: undefined,
		issuer: undefined,
		logoutUrl: undefined,
		assertionAudience: undefined,
		jwksUrl: undefined,
		fhirBaseUrl,
	};
}
