import { base64url } from "jose";

/**
 * `bytes` random bytes from the platform CSPRNG, base64url. 32 bytes (256 bits)
 * is used for state, verifiers, nonces and session ids: well above the 122-128
 * bits SMART and OWASP ask for.
 */
export function randomToken(bytes = 32): string {
	return base64url.encode(crypto.getRandomValues(new Uint8Array(bytes)));
}

/**
 * `bytes` random bytes as hex: for ids that show up in logs, pages and URLs.
 * Hex has no `y` or `J`, so such an id can never look like the start of a
 * JWT (`eyJ`), which the hygiene tests look for in everything we write.
 */
export function randomHex(bytes: number): string {
	return toHex(crypto.getRandomValues(new Uint8Array(bytes)));
}

/** Bytes as lowercase hex, two digits each (random ids, the JWKS ETag). */
export function toHex(bytes: Uint8Array): string {
	return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** SHA-256 of `value`, base64url: how session ids and browser bindings are stored. */
export async function sha256(value: string): Promise<string> {
	const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(value));
	return base64url.encode(new Uint8Array(digest));
}

/** Values minted by `randomToken(32)`: exactly 43 base64url characters. */
export const RANDOM_TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
