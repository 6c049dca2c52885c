import type { Config } from "./config";
import { cachedSigningKeyImporter, type SigningKey } from "./keys/signing-key";
import type { OAuthClient } from "./oauth/token-client";

const importOnce = cachedSigningKeyImporter();

/**
 * The active signing key from the SIGNING_KEY secret's PEM, imported once per
 * isolate. Throws an AppError naming the secret (never its value) when the
 * secret is missing or not a usable RSA key.
 */
export function activeSigningKey(signingKeyPem: string): Promise<SigningKey> {
	return importOnce(signingKeyPem, "SIGNING_KEY");
}

/** How this worker calls athena's OAuth endpoints: our client ID, the active key, the network. */
export async function athenaClient(
	config: Pick<Config, "clientId" | "signingKeyPem" | "athena">,
	timeoutMs: number,
): Promise<OAuthClient> {
	return {
		clientId: config.clientId,
		key: await activeSigningKey(config.signingKeyPem),
		fetch: (input, init) => fetch(input, init),
		timeoutMs,
		tokenAudience: config.athena.assertionAudience,
	};
}
