import { cachedSigningKeyImporter, type SigningKey } from "./keys/signing-key";
import type { OAuthClient } from "./oauth/token-client";

const importOnce = cachedSigningKeyImporter();

/**
 * The active signing key from the SIGNING_KEY secret, imported once per
 * isolate. Throws an AppError naming the secret (never its value) when the
 * secret is missing or not a usable RSA key.
 */
export function activeSigningKey(env: { SIGNING_KEY?: string }): Promise<SigningKey> {
	return importOnce(env.SIGNING_KEY ?? "", "SIGNING_KEY");
}

/** How this worker calls athena's OAuth endpoints: our client ID, the active key, the network. */
export async function athenaClient(
	env: { SIGNING_KEY?: string },
	clientId: string,
	timeoutMs: number,
): Promise<OAuthClient> {
	return { clientId, key: await activeSigningKey(env), fetch: (input, init) => fetch(input, init), timeoutMs };
}
