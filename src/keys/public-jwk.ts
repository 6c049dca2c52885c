// What a published signing key must be, written once for the worker (signing-key.ts,
// jwks.ts) and the key CLI (scripts/keys/key-material.mjs). It imports nothing and
// uses only erasable TypeScript, so Node 22 loads it as is, by type stripping.

/** athena keeps 1 to 5 keys per JWKS; rotation never needs more. */
export const MAX_PUBLISHED_KEYS = 5;

/** NIST SP 800-131A: RSA signing keys of at least 2048 bits. */
export const MIN_MODULUS_BITS = 2048;

/** RFC 7518 §6.3.2 and §6.4: members that make a JWK private or symmetric. */
export const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;

const BASE64URL = /^[A-Za-z0-9_-]+$/;

/** The public half of a signing key, exactly as published in the JWKS. */
export interface PublicSigningJwk {
	kty: "RSA";
	n: string;
	e: string;
	alg: "RS384";
	use: "sig";
	kid: string;
}

/** Bits in a base64url big-endian modulus, leading zeros not counted; 0 when it does not decode. */
export function modulusBits(n: string): number {
	let bytes: string;
	try {
		bytes = atob(n.replace(/-/g, "+").replace(/_/g, "/"));
	} catch {
		return 0;
	}
	const first = bytes.search(/[^\0]/);
	if (first < 0) return 0;
	return (bytes.length - first - 1) * 8 + (32 - Math.clz32(bytes.charCodeAt(first)));
}

/**
 * `entry` rebuilt from its public members only, or why it must not be
 * published: RSA, RS384, use sig, a modulus of at least 2048 bits, no private
 * member. The kid is checked by `kidProblem`, once the caller has computed the
 * thumbprint (with jose in the worker, node:crypto in the CLI).
 *
 * @example
 * const jwk = publicSigningJwk(entry);
 * if (typeof jwk === "string") warn(jwk);
 */
export function publicSigningJwk(entry: unknown): PublicSigningJwk | string {
	if (typeof entry !== "object" || entry === null || Array.isArray(entry)) return "not a JSON object";
	const jwk = entry as Record<string, unknown>;
	const leaked = PRIVATE_MEMBERS.filter((m) => m in jwk);
	if (leaked.length > 0) return `holds private members (${leaked.join(", ")})`;
	if (jwk.kty !== "RSA") return "kty is not RSA";
	if (jwk.alg !== "RS384") return "alg is not RS384";
	if (jwk.use !== "sig") return "use is not sig";
	if (typeof jwk.n !== "string" || !BASE64URL.test(jwk.n) || modulusBits(jwk.n) < MIN_MODULUS_BITS) {
		return `n is not a base64url modulus of at least ${MIN_MODULUS_BITS} bits`;
	}
	if (typeof jwk.e !== "string" || !BASE64URL.test(jwk.e)) return "e is not base64url";
	if (typeof jwk.kid !== "string") return "kid is missing";
	return { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS384", use: "sig", kid: jwk.kid };
}

/** athena finds our key by kid, which must be its RFC 7638 SHA-256 thumbprint. */
export function kidProblem(jwk: PublicSigningJwk, thumbprint: string): string | undefined {
	return jwk.kid === thumbprint ? undefined : "kid is not the RFC 7638 thumbprint of the key";
}
