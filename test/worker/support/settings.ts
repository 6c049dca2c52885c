import { env } from "cloudflare:workers";

/**
 * The worker's settings as a production deployment would hold them: the test
 * run's own (env) with production's environment, origin, client and athena's
 * production endpoints. The test run lists the local sandbox as a second
 * server (test/worker/vitest.config.ts); production could not, so none here.
 */
export const PRODUCTION_SETTINGS: Record<string, unknown> = {
	...(env as unknown as Record<string, unknown>),
	ENVIRONMENT: "production",
	SMART_SERVERS: "[]",
	PUBLIC_ORIGIN: "https://connector.example.com",
	CLIENT_ID: "0oa1prodclient",
	REDIRECT_URI: "https://connector.example.com/api/auth/smart/callback",
	ATHENA_AUTHORIZE_URL: "https://api.platform.athenahealth.com/oauth2/v1/authorize",
	ATHENA_TOKEN_URL: "https://api.platform.athenahealth.com/oauth2/v1/token",
	ATHENA_REVOKE_URL: "https://api.platform.athenahealth.com/oauth2/v1/revoke",
	ATHENA_ISSUER: "",
	ATHENA_JWKS_URL: "https://api.platform.athenahealth.com/oauth2/v1/keys",
	FHIR_BASE_URL: "https://api.platform.athenahealth.com/fhir/r4",
	ATHENA_LOGOUT_URL: "https://api.platform.athenahealth.com/oauth2/v1/logout",
};
