import { type PublicSigningJwk, rsaThumbprint } from "./signing-key";

/** athena keeps 1 to 5 keys per JWKS; rotation never needs more. */
export const MAX_PUBLISHED_KEYS = 5;

/** RFC 7518 §6.3.2 and §6.4: members that make a JWK private or symmetric. */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] as const;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface PublishedKeys {
	keys: PublicSigningJwk[];
	/** Why entries from storage were left out; for logs, never for clients. */
	warnings: string[];
}

function describe(index: number, kid: unknown): string {
	return typeof kid === "string" && BASE64URL.test(kid) ? `key ${index} (kid ${kid})` : `key ${index}`;
}

/**
 * Validates one stored entry and rebuilds it from its public members only, so
 * a private member can never be served whatever storage holds.
 */
async function publicKeyFrom(entry: unknown, index: number): Promise<PublicSigningJwk | string> {
	if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
		return `key ${index}: not a JSON object`;
	}
	const jwk = entry as Record<string, unknown>;
	const name = describe(index, jwk.kid);
	const leaked = PRIVATE_MEMBERS.filter((m) => m in jwk);
	if (leaked.length > 0) return `${name}: holds private members (${leaked.join(", ")}); refused`;
	if (jwk.kty !== "RSA") return `${name}: kty must be RSA`;
	if (jwk.alg !== "RS384") return `${name}: alg must be RS384`;
	if (jwk.use !== "sig") return `${name}: use must be sig`;
	if (typeof jwk.n !== "string" || !BASE64URL.test(jwk.n) || jwk.n.length < 342) {
		return `${name}: n must be a base64url modulus of at least 2048 bits`;
	}
	if (typeof jwk.e !== "string" || !BASE64URL.test(jwk.e)) return `${name}: e must be base64url`;
	const kid = await rsaThumbprint({ n: jwk.n, e: jwk.e });
	if (jwk.kid !== kid) return `${name}: kid is not the RFC 7638 thumbprint of the key`;
	return { kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS384", use: "sig", kid };
}

/**
 * The keys to publish: the valid public keys stored in KV (a rotation's next
 * and previous keys) plus the active signer's key when KV lacks it, so athena
 * can always find the kid we sign with. Never more than five, never a private
 * member; bad entries are dropped with a warning instead of failing the set.
 *
 * @example
 * const { keys, warnings } = await publishedKeys(await kv.get("jwks"), signer?.publicJwk);
 */
export async function publishedKeys(
	stored: string | null,
	signer: PublicSigningJwk | undefined,
): Promise<PublishedKeys> {
	const warnings: string[] = [];
	let entries: unknown[] = [];
	if (stored !== null) {
		try {
			const parsed: unknown = JSON.parse(stored);
			const keys = (parsed as { keys?: unknown } | null)?.keys;
			if (Array.isArray(keys)) entries = keys;
			else warnings.push("stored JWKS has no keys array");
		} catch {
			warnings.push("stored JWKS is not valid JSON");
		}
	}
	const keys: PublicSigningJwk[] = [];
	if (signer) keys.push(signer);
	for (const [index, entry] of entries.entries()) {
		const key = await publicKeyFrom(entry, index);
		if (typeof key === "string") warnings.push(key);
		else if (keys.some((k) => k.kid === key.kid)) {
			if (key.kid !== signer?.kid) warnings.push(`key ${index} (kid ${key.kid}): duplicate kid`);
		} else if (keys.length >= MAX_PUBLISHED_KEYS) {
			warnings.push(`key ${index} (kid ${key.kid}): more than ${MAX_PUBLISHED_KEYS} keys; left out`);
		} else keys.push(key);
	}
	return { keys, warnings };
}
