import { base64url } from "jose";
import { randomToken } from "../random";

export interface Pkce {
	verifier: string;
	/** BASE64URL(SHA-256(verifier)); athena supports S256 only, never `plain`. */
	challenge: string;
}

/**
 * A fresh PKCE pair (RFC 7636 §4.1-4.2, S256).
 *
 * @example
 * const { verifier, challenge } = await createPkce();
 */
export async function createPkce(): Promise<Pkce> {
	const verifier = randomToken(32);
	const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
	return { verifier, challenge: base64url.encode(new Uint8Array(digest)) };
}
