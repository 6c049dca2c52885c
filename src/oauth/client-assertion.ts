import { base64url } from "jose";
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

const encoder = new TextEncoder();
const headerCache = new WeakMap<SigningKey, string>();

function encodedHeader(key: SigningKey): string {
	let header = headerCache.get(key);
	if (!header) {
		// No `jku`/`x5u`: athena finds the key by kid in the registered JWKS URL.
		header = base64url.encode(JSON.stringify({ alg: "RS384", typ: "JWT", kid: key.kid }));
		headerCache.set(key, header);
	}
	return header;
}

function randomJti(): string {
	// 256 random bits; RFC 7523 §3 requires a jti the server can use to refuse replays.
	return base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
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
	const claims = {
		iss: input.clientId,
		sub: input.clientId,
		aud: input.audience,
		jti: randomJti(),
		iat,
		exp: iat + lifetime,
	};
	const signingInput = `${encodedHeader(input.key)}.${base64url.encode(JSON.stringify(claims))}`;
	const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", input.key.privateKey, encoder.encode(signingInput));
	return `${signingInput}.${base64url.encode(new Uint8Array(signature))}`;
}
