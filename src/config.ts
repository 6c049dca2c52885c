import * as z from "zod/mini";
import { AppError } from "./errors";

/**
 * The worker's settings, parsed and validated once per isolate from `env`.
 * Only the app's edges read `env`; everything else takes this typed object.
 */
export interface Config {
	environment: "local" | "preview" | "production";
	publicOrigin: string;
	clientId: string;
	redirectUri: string;
	/** Path part of the redirect URI: the callback route is served there. */
	callbackPath: string;
	/** Which server's rules apply beyond SMART App Launch: athena's (the default) or none (`smart`). */
	profile: "athena" | "smart";
	/**
	 * The authorization server and FHIR API. Endpoints left empty are read from
	 * `{fhirBaseUrl}/.well-known/smart-configuration` (src/oauth/discovery.ts);
	 * a value set here overrides discovery.
	 */
	athena: {
		authorizeUrl: string | undefined;
		tokenUrl: string | undefined;
		/** undefined and not discovered: the server offers no revocation (sign-out still ends our session). */
		revokeUrl: string | undefined;
		/** Expected `iss` of id_tokens and of the callback; undefined = read from smart-configuration at launch. */
		issuer: string | undefined;
		/**
		 * athena's end-session endpoint: signing out here also ends the patient's
		 * athena browser session there (shared computers); undefined = not ended.
		 */
		logoutUrl: string | undefined;
		/**
		 * The client assertion's `aud` for token calls; undefined = the URL posted
		 * to. Which one athena's gateway expects is unknown (Okta's own rule is its
		 * token URL), so it is a setting.
		 */
		assertionAudience: string | undefined;
		jwksUrl: string | undefined;
		fhirBaseUrl: string;
	};
	scopes: string[];
	defaultPractice: string | undefined;
	jwksMaxAgeSeconds: number;
	/** How long each isolate keeps the JWKS it read from KV (0 to 10 s). */
	jwksKvCacheSeconds: number;
	/** How long the FHIR proxy and the record page wait for athena's response headers. */
	fhirTimeoutMs: number;
	tokenRequestsPerMinute: number;
	/**
	 * Share of `tokenRequestsPerMinute` that sign-ins may take (0.1 to 1); the
	 * rest is kept for refreshing existing sessions, so a flood of sign-ins
	 * (or fake ones) never cuts connected patients off.
	 */
	signInShare: number;
	/** No answer from athena's token endpoint within this long: treated as unavailable. */
	tokenTimeoutMs: number;
	/** Refreshes one session may make in a minute (default 3): a signed-in user cannot drain the budget. */
	sessionRefreshesPerMinute: number;
	/**
	 * Further SMART servers a patient may connect besides the environment's own
	 * (SMART_SERVERS); the environment's own is `serverById(config, "athena")`.
	 */
	smartServers: SmartServer[];
	signingKeyPem: string;
	/** Session-encryption keys, newest first: [version, raw 32-byte key]. */
	sessionKeys: Array<{ version: string; key: Uint8Array<ArrayBuffer> }>;
}

/** A SMART on FHIR server a patient may connect: the environment's athena, or one listed in SMART_SERVERS. */
export interface SmartServer {
	/** `athena` for the environment's own server; `[a-z0-9-]{1,32}` for a listed one. */
	id: string;
	/** What the patient knows it by: "athenahealth", or the name the operator gave. */
	name: string;
	/** Without a trailing slash: the only place this server's tokens are ever sent. */
	fhirBaseUrl: string;
	clientId: string;
	profile: "athena" | "smart";
	/** This server's own token budget a minute (its TokenBudget object). */
	tokenRequestsPerMinute: number;
}

/** The id of the environment's own server (the top-level settings); never a listed server's. */
export const ATHENA_SERVER_ID = "athena";
/** At most this many servers in SMART_SERVERS: each is a button on the home page and its own budget object. */
export const MAX_SMART_SERVERS = 10;

/** Secrets: their values never appear in a message, only their names. */
export const SECRET_NAMES = ["SIGNING_KEY", "SESSION_ENCRYPTION_KEYS"] as const;

export type ConfigResult =
	| { ok: true; config: Config }
	/** `environment`: what ENVIRONMENT says, even when the rest is invalid (for /health). */
	| { ok: false; problems: string[]; environment: string };

