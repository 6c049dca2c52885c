import { generateKeyPair } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import {
	advanceClock,
	CLIENT_ID,
	call,
	control,
	freezeClock,
	freshSandbox,
	jwksFetches,
	newClientKey,
	publishJwks,
	signAssertion,
	startOfThisMinute,
	type TestClientKey,
	TOKEN_URL,
	type TokenBody,
	tokenRequest,
} from "./helpers";

/** A refresh call with a token that does not exist: only client authentication can pass or fail first. */
async function presentAssertion(assertion: string): Promise<Response> {
	return tokenRequest({ grant_type: "refresh_token", refresh_token: "unknown", scope: "openid" }, assertion);
}

async function expectInvalidClient(response: Response, reason: RegExp): Promise<void> {
	expect(response.status).toBe(401);
	expect(response.headers.get("Cache-Control")).toBe("no-store");
	const body = (await response.json()) as TokenBody;
	expect(body.error).toBe("invalid_client");
	expect(body.error_description).toMatch(reason);
}

describe("client assertion (private_key_jwt)", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	it("accepts a well-formed assertion and moves on to the grant itself", async () => {
		const response = await presentAssertion(await signAssertion(key));
		expect(response.status).toBe(400);
		expect(((await response.json()) as TokenBody).error).toBe("invalid_grant");
	});

	it("refuses an assertion signed with RS256 instead of RS384", async () => {
		const rs256 = await generateKeyPair("RS256");
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { alg: "RS256", key: rs256.privateKey })),
			/alg must be RS384/,
		);
	});

	it("refuses an assertion without typ", async () => {
		await expectInvalidClient(await presentAssertion(await signAssertion(key, { header: { typ: undefined } })), /typ/);
	});

	it("refuses an assertion whose kid is not published", async () => {
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { header: { kid: "not-published" } })),
			/^The client_assertion JWT kid is invalid\.$/,
		);
	});

	it("refuses an assertion signed by a key other than the published one", async () => {
		const other = await newClientKey(key.kid);
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { key: other.privateKey })),
			/signature is invalid/,
		);
	});

	it("refuses an assertion whose aud is not the token URL exactly", async () => {
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { claims: { aud: `${TOKEN_URL}/` } })),
			/aud/,
		);
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { claims: { aud: [TOKEN_URL, "https://other.example"] } })),
			/aud/,
		);
	});

	describe("times, judged by the sandbox's clock with 10 s of skew", () => {
		/** The frozen sandbox time, in whole seconds, that the claims below are set against. */
		let now: number;
		beforeEach(async () => {
			now = Math.floor((await freezeClock(startOfThisMinute())).now / 1000);
		});
		const withTimes = (iat: number, exp: number) => signAssertion(key, { claims: { iat, exp } });
		const accepted = async (assertion: string) => expect((await presentAssertion(assertion)).status).toBe(400);

		it("refuses an assertion that expired more than the skew ago", async () => {
			await accepted(await withTimes(now - 60, now - 9));
			await expectInvalidClient(await presentAssertion(await withTimes(now - 60, now - 10)), /expired/);
		});

		it("refuses an assertion whose exp is more than 5 minutes (and the skew) ahead", async () => {
			await accepted(await withTimes(now, now + 310));
			await expectInvalidClient(await presentAssertion(await withTimes(now, now + 311)), /more than 5 minutes/);
		});

		it("refuses an iat more than 5 minutes (and the skew) ago, or after exp", async () => {
			await accepted(await withTimes(now - 310, now + 60));
			await expectInvalidClient(await presentAssertion(await withTimes(now - 311, now + 60)), /iat is more than 5/);
			await expectInvalidClient(await presentAssertion(await withTimes(now + 61, now + 60)), /iat is after its exp/);
		});

		it("judges an assertion by the sandbox's clock, not the real time it was signed at", async () => {
			// Signed for 240 s with the real time (as the worker signs); the sandbox is then 400 s on.
			const signedNow = await signAssertion(key);
			await advanceClock(400_000);
			await expectInvalidClient(await presentAssertion(signedNow), /expired/);
			const { now: later } = (await (await call("/_sandbox/clock")).json()) as { now: number };
			await accepted(await signAssertion(key, { at: later }));
		});
	});

	it("refuses a replayed jti", async () => {
		const assertion = await signAssertion(key);
		expect((await presentAssertion(assertion)).status).toBe(400);
		await expectInvalidClient(await presentAssertion(assertion), /jti was already used/);
		const fresh = await signAssertion(key, { claims: { jti: JSON.parse(atob(assertion.split(".")[1] ?? "")).jti } });
		await expectInvalidClient(await presentAssertion(fresh), /jti was already used/);
	});

	it("refuses an assertion whose iss differs from sub", async () => {
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { claims: { sub: "someone-else" } })),
			/sub/,
		);
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { claims: { iss: "someone-else", sub: "someone-else" } })),
			/iss/,
		);
	});

	it("refuses an assertion without jti", async () => {
		await expectInvalidClient(await presentAssertion(await signAssertion(key, { omit: ["jti"] })), /jti/);
	});

	it("refuses a jku pointing anywhere but the registered JWKS URL", async () => {
		await expectInvalidClient(
			await presentAssertion(await signAssertion(key, { header: { jku: "https://evil.example/jwks.json" } })),
			/jku/,
		);
	});

	it("refuses client_secret and requests without an assertion", async () => {
		await expectInvalidClient(
			await tokenRequest({ grant_type: "refresh_token", refresh_token: "x", scope: "openid", client_id: CLIENT_ID }),
			/client_assertion_type/,
		);
		const withSecret = await tokenRequest(
			{ grant_type: "refresh_token", refresh_token: "x", scope: "openid", client_secret: "s" },
			await signAssertion(key),
		);
		await expectInvalidClient(withSecret, /private_key_jwt/);
	});

	it("refuses a published key without alg RS384 and use sig, as athena does", async () => {
		const { alg: _alg, ...withoutAlg } = key.publicJwk;
		await control("reset");
		await publishJwks([withoutAlg]);
		await expectInvalidClient(await presentAssertion(await signAssertion(key)), /alg RS384 and use sig/);
	});

	it("refuses a JWKS that publishes private key material", async () => {
		await control("reset");
		await publishJwks([{ ...key.publicJwk, d: "secret" }]);
		await expectInvalidClient(await presentAssertion(await signAssertion(key)), /private key material/);
	});

	it("caches the client's JWKS for its max-age and does not refetch on an unknown kid", async () => {
		expect((await presentAssertion(await signAssertion(key))).status).toBe(400);
		expect((await presentAssertion(await signAssertion(key))).status).toBe(400);
		expect(await jwksFetches()).toBe(1);
		// A rotation that signs with the new key before the old JWKS ages out fails.
		const next = await newClientKey();
		await publishJwks([key.publicJwk, next.publicJwk]);
		await expectInvalidClient(await presentAssertion(await signAssertion(next)), /JWT kid is invalid/);
		expect(await jwksFetches()).toBe(0);
	});

	it("refetches a JWKS served with no-store on every call", async () => {
		await control("reset");
		await publishJwks([key.publicJwk], "no-store");
		await presentAssertion(await signAssertion(key));
		await presentAssertion(await signAssertion(key));
		expect(await jwksFetches()).toBe(2);
	});

	it("records each decoded assertion and its outcome for tests to read back", async () => {
		await presentAssertion(await signAssertion(key));
		await presentAssertion(await signAssertion(key, { claims: { aud: "https://wrong.example/token" } }));
		const received = (await (await call("/_sandbox/received")).json()) as {
			assertions: Array<{
				header: { alg: string; kid: string };
				claims: { aud: string };
				accepted: boolean;
				error?: string;
			}>;
			tokenCalls: Array<{ grantType: string; status: number }>;
		};
		expect(received.assertions).toHaveLength(2);
		expect(received.assertions[0]).toMatchObject({ header: { alg: "RS384", kid: key.kid }, accepted: true });
		expect(received.assertions[1]).toMatchObject({ claims: { aud: "https://wrong.example/token" }, accepted: false });
		expect(received.tokenCalls.map((t) => [t.grantType, t.status])).toEqual([
			["refresh_token", 400],
			["refresh_token", 401],
		]);
	});
});
