import type { JSONWebKeySet, JWK } from "jose";
import { OAuthError } from "./errors";
import type { JwksCacheEntry } from "./records";

/** Used when the client's JWKS response says nothing about caching. */
const DEFAULT_MAX_AGE_SECONDS = 300;
const MAX_MAX_AGE_SECONDS = 24 * 3600;
/** Members that only a private or symmetric JWK carries (RFC 7518 §6). */
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/** The cache judges expiry by the sandbox's clock itself. */
export interface JwksCacheStore {
	get(url: string): Promise<JwksCacheEntry | undefined>;
	put(url: string, entry: JwksCacheEntry): Promise<void>;
}

export interface ClientJwksOptions {
	url: string;
	fetch: (url: string) => Promise<Response>;
	cache: JwksCacheStore;
	/** The sandbox's time (epoch ms), stamped on what is cached. */
	now: number;
	onFetch?: () => Promise<void>;
}

/** Seconds the response may be cached, from `Cache-Control` (RFC 9111 §5.2.2). */
export function cacheLifetime(cacheControl: string | null): number {
	if (!cacheControl) return DEFAULT_MAX_AGE_SECONDS;
	const directives = cacheControl.toLowerCase();
	if (/\bno-store\b|\bno-cache\b/.test(directives)) return 0;
	const match = /\bmax-age\s*=\s*"?(\d+)"?/.exec(directives);
	if (!match?.[1]) return DEFAULT_MAX_AGE_SECONDS;
	return Math.min(Number(match[1]), MAX_MAX_AGE_SECONDS);
}

function validateJwks(body: unknown): JSONWebKeySet {
	if (typeof body !== "object" || body === null || !Array.isArray((body as { keys?: unknown }).keys)) {
		throw new OAuthError("invalid_client", "The client's JWKS is not a JSON document with a keys array", 401);
	}
	const keys = (body as { keys: unknown[] }).keys;
	// athena: publish 1 to 5 keys.
	if (keys.length < 1 || keys.length > 5) {
		throw new OAuthError("invalid_client", "The client's JWKS must publish between 1 and 5 keys", 401);
	}
	for (const key of keys) {
		if (typeof key !== "object" || key === null) {
			throw new OAuthError("invalid_client", "The client's JWKS holds a key that is not an object", 401);
		}
		if (PRIVATE_MEMBERS.some((member) => member in key)) {
			throw new OAuthError("invalid_client", "The client's JWKS publishes private key material", 401);
		}
	}
	return { keys: keys as JWK[] };
}

/**
 * The client's JWKS, cached for the max-age its response allowed, as a real
 * authorization server would. A kid that is missing from a cached set is NOT
 * refetched: the worker's key rotation must publish the new key for longer
 * than its max-age before signing with it, and a lenient refetch would hide a
 * rotation that skips that wait.
 */
export async function clientJwks(options: ClientJwksOptions): Promise<JSONWebKeySet> {
	const cached = await options.cache.get(options.url);
	if (cached) return cached.jwks as JSONWebKeySet;
	let response: Response;
	try {
		response = await options.fetch(options.url);
	} catch {
		throw new OAuthError("invalid_client", "The client's JWKS URL could not be fetched", 401);
	}
	await options.onFetch?.();
	if (!response.ok) {
		throw new OAuthError("invalid_client", `The client's JWKS URL answered ${response.status}`, 401);
	}
	let body: unknown;
	try {
		body = await response.json();
	} catch {
		throw new OAuthError("invalid_client", "The client's JWKS is not JSON", 401);
	}
	const jwks = validateJwks(body);
	const maxAge = cacheLifetime(response.headers.get("Cache-Control"));
	if (maxAge > 0) {
		await options.cache.put(options.url, {
			jwks,
			fetchedAt: options.now,
			expiresAt: options.now + maxAge * 1000,
		});
	}
	return jwks;
}