function isHttpUrl(value: string): boolean {
	try {
		return /^https?:$/.test(new URL(value).protocol);
	} catch {
		return false;
	}
}
const urlSetting = z.string().check(z.refine(isHttpUrl, "must be an absolute http(s) URL"));
const optionalText = z.optional(z.string());
const integerSetting = (min: number, max: number) =>
	z.optional(
		z.string().check(
			z.regex(/^\d+$/, { error: `must be a whole number from ${min} to ${max}` }),
			z.refine((v) => Number(v) >= min && Number(v) <= max, `must be from ${min} to ${max}`),
		),
	);

/** The JWKS route's settings when nothing says otherwise. */
const DEFAULT_JWKS = { maxAgeSeconds: 300, kvCacheSeconds: 10 };

const EnvSchema = z.object({
	ENVIRONMENT: z.enum(["local", "preview", "production"], {
		error: 'must be "local", "preview" or "production"',
	}),
	PUBLIC_ORIGIN: urlSetting,
	CLIENT_ID: z.string().check(z.minLength(1, { error: "is empty" })),
	REDIRECT_URI: urlSetting,
	EHR_PROFILE: z.optional(z.enum(["athena", "smart"], { error: 'must be "athena" or "smart"' })),
	ATHENA_AUTHORIZE_URL: optionalText,
	ATHENA_TOKEN_URL: optionalText,
	ATHENA_REVOKE_URL: optionalText,
	ATHENA_ISSUER: optionalText,
	ATHENA_LOGOUT_URL: optionalText,
	ATHENA_ASSERTION_AUDIENCE: optionalText,
	ATHENA_JWKS_URL: optionalText,
	FHIR_BASE_URL: urlSetting,
	SCOPES: z.string().check(z.minLength(1, { error: "is empty" })),
	DEFAULT_PRACTICE: z.optional(z.string().check(z.regex(/^\d*$/, { error: "must be digits" }))),
	JWKS_MAX_AGE_SECONDS: integerSetting(0, 86_400),
	JWKS_KV_CACHE_SECONDS: integerSetting(0, 10),
	FHIR_TIMEOUT_MS: integerSetting(1, 120_000),
	TOKEN_REQUESTS_PER_MINUTE: integerSetting(1, 10_000),
	SIGN_IN_SHARE_PERCENT: integerSetting(10, 100),
	TOKEN_TIMEOUT_MS: integerSetting(100, 60_000),
	SESSION_REFRESHES_PER_MINUTE: integerSetting(1, 1000),
	SMART_SERVERS: optionalText,
	SIGNING_KEY: z
		.string({ error: "is not set (a PEM RSA private key secret)" })
		.check(z.minLength(1, { error: "is empty" })),
	SESSION_ENCRYPTION_KEYS: z
		.string({ error: "is not set (e.g. v1:<base64 of 32 random bytes>)" })
		.check(z.minLength(1, { error: "is empty" })),
});

function isLocalHost(hostname: string): boolean {
	return (
		hostname === "localhost" ||
		hostname.endsWith(".localhost") ||
		hostname === "[::1]" ||
		/^127\./.test(hostname) ||
		hostname === "0.0.0.0"
	);
}

function decodeBase64(value: string): Uint8Array<ArrayBuffer> | undefined {
	try {
		const binary = atob(value.replace(/-/g, "+").replace(/_/g, "/"));
		return Uint8Array.from(binary, (c) => c.charCodeAt(0));
	} catch {
		return undefined;
	}
}

/** `v2:<base64>,v1:<base64>`: the first key encrypts, all of them decrypt. */
function parseSessionKeys(value: string, problems: string[]): Config["sessionKeys"] {
	const keys: Config["sessionKeys"] = [];
	for (const [index, part] of value.split(",").entries()) {
		const match = /^\s*([A-Za-z0-9_-]{1,16}):([A-Za-z0-9+/_=-]+)\s*$/.exec(part);
		const key = match?.[2] ? decodeBase64(match[2]) : undefined;
		if (!match?.[1] || !key) {
			problems.push(`SESSION_ENCRYPTION_KEYS: entry ${index + 1} must look like "v1:<base64 key>"`);
		} else if (key.length !== 32) {
			problems.push(`SESSION_ENCRYPTION_KEYS: key "${match[1]}" must be 32 bytes (AES-256), got ${key.length}`);
		} else if (keys.some((k) => k.version === match[1])) {
			problems.push(`SESSION_ENCRYPTION_KEYS: key version "${match[1]}" appears twice`);
		} else keys.push({ version: match[1], key });
	}
	return keys;
}

