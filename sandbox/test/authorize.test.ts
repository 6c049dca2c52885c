import { beforeEach, describe, expect, it } from "vitest";
import {
	authorizeUrl,
	call,
	FHIR_BASE,
	form,
	freshSandbox,
	JANE,
	REDIRECT_URI,
	ROWAN,
	requestIdFrom,
	signIn,
} from "./helpers";

async function expectErrorPageWithoutRedirect(response: Response, text: RegExp): Promise<void> {
	expect(response.status).toBe(400);
	expect(response.headers.get("Location")).toBeNull();
	expect(response.headers.get("Content-Type")).toMatch(/text\/html/);
	expect(await response.text()).toMatch(text);
}

function redirectError(response: Response): URL {
	expect(response.status).toBe(302);
	const location = new URL(response.headers.get("Location") ?? "");
	expect(`${location.origin}${location.pathname}`).toBe(REDIRECT_URI);
	return location;
}

describe("authorize", () => {
	beforeEach(async () => {
		await freshSandbox();
	});

	it("shows an error page, never a redirect, for an unknown client_id", async () => {
		await expectErrorPageWithoutRedirect(await call(await authorizeUrl({ client_id: "other" })), /client_id/);
	});

	it("shows an error page for a redirect_uri that is not registered exactly", async () => {
		await expectErrorPageWithoutRedirect(
			await call(await authorizeUrl({ redirect_uri: `${REDIRECT_URI}/` })),
			/redirect_uri/,
		);
		await expectErrorPageWithoutRedirect(
			await call(await authorizeUrl({ redirect_uri: "https://evil.example/callback" })),
			/redirect_uri/,
		);
	});

	it("fails the whole request when one scope is not registered", async () => {
		const location = redirectError(
			await call(await authorizeUrl({ scope: "openid patient/Observation.read patient/*.read" })),
		);
		expect(location.searchParams.get("error")).toBe("invalid_scope");
		expect(location.searchParams.get("state")).toBe("state-abc");
		expect(location.searchParams.get("iss")).toBe("http://sandbox.test/oauth2");
	});

	it("refuses plain PKCE", async () => {
		const location = redirectError(await call(await authorizeUrl({ code_challenge_method: "plain" })));
		expect(location.searchParams.get("error")).toBe("invalid_request");
		expect(location.searchParams.get("error_description")).toMatch(/S256/);
	});

	it("refuses a request without PKCE", async () => {
		const location = redirectError(
			await call(await authorizeUrl({ code_challenge: undefined, code_challenge_method: undefined })),
		);
		expect(location.searchParams.get("error")).toBe("invalid_request");
	});

	it("refuses an aud other than its FHIR base", async () => {
		const location = redirectError(
			await call(await authorizeUrl({ aud: "https://api.platform.athenahealth.com/fhir/r4" })),
		);
		expect(location.searchParams.get("error")).toBe("invalid_request");
		expect(location.searchParams.get("error_description")).toContain(FHIR_BASE);
	});

	it("refuses a request without state or with another response_type", async () => {
		expect(redirectError(await call(await authorizeUrl({ state: undefined }))).searchParams.get("error")).toBe(
			"invalid_request",
		);
		expect(redirectError(await call(await authorizeUrl({ response_type: "token" }))).searchParams.get("error")).toBe(
			"unsupported_response_type",
		);
	});

	it("shows a plain HTML sign-in form, then consent listing the scopes", async () => {
		const start = await call(await authorizeUrl());
		const html = await start.text();
		expect(start.status).toBe(200);
		expect(html).toContain('name="username"');
		expect(html).toContain('name="password"');
		expect(html).toMatch(/<button type="submit">Sign in<\/button>/);
		expect(html).not.toContain("<script");
		const consent = await call(
			"/oauth2/v1/authorize/signin",
			form({ request: requestIdFrom(html), username: JANE.username, password: JANE.password, practice: "80000" }),
		);
		const consentHtml = await consent.text();
		expect(consent.status).toBe(200);
		expect(consentHtml).toContain("patient/Observation.rs");
		expect(consentHtml).toContain(">Allow<");
		expect(consentHtml).toContain(">Deny<");
	});

	it("refuses a wrong password and a practice the account does not belong to", async () => {
		const request = requestIdFrom(await (await call(await authorizeUrl())).text());
		const wrong = await call(
			"/oauth2/v1/authorize/signin",
			form({ request, username: JANE.username, password: ROWAN.password, practice: "" }),
		);
		expect(wrong.status).toBe(401);
		expect(await wrong.text()).toMatch(/not correct/);
		const otherPractice = await call(
			"/oauth2/v1/authorize/signin",
			form({ request, username: ROWAN.username, password: ROWAN.password, practice: "80000" }),
		);
		expect(otherPractice.status).toBe(401);
	});

	it("redirects with a code, the state and iss when the patient allows", async () => {
		const { location } = await signIn();
		expect(location.searchParams.get("code")).toMatch(/^[A-Za-z0-9_-]{40,}$/);
		expect(location.searchParams.get("state")).toBe("state-abc");
		expect(location.searchParams.get("iss")).toBe("http://sandbox.test/oauth2");
	});

	it("redirects with access_denied and the state when the patient denies", async () => {
		const { location } = await signIn(JANE, { decision: "deny" });
		expect(location.searchParams.get("error")).toBe("access_denied");
		expect(location.searchParams.get("state")).toBe("state-abc");
		expect(location.searchParams.get("code")).toBeNull();
	});

	it("answers consent only once per request", async () => {
		const start = await call(await authorizeUrl());
		const request = requestIdFrom(await start.text());
		await call("/oauth2/v1/authorize/signin", form({ request, username: JANE.username, password: JANE.password }));
		expect((await call("/oauth2/v1/authorize/consent", form({ request, decision: "allow" }))).status).toBe(302);
		const again = await call("/oauth2/v1/authorize/consent", form({ request, decision: "allow" }));
		expect(again.status).toBe(400);
		expect(again.headers.get("Location")).toBeNull();
	});

	it("refuses consent before sign-in", async () => {
		const request = requestIdFrom(await (await call(await authorizeUrl())).text());
		const response = await call("/oauth2/v1/authorize/consent", form({ request, decision: "allow" }));
		expect(response.status).toBe(400);
		expect(response.headers.get("Location")).toBeNull();
	});
});
