import { createLocalJWKSet, jwtVerify } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import {
	advanceClock,
	CLIENT_ID,
	call,
	control,
	exchangeCode,
	fhirGet,
	freezeClock,
	freshSandbox,
	ISSUER,
	JANE,
	login,
	REDIRECT_URI,
	SCOPE,
	signAssertion,
	signIn,
	startOfThisMinute,
	type TestClientKey,
	type TokenBody,
	tokenRequest,
} from "./helpers";

async function codeAndVerifier(): Promise<{ code: string; verifier: string }> {
	const { location, verifier } = await signIn();
	return { code: location.searchParams.get("code") ?? "", verifier };
}

async function expectError(response: Response, status: number, error: string): Promise<TokenBody> {
	expect(response.status).toBe(status);
	expect(response.headers.get("Cache-Control")).toBe("no-store");
	const body = (await response.json()) as TokenBody;
	expect(body.error).toBe(error);
	expect(body.access_token).toBeUndefined();
	return body;
}

describe("token endpoint", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	it("signs in, exchanges the code, reads FHIR and refreshes with strict rotation (grace 0)", async () => {
		await control("config", { refreshGraceSeconds: 0 });
		const { code, verifier } = await codeAndVerifier();
		const response = await exchangeCode(key, code, verifier);
		expect(response.status).toBe(200);
		expect(response.headers.get("Cache-Control")).toBe("no-store");
		const tokens = (await response.json()) as TokenBody;
		expect(tokens).toMatchObject({ token_type: "Bearer", expires_in: 3600, scope: SCOPE, patient: JANE.id });
		expect(tokens.access_token).toBeTruthy();
		expect(tokens.refresh_token).toBeTruthy();

		const patient = await fhirGet(`/Patient/${JANE.id}`, tokens.access_token);
		expect(patient.status).toBe(200);
		expect(patient.headers.get("Content-Type")).toMatch(/^application\/fhir\+json/);
		expect(await patient.json()).toMatchObject({ resourceType: "Patient", id: JANE.id });

		const refreshed = await tokenRequest(
			{ grant_type: "refresh_token", refresh_token: tokens.refresh_token ?? "", scope: SCOPE },
			await signAssertion(key),
		);
		expect(refreshed.status).toBe(200);
		const next = (await refreshed.json()) as TokenBody;
		expect(next.access_token).not.toBe(tokens.access_token);
		expect(next.refresh_token).not.toBe(tokens.refresh_token);
		expect(next.patient).toBe(JANE.id);
		expect((await fhirGet(`/Patient/${JANE.id}`, next.access_token)).status).toBe(200);

		// Strict rotation: the old refresh token is spent at once.
		await expectError(
			await tokenRequest(
				{ grant_type: "refresh_token", refresh_token: tokens.refresh_token ?? "", scope: SCOPE },
				await signAssertion(key),
			),
			400,
			"invalid_grant",
		);
		const received = (await (await call("/_sandbox/received")).json()) as { tokenCalls: Array<{ grantType: string }> };
		expect(received.tokenCalls.map((c) => c.grantType)).toEqual([
			"authorization_code",
			"refresh_token",
			"refresh_token",
		]);
	});

	describe("refresh token rotation grace period (Okta's, assumed for athena)", () => {
		const refresh = async (refreshToken: string | undefined) =>
			tokenRequest(
				{ grant_type: "refresh_token", refresh_token: refreshToken ?? "", scope: SCOPE },
				await signAssertion(key),
			);
		const refreshed = async (refreshToken: string | undefined): Promise<TokenBody> => {
			const response = await refresh(refreshToken);
			expect(response.status).toBe(200);
			return (await response.json()) as TokenBody;
		};

		it("defaults to 30 s and is set through /_sandbox/config (0 to 60, Okta's range)", async () => {
			expect(await (await call("/_sandbox/config")).json()).toMatchObject({ refreshGraceSeconds: 30 });
			for (const bad of [-1, 61, 1.5, "30"]) {
				expect((await control("config", { refreshGraceSeconds: bad })).status).toBe(400);
			}
			expect(await (await control("config", { refreshGraceSeconds: 0 })).json()).toMatchObject({
				refreshGraceSeconds: 0,
			});
		});

		it("the previous refresh token, reused within the grace, gets the current set's successor", async () => {
			const first = await login(key);
			// The client never received this answer (a lost response after athena rotated).
			const lost = await refreshed(first.refresh_token);
			const retried = await refreshed(first.refresh_token);
			expect(retried.patient).toBe(JANE.id);
			expect(retried.scope).toBe(SCOPE);
			expect(retried.refresh_token).not.toBe(lost.refresh_token);
			expect(retried.refresh_token).not.toBe(first.refresh_token);
			expect(retried.access_token).not.toBe(lost.access_token);
			expect((await fhirGet(`/Patient/${JANE.id}`, retried.access_token)).status).toBe(200);
			// One chain: the live token the client never saw is spent by the successor.
			await expectError(await refresh(lost.refresh_token), 400, "invalid_grant");
			// The chain goes on from the successor; the presented token is now previous no longer.
			const next = await refreshed(retried.refresh_token);
			await expectError(await refresh(first.refresh_token), 400, "invalid_grant");
			// And the successor is in turn the previous token, usable within its own grace.
			expect((await refresh(retried.refresh_token)).status).toBe(200);
			await expectError(await refresh(next.refresh_token), 400, "invalid_grant");
			const received = (await (await call("/_sandbox/received")).json()) as { counts: Record<string, number> };
			expect(received.counts.refreshViaGrace).toBe(2);
		});

		it("only the immediately previous refresh token has a grace, not older ones", async () => {
			const first = await login(key);
			const second = await refreshed(first.refresh_token);
			await refreshed(second.refresh_token);
			await expectError(await refresh(first.refresh_token), 400, "invalid_grant");
			expect((await refresh(second.refresh_token)).status).toBe(200);
		});

		it("the previous token works until the last millisecond of the grace, then is invalid_grant", async () => {
			await freezeClock(startOfThisMinute());
			// Two grants rotated at the same frozen instant: one probes either side of the grace's end.
			const inside = await login(key);
			await refreshed(inside.refresh_token);
			const after = await login(key);
			const afterLive = await refreshed(after.refresh_token);
			await advanceClock(29_999);
			expect((await refresh(inside.refresh_token)).status).toBe(200);
			await advanceClock(1);
			await expectError(await refresh(after.refresh_token), 400, "invalid_grant");
			// The live token is untouched by the refused reuse.
			expect((await refresh(afterLive.refresh_token)).status).toBe(200);
		});

		it("a revoked grant ends the grace too; introspection shows the previous token only within it", async () => {
			const first = await login(key);
			const second = await refreshed(first.refresh_token);
			const introspect = async (token: string | undefined) =>
				(await (
					await tokenRequest(
						{ token: token ?? "", token_type_hint: "refresh_token" },
						await signAssertion(key, { claims: { aud: "http://sandbox.test/oauth2/v1/introspect" } }),
						"/oauth2/v1/introspect",
					)
				).json()) as { active: boolean };
			expect(await introspect(first.refresh_token)).toMatchObject({ active: true });
			await control("config", { refreshGraceSeconds: 0 });
			expect(await introspect(first.refresh_token)).toEqual({ active: false });
			await control("config", { refreshGraceSeconds: 30 });
			await control("revoke", { patient: JANE.id });
			await expectError(await refresh(first.refresh_token), 400, "invalid_grant");
			await expectError(await refresh(second.refresh_token), 400, "invalid_grant");
		});

		it("a refused scope on the previous token consumes nothing", async () => {
			const first = await login(key);
			const second = await refreshed(first.refresh_token);
			await expectError(
				await tokenRequest(
					{
						grant_type: "refresh_token",
						refresh_token: first.refresh_token ?? "",
						scope: `${SCOPE} patient/Goal.read`,
					},
					await signAssertion(key),
				),
				400,
				"invalid_scope",
			);
			expect((await refresh(second.refresh_token)).status).toBe(200);
		});
	});

	it("issues an id_token signed with the key at /oauth2/v1/keys, carrying the nonce", async () => {
		const tokens = await login(key);
		const keys = await (await call(`/oauth2/v1/keys?client_id=${CLIENT_ID}`)).json();
		const { payload, protectedHeader } = await jwtVerify(tokens.id_token ?? "", createLocalJWKSet(keys as never), {
			issuer: ISSUER,
			audience: CLIENT_ID,
		});
		expect(protectedHeader.alg).toBe("RS256");
		expect(payload.nonce).toBe("nonce-xyz");
		expect(payload.fhirUser).toBe(`http://sandbox.test/fhir/r4/Patient/${JANE.id}`);
		expect(JSON.stringify(keys)).not.toMatch(/"d"|"p"|"q"/);
	});

	it("leaves out refresh_token without offline_access and id_token without openid", async () => {
		const tokens = await login(key, JANE, "launch/patient patient/Patient.read");
		expect(tokens.access_token).toBeTruthy();
		expect(tokens.patient).toBe(JANE.id);
		expect(tokens.refresh_token).toBeUndefined();
		expect(tokens.id_token).toBeUndefined();
	});

	it("refuses a wrong PKCE verifier", async () => {
		const { code } = await codeAndVerifier();
		await expectError(await exchangeCode(key, code, "x".repeat(43)), 400, "invalid_grant");
	});

	it("refuses a missing PKCE verifier", async () => {
		const { code } = await codeAndVerifier();
		await expectError(
			await tokenRequest(
				{ grant_type: "authorization_code", code, redirect_uri: REDIRECT_URI },
				await signAssertion(key),
			),
			400,
			"invalid_request",
		);
	});

	it("refuses a reused code and revokes what the first use issued", async () => {
		const { code, verifier } = await codeAndVerifier();
		const first = (await (await exchangeCode(key, code, verifier)).json()) as TokenBody;
		await expectError(await exchangeCode(key, code, verifier), 400, "invalid_grant");
		expect((await fhirGet(`/Patient/${JANE.id}`, first.access_token)).status).toBe(401);
	});

	it("refuses a redirect_uri that differs from the authorization request", async () => {
		const { code, verifier } = await codeAndVerifier();
		await expectError(
			await exchangeCode(key, code, verifier, { redirect_uri: "http://localhost:3000/other" }),
			400,
			"invalid_grant",
		);
	});

	it("refuses an unknown code and an unsupported grant type", async () => {
		await expectError(await exchangeCode(key, "made-up", "y".repeat(43)), 400, "invalid_grant");
		await expectError(
			await tokenRequest({ grant_type: "password" }, await signAssertion(key)),
			400,
			"unsupported_grant_type",
		);
	});

	it("requires scope on refresh and refuses a scope beyond the grant", async () => {
		const tokens = await login(key);
		await expectError(
			await tokenRequest(
				{ grant_type: "refresh_token", refresh_token: tokens.refresh_token ?? "" },
				await signAssertion(key),
			),
			400,
			"invalid_request",
		);
		await expectError(
			await tokenRequest(
				{ grant_type: "refresh_token", refresh_token: tokens.refresh_token ?? "", scope: `${SCOPE} patient/Goal.read` },
				await signAssertion(key),
			),
			400,
			"invalid_scope",
		);
		const narrowed = await tokenRequest(
			{
				grant_type: "refresh_token",
				refresh_token: tokens.refresh_token ?? "",
				scope: "offline_access launch/patient patient/Patient.read",
			},
			await signAssertion(key),
		);
		expect(narrowed.status).toBe(200);
		expect(((await narrowed.json()) as TokenBody).scope).toBe("offline_access launch/patient patient/Patient.read");
	});

	describe("rate limit: 5 new tokens per calendar minute", () => {
		/** Spends `count` tokens from the budget (a login, then refreshes) and returns the live refresh token. */
		const spendTokens = async (count: number): Promise<string> => {
			let refreshToken = (await login(key)).refresh_token ?? "";
			for (let i = 1; i < count; i++) {
				const response = await tokenRequest(
					{ grant_type: "refresh_token", refresh_token: refreshToken, scope: SCOPE },
					await signAssertion(key),
				);
				expect(response.status).toBe(200);
				refreshToken = ((await response.json()) as TokenBody).refresh_token ?? "";
			}
			return refreshToken;
		};
		const refreshWith = async (refreshToken: string) =>
			tokenRequest(
				{ grant_type: "refresh_token", refresh_token: refreshToken, scope: SCOPE },
				await signAssertion(key),
			);
		const expectLimited = async (response: Response, retryAfter: number) => {
			const body = await expectError(response, 429, "rate_limit_exceeded");
			expect(body.error_description).toMatch(/5/);
			expect(response.headers.get("Retry-After")).toBe(String(retryAfter));
		};

		beforeEach(async () => {
			await control("config", { tokenRateLimit: 5 });
		});

		it("gives 429 with Retry-After until the minute ends, then issues again", async () => {
			const minute = startOfThisMinute();
			await freezeClock(minute);
			const refreshToken = await spendTokens(5);
			await expectLimited(await refreshWith(refreshToken), 60);
			// The same minute's last millisecond is still refused, with one second to wait.
			await advanceClock(59_999);
			await expectLimited(await refreshWith(refreshToken), 1);
			// The refused calls consumed nothing: the same refresh token works in the next minute.
			await advanceClock(1);
			expect((await refreshWith(refreshToken)).status).toBe(200);
		});

		it("counts a minute's last millisecond and the next minute's first in separate windows", async () => {
			await freezeClock(startOfThisMinute() + 59_999);
			await expectLimited(await refreshWith(await spendTokens(5)), 1);
			await advanceClock(1);
			await expectLimited(await refreshWith(await spendTokens(5)), 60);
		});

		it("is lifted at once by tokenRateLimit 0", async () => {
			await freezeClock(startOfThisMinute());
			const refreshToken = await spendTokens(5);
			await expectLimited(await refreshWith(refreshToken), 60);
			await control("config", { tokenRateLimit: 0 });
			expect((await refreshWith(refreshToken)).status).toBe(200);
		});
	});

	it("revokes a refresh token (RFC 7009) and introspects tokens (RFC 7662)", async () => {
		const tokens = await login(key);
		const introspect = async (token: string) =>
			(await (
				await tokenRequest(
					{ token },
					await signAssertion(key, { claims: { aud: "http://sandbox.test/oauth2/v1/introspect" } }),
					"/oauth2/v1/introspect",
				)
			).json()) as { active: boolean; patient?: string; scope?: string };
		expect(await introspect(tokens.access_token ?? "")).toMatchObject({ active: true, patient: JANE.id, scope: SCOPE });
		const revoked = await tokenRequest(
			{ token: tokens.refresh_token ?? "", token_type_hint: "refresh_token" },
			await signAssertion(key),
			"/oauth2/v1/revoke",
		);
		expect(revoked.status).toBe(200);
		expect(await introspect(tokens.access_token ?? "")).toEqual({ active: false });
		expect((await fhirGet(`/Patient/${JANE.id}`, tokens.access_token)).status).toBe(401);
		expect((await tokenRequest({ token: "whatever" }, undefined, "/oauth2/v1/revoke")).status).toBe(401);
	});

	it("uses the configured access token lifetime", async () => {
		await control("config", { accessTokenTtl: 120 });
		const tokens = await login(key);
		expect(tokens.expires_in).toBe(120);
	});
});
