import { beforeEach, describe, expect, it } from "vitest";
import {
	authorizeUrl,
	CLIENT_ID,
	call,
	control,
	freshSandbox,
	REDIRECT_URI,
	signAssertion,
	type TestClientKey,
	type TokenBody,
	tokenRequest,
} from "./helpers";

interface Received {
	tokenCalls: Array<{ grantType: string | null; status: number; error?: string }>;
	assertions: Array<{ accepted: boolean; error?: string }>;
}

async function received(): Promise<Received> {
	return (await (await call("/_sandbox/received")).json()) as Received;
}

async function errorOf(response: Response): Promise<TokenBody> {
	return (await response.json()) as TokenBody;
}

describe("first contact: athena's answers, worded as Okta words them", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	it("accepts the assertion of a client_credentials grant, then refuses the grant with unauthorized_client, and records it", async () => {
		const response = await tokenRequest(
			{ grant_type: "client_credentials", client_id: CLIENT_ID },
			await signAssertion(key),
		);
		expect(response.status).toBe(400);
		expect(await errorOf(response)).toEqual({
			error: "unauthorized_client",
			error_description:
				"The client is not authorized to use the provided grant type. Configured grant types: [authorization_code, refresh_token].",
		});
		const log = await received();
		expect(log.tokenCalls.at(-1)).toMatchObject({
			grantType: "client_credentials",
			status: 400,
			error: "unauthorized_client",
		});
		expect(log.assertions.at(-1)).toMatchObject({ accepted: true });
	});

	it("answers a client_credentials grant with an unknown kid, a wrong aud or an unknown client with invalid_client in Okta's words", async () => {
		const grant = { grant_type: "client_credentials", client_id: CLIENT_ID };
		const kid = await tokenRequest(grant, await signAssertion(key, { header: { kid: "not-published" } }));
		expect(kid.status).toBe(401);
		expect(await errorOf(kid)).toEqual({
			error: "invalid_client",
			error_description: "The client_assertion JWT kid is invalid.",
		});
		const aud = await tokenRequest(
			grant,
			await signAssertion(key, { claims: { aud: "https://athena.example/token" } }),
		);
		expect(await errorOf(aud)).toEqual({
			error: "invalid_client",
			error_description: "The audience claim for client_assertion must be the endpoint invoked for the request.",
		});
		const client = await tokenRequest({ ...grant, client_id: "someone-else" }, await signAssertion(key));
		expect(await errorOf(client)).toEqual({
			error: "invalid_client",
			error_description: "Invalid value for 'client_id' parameter.",
		});
		expect((await received()).tokenCalls.map((t) => t.error)).toEqual([
			"invalid_client",
			"invalid_client",
			"invalid_client",
		]);
	});

	it("answers an injected OAuth error with the description given, once", async () => {
		const fault = await control("faults", {
			target: "token",
			oauthError: "invalid_client",
			description: "The client_assertion token has an expired time",
			times: 1,
		});
		expect(fault.status).toBe(200);
		const first = await tokenRequest({ grant_type: "client_credentials" }, await signAssertion(key));
		expect(first.status).toBe(401);
		expect(await errorOf(first)).toEqual({
			error: "invalid_client",
			error_description: "The client_assertion token has an expired time",
		});
		const second = await tokenRequest({ grant_type: "client_credentials" }, await signAssertion(key));
		expect((await errorOf(second)).error).toBe("unauthorized_client");
	});

	it("refuses an OAuth error fault on the fhir target, and a description without an error", async () => {
		expect((await control("faults", { target: "fhir", oauthError: "invalid_client" })).status).toBe(400);
		expect((await control("faults", { target: "token", status: 400, description: "x" })).status).toBe(400);
	});

	it("redirects an authorize asking for a scope not ticked on the portal with Okta's invalid_scope", async () => {
		const config = await control("config", { allowedScopes: ["openid", "fhirUser", "launch/patient"] });
		expect(config.status).toBe(200);
		const response = await call(await authorizeUrl({ scope: "openid launch/patient patient/Patient.read" }));
		expect(response.status).toBe(302);
		const location = new URL(response.headers.get("Location") ?? "");
		expect(`${location.origin}${location.pathname}`).toBe(REDIRECT_URI);
		expect(location.searchParams.get("error")).toBe("invalid_scope");
		expect(location.searchParams.get("error_description")).toBe(
			"One or more scopes are not configured for the authorization server resource.",
		);
	});

	it("shows Okta's page for a redirect_uri that is not registered", async () => {
		const response = await call(await authorizeUrl({ redirect_uri: "https://connector.example/callback" }));
		expect(response.status).toBe(400);
		expect(response.headers.get("Location")).toBeNull();
		expect(await response.text()).toContain(
			"The &#39;redirect_uri&#39; parameter must be a Login redirect URI in the client app settings",
		);
	});
});
