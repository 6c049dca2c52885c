import type { Context } from "hono";
import { sandboxUrls } from "./config";
import { type AppEnv, effectiveConfig, stateStub } from "./context";

/**
 * `{FHIR base}/.well-known/smart-configuration`, as athena serves it
 * (shared/athena-observed.md): the issuer is its Okta authorization server,
 * not the API host; every root `/.well-known/*` stays 404. It lists what
 * athena lists, including client authentication methods and a grant the
 * sandbox's one registered client cannot use (private_key_jwt and the
 * authorization code are its registration), and, like athena, no
 * `refresh_token` grant although refresh works with `offline_access`.
 */
export async function smartConfiguration(c: Context<AppEnv>): Promise<Response> {
	const urls = sandboxUrls(c.req.url);
	const config = await effectiveConfig(c.env, stateStub(c.env));
	return c.json({
		issuer: config.issuer,
		jwks_uri: urls.keys,
		authorization_endpoint: urls.authorize,
		token_endpoint: urls.token,
		revocation_endpoint: urls.revoke,
		introspection_endpoint: urls.introspect,
		end_session_endpoint: urls.logout,
		grant_types_supported: ["authorization_code", "client_credentials"],
		response_types_supported: ["code"],
		token_endpoint_auth_methods_supported: [
			"client_secret_basic",
			"client_secret_post",
			"client_secret_jwt",
			"private_key_jwt",
			"none",
		],
		token_endpoint_auth_signing_alg_values_supported: ["RS384"],
		scopes_supported: [...config.allowedScopes],
		code_challenge_methods_supported: ["S256"],
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
	});
}
