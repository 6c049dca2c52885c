import { base64url, calculateJwkThumbprint } from "jose";
import { parseRsaPrivateKeyPem } from "./pem";

/** The public half of a signing key, exactly as published in the JWKS. */
export interface PublicSigningJwk {
	kty: "RSA";
	n: string;
	e: string;
	alg: "RS384";
	use: "sig";
	kid: string;
}

export interface SigningKey {
	/** Non-extractable RS384 private key: it can sign, never be exported. */
	privateKey: CryptoKey;
	publicJwk: PublicSigningJwk;
	kid: string;
}

/** RFC 7638 §3: SHA-256 over the required members `{"e","kty","n"}` in order. */
export function rsaThumbprint(jwk: { n: string; e: string }): Promise<string> {
	return calculateJwkThumbprint({ kty: "RSA", n: jwk.n, e: jwk.e }, "sha256");
}

/**
 * Imports a PEM RSA private key (PKCS#8 or PKCS#1) for RS384 signing and
 * derives its public JWK, with kid = RFC 7638 thumbprint.
 *
 * @example
 * const key = await importSigningKey(env.SIGNING_KEY, "SIGNING_KEY");
 * key.publicJwk.kid; // "NzbLsXh8..."
 */
export async function importSigningKey(pem: string, secretName: string): Promise<SigningKey> {
	const der = parseRsaPrivateKeyPem(pem, secretName);
	const privateKey = await crypto.subtle.importKey(
		"pkcs8",
		der.pkcs8,
		{ name: "RSASSA-PKCS1-v1_5", hash: "SHA-384" },
		false,
		["sign"],
	);
	const n = base64url.encode(der.n);
	const e = base64url.encode(der.e);
	const kid = await rsaThumbprint({ n, e });
	return { privateKey, kid, publicJwk: { kty: "RSA", n, e, alg: "RS384", use: "sig", kid } };
}

/**
 * One import per isolate for a given PEM: importing is costly (ASN.1, key
 * schedule) and the secret does not change while an isolate lives.
 */
export function cachedSigningKeyImporter(): (pem: string, secretName: string) => Promise<SigningKey> {
	let last: { pem: string; key: Promise<SigningKey> } | undefined;
	return (pem, secretName) => {
		if (last?.pem !== pem) {
			const key = importSigningKey(pem, secretName);
			last = { pem, key };
			// A failed import is not cached, so a corrected secret is picked up.
			key.catch(() => {
				if (last?.key === key) last = undefined;
			});
		}
		return last.key;
	};
}
