/**
 * Miniflare options that run the built sandbox (sandbox/dist/index.js, from
 * `node sandbox/build.mjs`) as an auxiliary worker, e.g. in another vitest
 * project's `cloudflareTest({ miniflare: { workers: [...] } })`.
 *
 * @example
 * cloudflareTest({
 *   wrangler: { configPath: "../../wrangler.toml" },
 *   miniflare: {
 *     serviceBindings: { ATHENA: "athena-sandbox" },
 *     workers: [sandboxWorkerOptions({ serviceBindings: { CLIENT: "athena-edge-connector" } })],
 *   },
 * })
 */

/** Values the sandbox reads from its vars; all optional, defaults in src/config.ts. */
export interface SandboxVars {
	SANDBOX_ISSUER?: string;
	SANDBOX_CLIENT_ID?: string;
	SANDBOX_REDIRECT_URIS?: string;
	SANDBOX_POST_LOGOUT_REDIRECT_URIS?: string;
	SANDBOX_CLIENT_JWKS_URL?: string;
	SANDBOX_ALLOWED_SCOPES?: string;
	SANDBOX_ACCESS_TOKEN_TTL?: string;
	SANDBOX_TOKEN_RATE_LIMIT?: string;
	SANDBOX_REFRESH_GRACE_SECONDS?: string;
}

export interface SandboxWorkerOverrides {
	/** Extra or replaced vars. */
	bindings?: SandboxVars & Record<string, string>;
	/**
	 * Service bindings; bind `CLIENT` to the worker under test (by its name, or
	 * to a fetch handler) so the sandbox fetches the client's JWKS through it.
	 */
	serviceBindings?: Record<string, string | ((request: Request) => Response | Promise<Response>)>;
	/** Defaults to sandbox/dist/index.js next to this file. */
	scriptPath?: string;
	/** Defaults to "athena-sandbox". */
	name?: string;
}

const COMPATIBILITY_DATE = "2026-11-01";
const COMPATIBILITY_FLAGS = ["nodejs_compat"];

/** The built bundle, resolved next to this file without any Node-only import. */
function defaultScriptPath(): string {
	return decodeURIComponent(new URL("./dist/index.js", import.meta.url).pathname);
}

/** Miniflare WorkerOptions for the sandbox, shaped for `miniflare.workers`. */
export function sandboxWorkerOptions(overrides: SandboxWorkerOverrides = {}) {
	const scriptPath = overrides.scriptPath ?? defaultScriptPath();
	return {
		name: overrides.name ?? "athena-sandbox",
		modules: true,
		scriptPath,
		// Module names are taken relative to modulesRoot; workerd refuses "..",
		// which the default (the importing project's root) would produce.
		modulesRoot: scriptPath.slice(0, scriptPath.lastIndexOf("/")),
		compatibilityDate: COMPATIBILITY_DATE,
		compatibilityFlags: COMPATIBILITY_FLAGS,
		durableObjects: { STATE: { className: "SandboxState", useSQLite: true } },
		bindings: {
			SANDBOX_CLIENT_ID: "local-dev-client",
			SANDBOX_REDIRECT_URIS: "http://localhost:3000/callback",
			SANDBOX_CLIENT_JWKS_URL: "http://localhost:3000/.well-known/jwks.json",
			SANDBOX_ACCESS_TOKEN_TTL: "3600",
			SANDBOX_TOKEN_RATE_LIMIT: "5",
			...overrides.bindings,
		},
		...(overrides.serviceBindings ? { serviceBindings: overrides.serviceBindings } : {}),
	};
}
