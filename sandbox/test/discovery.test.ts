import { createLocalJWKSet, decodeJwt, jwtVerify } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import {
	authorizeUrl,
	CLIENT_ID,
	call,
	control,
	FHIR_BASE,
	freshSandbox,
	ISSUER,
	login,
	ORIGIN,
	signIn,
	type TestClientKey,
} from "./helpers";

describe("discovery, as athena serves it", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	it("serves smart-configuration under the FHIR base only, with an Okta issuer on another host", async () => {
		const response = await call("/fhir/r4/.well-known/smart-configuration");
		expect(response.status).toBe(200);
		const smart = (await response.json()) as Record<string, unknown>;
		expect(smart.issuer).toBe(ISSUER);
		const issuer = new URL(String(smart.issuer));
		expect(issuer.host).not.toBe(new URL(ORIGIN).host);
		expect(issuer.pathname).toMatch(/^\/oauth2\/aus[A-Za-z0-9]+$/);
		expect(smart.issuer).not.toBe(FHIR_BASE);
		for (const path of ["/.well-known/smart-configuration", "/.well-known/openid-configuration"]) {
			expect((await call(path)).status).toBe(404);
		}
	});

	it("lists athena's endpoints, client authentication methods, grants and capabilities", async () => {
		const smart = (await (await call("/fhir/r4/.well-known/smart-configuration")).json()) as Record<string, unknown>;
		expect(smart).toMatchObject({
			authorization_endpoint: `${ORIGIN}/oauth2/v1/authorize`,
			token_endpoint: `${ORIGIN}/oauth2/v1/token`,
			revocation_endpoint: `${ORIGIN}/oauth2/v1/revoke`,
			introspection_endpoint: `${ORIGIN}/oauth2/v1/introspect`,
			end_session_endpoint: `${ORIGIN}/oauth2/v1/logout`,
			jwks_uri: `${ORIGIN}/oauth2/v1/keys`,
			token_endpoint_auth_methods_supported: [
				"client_secret_basic",
				"client_secret_post",
				"client_secret_jwt",
				"private_key_jwt",
				"none",
			],
			code_challenge_methods_supported: ["S256"],
			// Refresh works with offline_access, yet athena does not list the grant.
			grant_types_supported: ["authorization_code", "client_credentials"],
		});
		expect(smart.capabilities).toEqual(
			expect.arrayContaining([
				"launch-standalone",
				"client-confidential-asymmetric",
				"context-standalone-patient",
				"permission-offline",
				"permission-patient",
				"permission-v1",
				"permission-v2",
				"sso-openid-connect",
			]),
		);
	});

	it("takes its issuer from /_sandbox/config, for discovery, id_tokens and every authorization response", async () => {
		const other = "http://okta.sandbox.example:8443/oauth2/aus0other0server";
		const updated = await control("config", { issuer: other });
		expect(await updated.json()).toMatchObject({ issuer: other });
		const smart = (await (await call("/fhir/r4/.well-known/smart-configuration")).json()) as { issuer: string };
		expect(smart.issuer).toBe(other);
		expect(decodeJwt((await login(key)).id_token ?? "").iss).toBe(other);
		expect((await signIn()).location.searchParams.get("iss")).toBe(other);
		expect((await signIn(undefined, { decision: "deny" })).location.searchParams.get("iss")).toBe(other);
		const refused = await call(await authorizeUrl({ code_challenge_method: "plain" }));
		expect(new URL(refused.headers.get("Location") ?? "").searchParams.get("iss")).toBe(other);
	});
});

describe("/oauth2/v1/keys", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	it("refuses a request without client_id, or with an unknown one, in Okta's error shape", async () => {
		for (const [path, summary] of [
			["/oauth2/v1/keys", /client_id must be provided/],
			["/oauth2/v1/keys?client_id=", /client_id must be provided/],
			["/oauth2/v1/keys?client_id=someone-else", /Invalid value for 'client_id'/],
		] as const) {
			const response = await call(path);
			expect(response.status).toBe(400);
			expect(response.headers.get("Content-Type")).toMatch(/application\/json/);
			const body = (await response.json()) as Record<string, unknown>;
			expect(body).toMatchObject({ errorCode: "invalid_client", errorLink: "invalid_client", errorCauses: [] });
			expect(String(body.errorSummary)).toMatch(summary);
			expect(JSON.stringify(body)).not.toContain('"keys"');
		}
	});

	it("serves the key that verifies its id_tokens to the registered client_id", async () => {
		const tokens = await login(key);
		const response = await call(`/oauth2/v1/keys?client_id=${CLIENT_ID}`);
		expect(response.status).toBe(200);
		const keys = await response.json();
		const { payload } = await jwtVerify(tokens.id_token ?? "", createLocalJWKSet(keys as never), {
			issuer: ISSUER,
			audience: CLIENT_ID,
		});
		expect(payload.sub).toBe(tokens.patient);
	});
});
