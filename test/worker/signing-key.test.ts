import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors";
import { importSigningKey, rsaThumbprint } from "../../src/keys/signing-key";

describe("signing key", () => {
	it("gives the RFC 7638 §3.1 example thumbprint", async () => {
		const n =
			"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
		expect(await rsaThumbprint({ n, e: "AQAB" })).toBe("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	});

	it("loads PKCS#8 and PKCS#1 forms of one key to the same public JWK and kid", async () => {
		const fromPkcs8 = await importSigningKey(env.TEST_RSA_PKCS8_PEM, "SIGNING_KEY");
		const fromPkcs1 = await importSigningKey(env.TEST_RSA_PKCS1_PEM, "SIGNING_KEY");
		expect(fromPkcs1.publicJwk).toEqual(fromPkcs8.publicJwk);
		expect(fromPkcs8.publicJwk).toMatchObject({ kty: "RSA", e: "AQAB", alg: "RS384", use: "sig" });
		expect(fromPkcs8.kid).toBe(await rsaThumbprint(fromPkcs8.publicJwk));
		expect(Object.keys(fromPkcs8.publicJwk).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
	});

	it("imports the private key non-extractable, for RS384 signing only", async () => {
		const key = await importSigningKey(env.TEST_RSA_PKCS1_PEM, "SIGNING_KEY");
		expect(key.privateKey.extractable).toBe(false);
		expect(key.privateKey.usages).toEqual(["sign"]);
		expect(key.privateKey.algorithm).toMatchObject({ name: "RSASSA-PKCS1-v1_5", hash: { name: "SHA-384" } });
		await expect(crypto.subtle.exportKey("jwk", key.privateKey)).rejects.toThrow();
	});

	it("accepts a secret pasted with literal \\n sequences", async () => {
		const oneLine = env.TEST_RSA_PKCS8_PEM.trim().split("\n").join("\\n");
		const key = await importSigningKey(oneLine, "SIGNING_KEY");
		expect(key.kid).toBe((await importSigningKey(env.TEST_RSA_PKCS8_PEM, "SIGNING_KEY")).kid);
	});

	const refusals: Array<[string, () => string, RegExp]> = [
		["an RSA key under 2048 bits", () => env.TEST_RSA_1024_PEM, /SIGNING_KEY is a 1024-bit RSA key/],
		["a PKCS#8 EC key", () => env.TEST_EC_PEM, /SIGNING_KEY is not an RSA key/],
		["a SEC1 EC key", () => env.TEST_EC_SEC1_PEM, /SIGNING_KEY holds an EC key/],
		["a public key", () => "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----", /not a PEM private key/],
		["an empty secret", () => "", /SIGNING_KEY is not a PEM private key/],
		[
			"a truncated key",
			() => {
				const lines = env.TEST_RSA_PKCS8_PEM.trim().split("\n");
				return [...lines.slice(0, 5), lines.at(-1)].join("\n");
			},
			/SIGNING_KEY is not a well-formed RSA private key/,
		],
		[
			"a body that is not base64",
			() => "-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----",
			/not valid base64/,
		],
	];
	for (const [what, pem, message] of refusals) {
		it(`refuses ${what} with an error naming the secret, not its value`, async () => {
			const secret = pem();
			const error = await importSigningKey(secret, "SIGNING_KEY").catch((e: unknown) => e);
			expect(error).toBeInstanceOf(AppError);
			const appError = error as AppError;
			expect(appError.code).toBe("signing_key_invalid");
			expect(appError.message).toMatch(message);
			const body = secret.split("\n").find((line) => line.length > 20 && !line.startsWith("-----"));
			if (body) {
				expect(appError.message).not.toContain(body.slice(0, 20));
				expect(appError.detail ?? "").not.toContain(body.slice(0, 20));
			}
		});
	}
});