/** Settings holding a URL, in the order their problems are listed. */
const URL_SETTINGS = [
	"PUBLIC_ORIGIN",
	"REDIRECT_URI",
	"FHIR_BASE_URL",
	"ATHENA_AUTHORIZE_URL",
	"ATHENA_TOKEN_URL",
	"ATHENA_REVOKE_URL",
	"ATHENA_JWKS_URL",
	"ATHENA_ISSUER",
	"ATHENA_LOGOUT_URL",
	"ATHENA_ASSERTION_AUDIENCE",
] as const;

const SERVER_ID = /^[a-z0-9-]{1,32}$/;
const SERVER_FIELDS = new Set(["id", "name", "fhirBaseUrl", "clientId", "profile", "tokenRequestsPerMinute"]);

/** The problems of one URL setting (or field): absolute, no credentials, https and not localhost outside `local`. */
function urlProblems(value: string, environment: Config["environment"]): string[] {
	let url: URL;
	try {
		url = new URL(value);
	} catch {
		return ["must be an absolute URL"];
	}
	const problems: string[] = [];
	if (url.username || url.password) problems.push("must not carry credentials");
	if (environment !== "local") {
		// athena only talks to HTTPS hosts it can reach; a deployed worker never points at a laptop.
		if (url.protocol !== "https:") problems.push(`must use https in ${environment}`);
		if (isLocalHost(url.hostname)) problems.push(`must not point at localhost in ${environment}`);
	}
	return problems;
}

/** One SMART_SERVERS entry, or its problems, each naming the entry and the field. */
function parseSmartServer(
	entry: unknown,
	index: number,
	environment: Config["environment"],
	defaultLimit: number,
	problems: string[],
): SmartServer | undefined {
	const where = `SMART_SERVERS: entry ${index + 1}`;
	if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
		problems.push(`${where} must be an object`);
		return undefined;
	}
	const raw = entry as Record<string, unknown>;
	const named = typeof raw.id === "string" && SERVER_ID.test(raw.id) ? `${where} ("${raw.id}")` : where;
	const before = problems.length;
	const text = (field: string): string => {
		const value = raw[field];
		if (typeof value !== "string" || value.trim() === "") {
			problems.push(`${named}: ${field} must be a non-empty string`);
			return "";
		}
		return value.trim();
	};
	for (const field of Object.keys(raw)) {
		if (!SERVER_FIELDS.has(field)) problems.push(`${named}: ${field} is not a server field`);
	}
	const id = text("id");
	if (id && !SERVER_ID.test(id)) problems.push(`${named}: id must be 1 to 32 of a-z, 0-9 and -`);
	if (id === ATHENA_SERVER_ID) problems.push(`${named}: id "athena" is the environment's own server`);
	const name = text("name");
	const fhirBaseUrl = text("fhirBaseUrl");
	if (fhirBaseUrl && !isHttpUrl(fhirBaseUrl)) problems.push(`${named}: fhirBaseUrl must be an absolute http(s) URL`);
	else if (fhirBaseUrl) {
		for (const p of urlProblems(fhirBaseUrl, environment)) problems.push(`${named}: fhirBaseUrl ${p}`);
		const url = new URL(fhirBaseUrl);
		// A listed server's tokens travel in the clear only to a server on this machine.
		if (environment === "local" && url.protocol === "http:" && !isLocalHost(url.hostname)) {
			problems.push(`${named}: fhirBaseUrl must use https unless it is on localhost`);
		}
	}
	const clientId = text("clientId");
	const profile = raw.profile ?? "smart";
	if (profile !== "athena" && profile !== "smart") problems.push(`${named}: profile must be "athena" or "smart"`);
	const limit = raw.tokenRequestsPerMinute ?? defaultLimit;
	if (typeof limit !== "number" || !Number.isInteger(limit) || limit < 1 || limit > 10_000) {
		problems.push(`${named}: tokenRequestsPerMinute must be a whole number from 1 to 10000`);
	}
	if (problems.length > before) return undefined;
	return {
		id,
		name,
		fhirBaseUrl: fhirBaseUrl.replace(/\/+$/, ""),
		clientId,
		profile: profile as SmartServer["profile"],
		tokenRequestsPerMinute: limit as number,
	};
}

