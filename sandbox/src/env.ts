import type { SandboxState } from "./sandbox-state";

/**
 * The sandbox's bindings. Only the edges (routes, the Durable Object) read
 * this; everything else receives a parsed {@link SandboxConfig}.
 */
export interface SandboxEnv {
	STATE: DurableObjectNamespace<SandboxState>;
	/**
	 * Optional service binding to the client (the product's worker). When bound,
	 * the client's JWKS is fetched through it instead of the network, so tests
	 * can let the worker under test serve its own JWKS without sockets.
	 */
	CLIENT?: Fetcher;
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
