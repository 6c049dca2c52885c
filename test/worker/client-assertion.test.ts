import { env } from "cloudflare:workers";
import { decodeProtectedHeader, importJWK, jwtVerify } from "jose";
import { describe, expect, it } from "vitest";
import { importSigningKey } from "../../src/keys/signing-key";
import { signClientAssertion } from "../../src/oauth/client-assertion";

const TOKEN_URL = "https://api.preview.platform.athenahealth.com/oauth2/v1/token";

describe("client assertion", () => {
	it("verifies with the published public key under an independent verifier and carries every claim", async () => {
		const key = await importSigningKey(env.TEST_RSA_PKCS1_PEM, "SIGNING_KEY");
		const now = Date.UTC(2026, 10, 28, 12, 0, 0);
		const jwt = await signClientAssertion({ key, clientId: "0oa-client", audience: TOKEN_URL, now });

		expect(decodeProtectedHeader(jwt)).toEqual({ alg: "RS384", typ: "JWT", kid: key.kid });
		const publicKey = await importJWK(key.publicJwk, "RS384");
		const { payload } = await jwtVerify(jwt, publicKey, {
			algorithms: ["RS384"],
			issuer: "0oa-client",
			subject: "0oa-client",
			audience: TOKEN_URL,
			currentDate: new Date(now + 1000),
		});
		expect(Object.keys(payload).sort()).toEqual(["aud", "exp", "iat", "iss", "jti", "sub"]);
		expect(payload.aud).toBe(TOKEN_URL);
		expect(payload.iat).toBe(now / 1000);
		expect(Number.isInteger(payload.exp)).toBe(true);
		expect((payload.exp as number) - (payload.iat as number)).toBeGreaterThan(0);
		expect((payload.exp as number) - (payload.iat as number)).toBeLessThanOrEqual(300);
		// 32 random bytes, base64url: 256 bits, well above the 128 required.
		expect(payload.jti).toMatch(/^[A-Za-z0-9_-]{43}$/);
	});

	it("fails verification under a different key", async () => {
		const key = await importSigningKey(env.TEST_RSA_PKCS1_PEM, "SIGNING_KEY");
		const other = await importSigningKey(env.TEST_SECOND_RSA_PEM, "SIGNING_KEY");
		const jwt = await signClientAssertion({ key, clientId: "c", audience: TOKEN_URL });
		await expect(jwtVerify(jwt, await importJWK(other.publicJwk, "RS384"))).rejects.toThrow(/signature/);
	});

	it("never repeats a jti", async () => {
		const key = await importSigningKey(env.TEST_RSA_PKCS8_PEM, "SIGNING_KEY");
		const jtis = new Set<string>();
		for (let i = 0; i < 200; i++) {
			const jwt = await signClientAssertion({ key, clientId: "c", audience: TOKEN_URL });
			const payload = JSON.parse(atob((jwt.split(".")[1] ?? "").replace(/-/g, "+").replace(/_/g, "/")));
			jtis.add(payload.jti);
		}
		expect(jtis.size).toBe(200);
	});

	it("refuses a lifetime beyond athena's five minutes", async () => {
		const key = await importSigningKey(env.TEST_RSA_PKCS8_PEM, "SIGNING_KEY");
		await expect(
			signClientAssertion({ key, clientId: "c", audience: TOKEN_URL, lifetimeSeconds: 301 }),
		).rejects.toThrow(RangeError);
	});
});
