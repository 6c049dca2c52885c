import { ATHENA_SERVER_ID, type Config, type SmartServer } from "./config";
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

/**
 * How this worker calls a server's OAuth endpoints: that server's client ID,
 * the same active key (every server reads our one JWKS), and the assertion
 * audience setting for the environment's athena only.
 */
export async function serverClient(
	config: Pick<Config, "signingKeyPem" | "athena">,
	server: Pick<SmartServer, "id" | "clientId">,
	timeoutMs: number,
): Promise<OAuthClient> {
	return {
		clientId: server.clientId,
		key: await activeSigningKey(config.signingKeyPem),
		fetch: (input, init) => fetch(input, init),
		timeoutMs,
		tokenAudience: server.id === ATHENA_SERVER_ID ? config.athena.assertionAudience : undefined,
	};
}
