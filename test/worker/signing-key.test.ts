import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors";
import { pkcs1ToPkcs8 } from "../../src/keys/pem";
import { importSigningKey, rsaThumbprint } from "../../src/keys/signing-key";

function pemBody(pem: string): Uint8Array {
	const base64 = pem.trim().split("\n").slice(1, -1).join("");
	return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

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

	it("wraps PKCS#1 into exactly the PKCS#8 that Node writes for the same key", () => {
		expect(pkcs1ToPkcs8(pemBody(env.TEST_RSA_PKCS1_PEM))).toEqual(pemBody(env.TEST_RSA_PKCS8_PEM));
	});

	// X.690 §8.1.3: one length byte below 128, else 0x80 | count and the length in `count` bytes.
	const envelopes: Array<[number, number[], number[]]> = [
		[100, [0x30, 0x78], [0x04, 0x64]],
		[200, [0x30, 0x81, 0xdd], [0x04, 0x81, 0xc8]],
		[1190, [0x30, 0x82, 0x04, 0xbc], [0x04, 0x82, 0x04, 0xa6]],
		[70_000, [0x30, 0x83, 0x01, 0x11, 0x87], [0x04, 0x83, 0x01, 0x11, 0x70]],
	];
	for (const [length, sequence, octetString] of envelopes) {
		it(`encodes the envelope's DER lengths for a ${length}-byte PKCS#1 key`, () => {
			const pkcs1 = new Uint8Array(length).fill(0xab);
			const rsaKeyInfo = [
				0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
			];
			const head = [...sequence, ...rsaKeyInfo, ...octetString];
			const der = pkcs1ToPkcs8(pkcs1);
			expect(Array.from(der.subarray(0, head.length))).toEqual(head);
			expect(der.subarray(head.length)).toEqual(pkcs1);
		});
	}

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
