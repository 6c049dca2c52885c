import { cachedSigningKeyImporter, type SigningKey } from "./keys/signing-key";

const importOnce = cachedSigningKeyImporter();

/**
 * The active signing key from the SIGNING_KEY secret, imported once per
 * isolate. Throws an AppError naming the secret (never its value) when the
 * secret is missing or not a usable RSA key.
 */
export function activeSigningKey(env: { SIGNING_KEY?: string }): Promise<SigningKey> {
	return importOnce(env.SIGNING_KEY ?? "", "SIGNING_KEY");
}
