import { beforeEach, describe, expect, it } from "vitest";
import { AVERY, JAKE_SECOND_PRACTICE } from "../src/users";
import {
	authorizeUrl,
	call,
	exchangeCode,
	FHIR_BASE,
	form,
	freshSandbox,
	ISSUER,
	JANE,
	LILY,
	REDIRECT_URI,
	ROWAN,
	requestIdFrom,
	signIn,
	type TestClientKey,
	type TokenBody,
} from "./helpers";

/** Starts an authorize request and signs in with the password; returns the request id and the picker page. */
async function signedInPicker(user: {
	username: string;
	password: string;
}): Promise<{ request: string; html: string }> {
	const request = requestIdFrom(await (await call(await authorizeUrl())).text());
	const picker = await call(
		"/oauth2/v1/authorize/signin",
		form({ request, username: user.username, password: user.password }),
	);
	expect(picker.status).toBe(200);
	return { request, html: await picker.text() };
}

/** The records a picker page offers: [patient id, label text]. */
function pickerEntries(html: string): Array<[string, string]> {
	return [...html.matchAll(/name="record" value="([^"]+)"[^>]*>\s*<label[^>]*>([\s\S]*?)<\/label>/g)].map((m) => [
		m[1] ?? "",
		(m[2] ?? "").replace(/<[^>]+>/g, "").trim(),
	]);
}

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
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
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
		expect(location.searchParams.get("iss")).toBe(ISSUER);
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

	it("shows a plain HTML login form without a practice, then the record picker, then consent listing the scopes", async () => {
		const start = await call(await authorizeUrl());
		const html = await start.text();
		expect(start.status).toBe(200);
		expect(html).toContain('name="username"');
		expect(html).toContain('name="password"');
		expect(html).toMatch(/<button type="submit">Sign in<\/button>/);
		// The app's practice is not asked for: the patient picks the record, and with it the practice, later.
		expect(html).not.toContain('name="practice"');
		expect(html).not.toContain("<select");
		expect(html).not.toContain("<script");
		const picker = await call(
			"/oauth2/v1/authorize/signin",
			form({ request: requestIdFrom(html), username: JANE.username, password: JANE.password }),
		);
		const pickerHtml = await picker.text();
		expect(picker.status).toBe(200);
		expect(pickerHtml).toContain("<h1>Select a health record</h1>");
		expect(pickerHtml).toMatch(/<button type="submit">Continue<\/button>/);
		expect(pickerHtml).not.toContain("<script");
		const consent = await call(
			"/oauth2/v1/authorize/select",
			form({ request: requestIdFrom(pickerHtml), record: JANE.id }),
		);
		const consentHtml = await consent.text();
		expect(consent.status).toBe(200);
		expect(consentHtml).toContain("Jake Medlock (you) at practice 80000");
		expect(consentHtml).toContain("patient/Observation.rs");
		expect(consentHtml).toContain(">Allow<");
		expect(consentHtml).toContain(">Deny<");
	});

	it("offers the preview login its own record at two practices and its dependent's, the second and third logins their one record each", async () => {
		expect(pickerEntries((await signedInPicker(JANE)).html)).toEqual([
			["a-80000.E-14545", "Jake Medlock (you) at practice 80000"],
			[JAKE_SECOND_PRACTICE.id, "Jake Medlock (you) at practice 195900"],
			["a-80000.E-14600", "Lily Medlock at practice 80000"],
		]);
		// athena shows the page even when there is only one record to pick.
		expect(pickerEntries((await signedInPicker(ROWAN)).html)).toEqual([
			["a-195900.E-3001", "Rowan Fixturepatient (you) at practice 195900"],
		]);
		expect(pickerEntries((await signedInPicker(AVERY)).html)).toEqual([
			["a-80000.E-17000", "Avery Longchart (you) at practice 80000"],
		]);
	});

	it("issues the token for the picked record: the patient names the practice", async () => {
		for (const user of [JANE, { ...JANE, id: JAKE_SECOND_PRACTICE.id }, LILY, ROWAN]) {
			const { location, verifier } = await signIn(user);
			const response = await exchangeCode(key, location.searchParams.get("code") ?? "", verifier);
			const tokens = (await response.json()) as TokenBody;
			expect(tokens.patient).toBe(user.id);
			expect(tokens.patient).toMatch(/^a-\d+\.E-\d+$/);
		}
	});

	it("refuses a wrong password, and a picked record the login cannot open", async () => {
		const request = requestIdFrom(await (await call(await authorizeUrl())).text());
		const wrong = await call(
			"/oauth2/v1/authorize/signin",
			form({ request, username: JANE.username, password: ROWAN.password }),
		);
		expect(wrong.status).toBe(401);
		expect(await wrong.text()).toMatch(/not correct/);

		const signedIn = await signedInPicker(JANE);
		for (const record of [ROWAN.id, "a-80000.E-99999", ""]) {
			const refused = await call("/oauth2/v1/authorize/select", form({ request: signedIn.request, record }));
			expect(refused.status).toBe(400);
			const html = await refused.text();
			expect(html).toContain("Choose one of the health records listed.");
			expect(html).toContain("<h1>Select a health record</h1>");
		}
		// Nothing was picked, so there is nothing to consent to.
		const consent = await call("/oauth2/v1/authorize/consent", form({ request: signedIn.request, decision: "allow" }));
		expect(consent.status).toBe(400);
		expect(consent.headers.get("Location")).toBeNull();
	});

	it("refuses a record pick before sign-in", async () => {
		const request = requestIdFrom(await (await call(await authorizeUrl())).text());
		const response = await call("/oauth2/v1/authorize/select", form({ request, record: JANE.id }));
		expect(response.status).toBe(400);
		expect(await response.text()).toMatch(/Sign in/);
	});

	it("redirects with a code, the state and iss when the patient allows", async () => {
		const { location } = await signIn();
		expect(location.searchParams.get("code")).toMatch(/^[A-Za-z0-9_-]{40,}$/);
		expect(location.searchParams.get("state")).toBe("state-abc");
		expect(location.searchParams.get("iss")).toBe(ISSUER);
	});

	it("redirects with access_denied and the state when the patient denies", async () => {
		const { location } = await signIn(JANE, { decision: "deny" });
		expect(location.searchParams.get("error")).toBe("access_denied");
		expect(location.searchParams.get("state")).toBe("state-abc");
		expect(location.searchParams.get("code")).toBeNull();
		expect(location.searchParams.get("iss")).toBe(ISSUER);
	});

	it("answers consent only once per request", async () => {
		const { request } = await signedInPicker(JANE);
		await call("/oauth2/v1/authorize/select", form({ request, record: JANE.id }));
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