/** SMART_SERVERS: a JSON array of at most MAX_SMART_SERVERS servers with unique ids. */
function parseSmartServers(
	value: string | undefined,
	environment: Config["environment"],
	defaultLimit: number,
	problems: string[],
): SmartServer[] {
	if (value === undefined || value.trim() === "") return [];
	let list: unknown;
	try {
		list = JSON.parse(value);
	} catch {
		problems.push("SMART_SERVERS: must be a JSON array of servers");
		return [];
	}
	if (!Array.isArray(list)) {
		problems.push("SMART_SERVERS: must be a JSON array of servers");
		return [];
	}
	if (list.length > MAX_SMART_SERVERS) {
		problems.push(`SMART_SERVERS: lists ${list.length} servers, at most ${MAX_SMART_SERVERS} are allowed`);
		return [];
	}
	const servers: SmartServer[] = [];
	for (const [index, entry] of list.entries()) {
		const server = parseSmartServer(entry, index, environment, defaultLimit, problems);
		if (!server) continue;
		if (servers.some((s) => s.id === server.id)) {
			problems.push(`SMART_SERVERS: entry ${index + 1} ("${server.id}"): id appears twice`);
		} else servers.push(server);
	}
	return servers;
}

/**
 * The server a launch, connection or budget names: the environment's own for
 * `athena` (or no id, on records from before servers had ids), else the one
 * SMART_SERVERS lists under that id; undefined for an id it does not list.
 *
 * @example
 * const server = serverById(config, c.req.query("server") ?? ATHENA_SERVER_ID);
 */
export function serverById(config: Config, id: string | undefined): SmartServer | undefined {
	if (id === undefined || id === ATHENA_SERVER_ID) {
		const { profile, clientId, tokenRequestsPerMinute } = config;
		const fhirBaseUrl = config.athena.fhirBaseUrl;
		const name = profile === "athena" ? "athenahealth" : new URL(fhirBaseUrl).host;
		return { id: ATHENA_SERVER_ID, name, fhirBaseUrl, clientId, profile, tokenRequestsPerMinute };
	}
	return config.smartServers.find((s) => s.id === id);
}

/**
 * Validates the raw bindings. Every problem names the setting and what is
 * wrong with it, never a secret's value.
 *
 * @example
 * const result = parseConfig(env);
 * if (!result.ok) console.error(result.problems.join("\n"));
 */
export function parseConfig(env: Record<string, unknown>): ConfigResult {
	const parsed = z.safeParse(EnvSchema, env);
	const environmentName = typeof env.ENVIRONMENT === "string" ? env.ENVIRONMENT : "unknown";
	if (!parsed.success) {
		return {
			ok: false,
			environment: environmentName,
			problems: parsed.error.issues.map((issue) => {
				const setting = String(issue.path[0] ?? "config");
				const message =
					issue.code === "invalid_type" && env[setting] === undefined && !/not set/.test(issue.message)
						? "is not set"
						: issue.message;
				return `${setting}: ${message}`;
			}),
		};
	}
	const raw = parsed.data;
	const problems: string[] = [];
	const environment = raw.ENVIRONMENT;
	const remote = environment !== "local";

	// The optional ones are checked when set (empty: discovered).
	for (const name of URL_SETTINGS) {
		const value = raw[name];
		if (value) for (const problem of urlProblems(value, environment)) problems.push(`${name}: ${problem}`);
	}
	const origin = new URL(raw.PUBLIC_ORIGIN);
	if (origin.pathname !== "/" || origin.search || origin.hash) {
		problems.push("PUBLIC_ORIGIN: must be an origin only, e.g. https://connector.example.com");
	}
	const redirect = new URL(raw.REDIRECT_URI);
	if (redirect.origin !== origin.origin) {
		problems.push("REDIRECT_URI: must be on PUBLIC_ORIGIN, where this worker serves the callback");
	}
	if (redirect.search || redirect.hash) problems.push("REDIRECT_URI: must have no query or fragment");
	if (remote && /^replace-with-/.test(raw.CLIENT_ID)) {
		problems.push(`CLIENT_ID: still the placeholder; set the ${environment} app's client ID from athena's portal`);
	}
	const scopes = raw.SCOPES.split(/\s+/).filter(Boolean);
	if (!scopes.includes("launch/patient")) {
		problems.push("SCOPES: must include launch/patient (the patient standalone launch)");
	}
	const sessionKeys = parseSessionKeys(raw.SESSION_ENCRYPTION_KEYS, problems);
	const tokenRequestsPerMinute = Number(raw.TOKEN_REQUESTS_PER_MINUTE ?? 5);
	const smartServers = parseSmartServers(raw.SMART_SERVERS, environment, tokenRequestsPerMinute, problems);
	if (problems.length > 0) return { ok: false, problems, environment };

	const trimSlash = (u: string) => u.replace(/\/+$/, "");
	return {
		ok: true,
		config: {
			environment,
			profile: raw.EHR_PROFILE ?? "athena",
			publicOrigin: origin.origin,
			clientId: raw.CLIENT_ID,
			redirectUri: raw.REDIRECT_URI,
			callbackPath: redirect.pathname,
			athena: {
				authorizeUrl: raw.ATHENA_AUTHORIZE_URL || undefined,
				tokenUrl: raw.ATHENA_TOKEN_URL || undefined,
				revokeUrl: raw.ATHENA_REVOKE_URL || undefined,
				issuer: raw.ATHENA_ISSUER || undefined,
				logoutUrl: raw.ATHENA_LOGOUT_URL || undefined,
				assertionAudience: raw.ATHENA_ASSERTION_AUDIENCE || undefined,
				jwksUrl: raw.ATHENA_JWKS_URL || undefined,
				fhirBaseUrl: trimSlash(raw.FHIR_BASE_URL),
			},
			scopes,
			defaultPractice: raw.DEFAULT_PRACTICE || undefined,
			jwksMaxAgeSeconds: Number(raw.JWKS_MAX_AGE_SECONDS ?? DEFAULT_JWKS.maxAgeSeconds),
			jwksKvCacheSeconds: Number(raw.JWKS_KV_CACHE_SECONDS ?? DEFAULT_JWKS.kvCacheSeconds),
			fhirTimeoutMs: Number(raw.FHIR_TIMEOUT_MS ?? 20_000),
			tokenRequestsPerMinute,
			// 60 %: 3 of preview's 5 a minute, 30 of production's 50; see README "Token budget".
			signInShare: Number(raw.SIGN_IN_SHARE_PERCENT ?? 60) / 100,
			tokenTimeoutMs: Number(raw.TOKEN_TIMEOUT_MS ?? 10_000),
			sessionRefreshesPerMinute: Number(raw.SESSION_REFRESHES_PER_MINUTE ?? 3),
			smartServers,
			signingKeyPem: raw.SIGNING_KEY,
			sessionKeys,
		},
	};
}

