import { decodeJwt, decodeProtectedHeader, generateKeyPair, SignJWT } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import {
	advanceClock,
	authorizeUrl,
	call,
	control,
	exchangeCode,
	freezeClock,
	freshSandbox,
	JANE,
	LILY,
	POST_LOGOUT_REDIRECT_URI,
	ROWAN,
	signAssertion,
	signIn,
	startOfThisMinute,
	type TestClientKey,
	type TokenBody,
	tokenRequest,
} from "./helpers";

interface Received {
	logouts: Array<{ at: number; sessionEnded: boolean; postLogoutRedirectUri?: string; error?: string }>;
	counts: Record<string, number>;
}

/** An authorize request from a browser holding `cookie`: which page athena shows first. */
async function firstPage(cookie: string | undefined): Promise<"login" | "picker"> {
	const response = await call(await authorizeUrl(), cookie ? { headers: { Cookie: cookie } } : {});
	expect(response.status).toBe(200);
	const html = await response.text();
	if (html.includes("<h1>Select a health record</h1>")) return "picker";
	expect(html).toContain('name="password"');
	return "login";
}

function logout(params: Record<string, string>, cookie?: string): Promise<Response> {
	return call(`/oauth2/v1/logout?${new URLSearchParams(params)}`, cookie ? { headers: { Cookie: cookie } } : {});
}

async function received(): Promise<Received> {
	return (await (await call("/_sandbox/received")).json()) as Received;
}

describe("athena's browser session", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	it("is set on the sandbox's origin at sign-in, HttpOnly and scoped to /oauth2", async () => {
		const request = await call(await authorizeUrl());
		const html = await request.text();
		const picker = await call("/oauth2/v1/authorize/signin", {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded" },
			body: new URLSearchParams({
				request: /name="request" value="([^"]+)"/.exec(html)?.[1] ?? "",
				username: JANE.username,
				password: JANE.password,
			}),
		});
		const [setCookie] = picker.headers.getSetCookie();
		expect(setCookie).toMatch(/^athena_sandbox_sid=[A-Za-z0-9_-]{43}; /);
		expect(setCookie).toContain("Path=/oauth2");
		expect(setCookie).toContain("HttpOnly");
		expect(setCookie).toContain("SameSite=Lax");
		expect(setCookie).not.toMatch(/Domain=/i);
	});

	it("lets the next authorize in the same browser skip the login page, straight to the record picker", async () => {
		const first = await signIn(JANE);
		expect(first.cookie).toBeDefined();
		expect(await firstPage(first.cookie)).toBe("picker");
		// Another browser, or this one without its cookie, sees the login page.
		expect(await firstPage(undefined)).toBe("login");
		expect(await firstPage("athena_sandbox_sid=made-up")).toBe("login");
		// Without a password, the same login may pick another of its records.
		const again = await signIn(JANE, { cookie: first.cookie, record: LILY.id });
		const tokens = (await (
			await exchangeCode(key, again.location.searchParams.get("code") ?? "", again.verifier)
		).json()) as TokenBody;
		expect(tokens.patient).toBe(LILY.id);
		expect((await received()).counts).toMatchObject({ passwordSignIn: 1, sessionReused: 2 });
	});

	it("keeps a session to its own login's records", async () => {
		const rowan = await signIn(ROWAN);
		const refused = signIn(ROWAN, { cookie: rowan.cookie, record: JANE.id });
		await expect(refused).rejects.toThrow(/record picker answered 400/);
	});

	it("ends two hours after the sign-in (Okta's default session lifetime)", async () => {
		await freezeClock(startOfThisMinute());
		const { cookie } = await signIn(JANE);
		await advanceClock(2 * 60 * 60_000 - 1);
		expect(await firstPage(cookie)).toBe("picker");
		await advanceClock(1);
		expect(await firstPage(cookie)).toBe("login");
	});

	it("is forgotten by /_sandbox/reset", async () => {
		const { cookie } = await signIn(JANE);
		await freshSandbox();
		expect(await firstPage(cookie)).toBe("login");
	});
});

