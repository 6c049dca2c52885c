import { kidProblem, MAX_PUBLISHED_KEYS, type PublicSigningJwk, publicSigningJwk } from "./public-jwk";
import { rsaThumbprint } from "./signing-key";

const BASE64URL = /^[A-Za-z0-9_-]+$/;

export interface PublishedKeys {
	keys: PublicSigningJwk[];
	/** Why entries from storage were left out; for logs, never for clients. */
	warnings: string[];
}

function describe(index: number, entry: unknown): string {
	const kid = (entry as { kid?: unknown } | null)?.kid;
	return typeof kid === "string" && BASE64URL.test(kid) ? `key ${index} (kid ${kid})` : `key ${index}`;
}

/**
 * Checks one stored entry and rebuilds it from its public members only, so
 * a private member can never be served whatever storage holds.
 */
async function publicKeyFrom(entry: unknown, index: number): Promise<PublicSigningJwk | string> {
	const jwk = publicSigningJwk(entry);
	if (typeof jwk === "string") return `${describe(index, entry)}: ${jwk}`;
	const problem = kidProblem(jwk, await rsaThumbprint(jwk));
	return problem ? `${describe(index, entry)}: ${problem}` : jwk;
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