const cache = new WeakMap<object, ConfigResult>();

/** `parseConfig`, once per isolate: the `env` object is stable while it lives. */
export function configFor(env: object): ConfigResult {
	let result = cache.get(env);
	if (!result) {
		result = parseConfig(env as Record<string, unknown>);
		cache.set(env, result);
	}
	return result;
}

/**
 * The validated settings, or the one `config_invalid` error (503) whose
 * detail lists every problem for the operator's log.
 *
 * @example
 * const config = settings(c.env);
 */
export function settings(env: object): Config {
	const result = configFor(env);
	if (result.ok) return result.config;
	throw new AppError({
		code: "config_invalid",
		status: 503,
		message: "This service is not configured correctly yet. The operator can see what is missing at /health.",
		detail: result.problems.join("; "),
	});
}

/** What the JWKS route needs: served even before the rest is configured (athena's portal asks for the URL first). */
export interface JwksSettings {
	signingKeyPem: string;
	maxAgeSeconds: number;
	kvCacheSeconds: number;
}

const JwksMaxAge = integerSetting(0, 86_400);
const JwksKvCache = integerSetting(0, 10);

/**
 * One number read alone by the JWKS route: its default when missing or invalid.
 * safeParse, not `z.catch`: zod/mini's catch reaches `core.util` as a namespace,
 * which keeps all of zod's util module in the bundle (about 3 KiB gzipped).
 */
function jwksNumber(setting: typeof JwksMaxAge, value: unknown, fallback: number): number {
	const parsed = z.safeParse(setting, value);
	return parsed.success && parsed.data !== undefined ? Number(parsed.data) : fallback;
}

/**
 * The JWKS route's settings: the full config's when it is valid, else these
 * three read alone, an invalid number falling back to its default (`/health`
 * still reports it).
 */
export function jwksSettings(env: object): JwksSettings {
	const result = configFor(env);
	if (result.ok) {
		const { config } = result;
		return {
			signingKeyPem: config.signingKeyPem,
			maxAgeSeconds: config.jwksMaxAgeSeconds,
			kvCacheSeconds: config.jwksKvCacheSeconds,
		};
	}
	const raw = env as Record<string, unknown>;
	return {
		signingKeyPem: typeof raw.SIGNING_KEY === "string" ? raw.SIGNING_KEY : "",
		maxAgeSeconds: jwksNumber(JwksMaxAge, raw.JWKS_MAX_AGE_SECONDS, DEFAULT_JWKS.maxAgeSeconds),
		kvCacheSeconds: jwksNumber(JwksKvCache, raw.JWKS_KV_CACHE_SECONDS, DEFAULT_JWKS.kvCacheSeconds),
	};
}
