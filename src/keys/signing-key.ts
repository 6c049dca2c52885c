import { calculateJwkThumbprint, exportJWK, importPKCS8 } from "jose";
import { invalidSigningKey, pkcs8Pem } from "./pem";
import { MIN_MODULUS_BITS, modulusBits, type PublicSigningJwk } from "./public-jwk";

export type { PublicSigningJwk } from "./public-jwk";

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
	const pkcs8 = pkcs8Pem(pem, secretName);
	let n = "";
	let e = "";
	let privateKey: CryptoKey;
	try {
		// WebCrypto gives no public key from a private one, so a short-lived
		// extractable import yields n and e (nothing else is kept); the key that
		// signs is a second, non-extractable import.
		({ n = "", e = "" } = await exportJWK(await importPKCS8(pkcs8, "RS384", { extractable: true })));
		privateKey = await importPKCS8(pkcs8, "RS384", { extractable: false });
	} catch {
		throw invalidSigningKey(secretName, "is not a well-formed RSA private key");
	}
	const bits = modulusBits(n);
	if (bits < MIN_MODULUS_BITS) {
		throw invalidSigningKey(secretName, `is a ${bits}-bit RSA key; at least ${MIN_MODULUS_BITS} bits are required`);
	}
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
