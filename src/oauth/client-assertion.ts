import { base64url, SignJWT } from "jose";
import type { SigningKey } from "../keys/signing-key";

/** RFC 7523 §2.2 / SMART client-confidential-asymmetric. */
export const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/** athena refuses assertions whose `exp` is more than 5 minutes ahead. */
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;
const DEFAULT_LIFETIME_SECONDS = 120;

export interface ClientAssertionInput {
	key: SigningKey;
	clientId: string;
	/** The exact token-endpoint URL the assertion will be posted to (its `aud`). */
	audience: string;
	/** Milliseconds since the epoch; injected so tests control time. */
	now?: number;
	lifetimeSeconds?: number;
}

/**
 * Signs the private_key_jwt client assertion sent on every token-endpoint call.
 *
 * @example
 * const jwt = await signClientAssertion({ key, clientId, audience: config.athena.tokenUrl });
 * body.set("client_assertion_type", CLIENT_ASSERTION_TYPE);
 * body.set("client_assertion", jwt);
 */
export async function signClientAssertion(input: ClientAssertionInput): Promise<string> {
	const lifetime = input.lifetimeSeconds ?? DEFAULT_LIFETIME_SECONDS;
	if (!Number.isInteger(lifetime) || lifetime <= 0 || lifetime > MAX_ASSERTION_LIFETIME_SECONDS) {
		throw new RangeError(`assertion lifetime must be 1..${MAX_ASSERTION_LIFETIME_SECONDS} seconds`);
	}
	const iat = Math.floor((input.now ?? Date.now()) / 1000);
	return (
		new SignJWT()
			// No `jku`/`x5u`: athena finds the key by kid in the registered JWKS URL.
			.setProtectedHeader({ alg: "RS384", typ: "JWT", kid: input.key.kid })
			.setIssuer(input.clientId)
			.setSubject(input.clientId)
			.setAudience(input.audience)
			// 256 random bits; RFC 7523 §3 requires a jti the server can use to refuse replays.
			.setJti(base64url.encode(crypto.getRandomValues(new Uint8Array(32))))
			.setIssuedAt(iat)
			.setExpirationTime(iat + lifetime)
			.sign(input.key.privateKey)
	);
}