describe("/oauth2/v1/logout", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	/** A signed-in browser's cookie and an id_token issued to the client in it. */
	async function signedIn(): Promise<{ cookie: string; idToken: string }> {
		const { location, verifier, cookie } = await signIn(JANE);
		const tokens = (await (
			await exchangeCode(key, location.searchParams.get("code") ?? "", verifier)
		).json()) as TokenBody;
		if (!cookie || !tokens.id_token) throw new Error("sign-in gave no cookie or id_token");
		return { cookie, idToken: tokens.id_token };
	}

	it("ends the browser session and redirects to the registered post-logout URI with the state", async () => {
		const { cookie, idToken } = await signedIn();
		const response = await logout(
			{ id_token_hint: idToken, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI, state: "bye-123" },
			cookie,
		);
		expect(response.status).toBe(302);
		expect(response.headers.get("Location")).toBe(`${POST_LOGOUT_REDIRECT_URI}?state=bye-123`);
		const [cleared] = response.headers.getSetCookie();
		expect(cleared).toMatch(/^athena_sandbox_sid=; Path=\/oauth2;.*Max-Age=0/);
		// The next Connect asks for the password again.
		expect(await firstPage(cookie)).toBe("login");
		expect((await received()).logouts).toEqual([
			expect.objectContaining({ sessionEnded: true, postLogoutRedirectUri: POST_LOGOUT_REDIRECT_URI }),
		]);
		expect((await received()).counts.logout).toBe(1);
	});

	it("accepts the same parameters as a POSTed form, keeping the id_token out of the URL", async () => {
		const { cookie, idToken } = await signedIn();
		const response = await call("/oauth2/v1/logout", {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded", Cookie: cookie },
			body: new URLSearchParams({
				id_token_hint: idToken,
				post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI,
				state: "bye-456",
			}),
		});
		expect(response.status).toBe(302);
		expect(response.headers.get("Location")).toBe(`${POST_LOGOUT_REDIRECT_URI}?state=bye-456`);
		expect(await firstPage(cookie)).toBe("login");
		const notAForm = await call("/oauth2/v1/logout", { method: "POST", body: "{}", headers: { Cookie: cookie } });
		expect(notAForm.status).toBe(400);
	});

	it("leaves issued tokens alone: revocation is the revoke endpoint's job", async () => {
		const { location, verifier, cookie } = await signIn(JANE);
		const tokens = (await (
			await exchangeCode(key, location.searchParams.get("code") ?? "", verifier)
		).json()) as TokenBody;
		await logout({ id_token_hint: tokens.id_token ?? "" }, cookie);
		const refreshed = await tokenRequest(
			{ grant_type: "refresh_token", refresh_token: tokens.refresh_token ?? "", scope: tokens.scope ?? "" },
			await signAssertion(key),
		);
		expect(refreshed.status).toBe(200);
	});

	it("shows a signed-out page without a post-logout URI, and works without a session too", async () => {
		const { idToken } = await signedIn();
		const response = await logout({ id_token_hint: idToken });
		expect(response.status).toBe(200);
		expect(await response.text()).toContain("Signed out");
		expect((await received()).logouts).toEqual([expect.objectContaining({ sessionEnded: false })]);
	});

	it("accepts an expired id_token as the hint", async () => {
		await freezeClock(startOfThisMinute());
		const { cookie, idToken } = await signedIn();
		// The id_token lives an hour; the session two.
		await advanceClock(3600_000 + 1);
		const response = await logout(
			{ id_token_hint: idToken, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI },
			cookie,
		);
		expect(response.status).toBe(302);
		expect(await firstPage(cookie)).toBe("login");
	});

	it("refuses a missing or foreign id_token_hint and an unregistered post-logout URI, keeping the session", async () => {
		const { cookie, idToken } = await signedIn();
		// The sandbox's own claims and header (kid included), signed by someone else's key.
		const { privateKey } = await generateKeyPair("RS256");
		const foreign = await new SignJWT(decodeJwt(idToken))
			.setProtectedHeader(decodeProtectedHeader(idToken) as { alg: string })
			.sign(privateKey);
		for (const [params, message] of [
			[{ post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI }, /id_token_hint is required/],
			[{ id_token_hint: "not.a.jwt" }, /id_token_hint is not/],
			[{ id_token_hint: foreign }, /id_token_hint is not/],
			[{ id_token_hint: idToken, post_logout_redirect_uri: "http://localhost:3000" }, /not registered/],
			[{ id_token_hint: idToken, post_logout_redirect_uri: "https://evil.example/" }, /not registered/],
		] as const) {
			const response = await logout(params, cookie);
			expect(response.status).toBe(400);
			expect(response.headers.get("Location")).toBeNull();
			expect(await response.text()).toMatch(message);
		}
		expect(await firstPage(cookie)).toBe("picker");
		const logouts = (await received()).logouts;
		expect(logouts).toHaveLength(5);
		expect(logouts.every((l) => l.sessionEnded === false && typeof l.error === "string")).toBe(true);
	});

	it("refuses an id_token from another issuer: a hint must be one this server issued", async () => {
		const { cookie, idToken } = await signedIn();
		await control("config", { issuer: "http://127.0.0.1:3001/oauth2/aus0another0server" });
		const response = await logout({ id_token_hint: idToken }, cookie);
		expect(response.status).toBe(400);
	});

	it("redirects only to post-logout URIs set in /_sandbox/config", async () => {
		const { cookie, idToken } = await signedIn();
		const elsewhere = "http://localhost:4000/signed-out";
		const updated = await control("config", { postLogoutRedirectUris: [elsewhere] });
		expect(await updated.json()).toMatchObject({ postLogoutRedirectUris: [elsewhere] });
		expect(
			(await logout({ id_token_hint: idToken, post_logout_redirect_uri: POST_LOGOUT_REDIRECT_URI }, cookie)).status,
		).toBe(400);
		const response = await logout({ id_token_hint: idToken, post_logout_redirect_uri: elsewhere }, cookie);
		expect(response.headers.get("Location")).toBe(elsewhere);
	});
});
