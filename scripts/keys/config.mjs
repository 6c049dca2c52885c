// @ts-check
// Reads each environment's settings from wrangler.toml with wrangler's own
// parser, so the CLI sees exactly what `wrangler deploy --env <name>` sees
// (vars and kv_namespaces are not inherited by [env.*]).
import { KeysError } from "./errors.mjs";
import { ENVIRONMENTS } from "./key-material.mjs";

/**
 * How long after a KV write the worker everywhere is assumed to serve it: KV's
 * own propagation (60 s remotely; local KV is one process on one disk) plus
 * the worker's in-isolate cache of the JWKS (10 s, JWKS_ISOLATE_CACHE_SECONDS
 * in src/routes/jwks.ts).
 */
export const KV_PROPAGATION_SECONDS = { local: 10, preview: 70, production: 70 };
const DEFAULT_MAX_AGE_SECONDS = 300;

/**
 * @typedef {{
 *   environment: "local" | "preview" | "production",
 *   workerName: string,
 *   publicOrigin: string,
 *   jwksUrl: string,
 *   redirectUri: string,
 *   clientId: string,
 *   scopes: string,
 *   fhirBaseUrl: string,
 *   tokenUrl: string,
 *   assertionAudience: string,
 *   maxAgeSeconds: number,
 *   propagationSeconds: number,
 *   kvNamespaceId: string,
 * }} EnvironmentSettings
 */

/** @param {string} environment */
export function assertEnvironment(environment) {
	if (!ENVIRONMENTS.includes(/** @type {never} */ (environment))) {
		throw new KeysError(
			"bad_environment",
			`--env must be one of ${ENVIRONMENTS.join(", ")} (got ${environment || "nothing"})`,
		);
	}
	return /** @type {EnvironmentSettings["environment"]} */ (environment);
}

/**
 * @param {Record<string, unknown>} vars
 * @param {string} name
 */
function text(vars, name) {
	const value = vars[name];
	return typeof value === "string" ? value : "";
}

/**
 * Settings of `environment` from the parsed config of every environment. Refuses
 * a config where the environment's vars name another environment, or where two
 * environments share a JWKS_KV namespace: either would let one environment's
 * keys land in another's.
 * @param {string} environment
 * @param {Record<string, { name?: string, vars?: Record<string, unknown>, kv_namespaces?: { binding: string, id?: string }[] }>} configs parsed config per environment
 * @returns {EnvironmentSettings}
 */
export function settingsFrom(environment, configs) {
	const env = assertEnvironment(environment);
	const kvIds = Object.fromEntries(
		ENVIRONMENTS.map((e) => [e, configs[e]?.kv_namespaces?.find((b) => b.binding === "JWKS_KV")?.id ?? ""]),
	);
	const config = configs[env];
	const vars = config?.vars ?? {};
	if (text(vars, "ENVIRONMENT") !== env) {
		throw new KeysError(
			"environment_mismatch",
			`wrangler.toml's ${env === "local" ? "top-level" : `[env.${env}]`} vars say ENVIRONMENT = "${text(vars, "ENVIRONMENT")}", not "${env}"; fix wrangler.toml before touching keys.`,
		);
	}
	const kvNamespaceId = kvIds[env] ?? "";
	if (!kvNamespaceId) throw new KeysError("config_invalid", `wrangler.toml has no JWKS_KV namespace for ${env}`);
	const sharing = ENVIRONMENTS.filter((e) => e !== env && kvIds[e] === kvNamespaceId);
	if (sharing.length > 0) {
		throw new KeysError(
			"environment_mismatch",
			`${env} and ${sharing.join(", ")} use the same JWKS_KV namespace (${kvNamespaceId}); each environment needs its own.`,
		);
	}
	const maxAge = Number(text(vars, "JWKS_MAX_AGE_SECONDS") || DEFAULT_MAX_AGE_SECONDS);
	const publicOrigin = text(vars, "PUBLIC_ORIGIN").replace(/\/+$/, "");
	return {
		environment: env,
		workerName: config?.name ?? "",
		publicOrigin,
		jwksUrl: `${publicOrigin}/.well-known/jwks.json`,
		redirectUri: text(vars, "REDIRECT_URI"),
		clientId: text(vars, "CLIENT_ID"),
		scopes: text(vars, "SCOPES"),
		fhirBaseUrl: text(vars, "FHIR_BASE_URL").replace(/\/+$/, ""),
		tokenUrl: text(vars, "ATHENA_TOKEN_URL"),
		assertionAudience: text(vars, "ATHENA_ASSERTION_AUDIENCE"),
		maxAgeSeconds: Number.isInteger(maxAge) && maxAge >= 0 ? maxAge : DEFAULT_MAX_AGE_SECONDS,
		propagationSeconds: KV_PROPAGATION_SECONDS[env],
		kvNamespaceId,
	};
}

/**
 * Parses wrangler.toml for every environment and returns the settings of one.
 * @param {string} configPath
 * @param {string} environment
 */
export async function loadSettings(configPath, environment) {
	assertEnvironment(environment);
	const { unstable_readConfig } = await import("wrangler");
	/** @type {Record<string, any>} */
	const configs = {};
	for (const e of ENVIRONMENTS) {
		configs[e] = unstable_readConfig(
			{ config: configPath, env: e === "local" ? undefined : e },
			{ hideWarnings: true },
		);
	}
	return settingsFrom(environment, configs);
}
