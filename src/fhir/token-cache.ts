import { type AccessResult, REFRESH_MARGIN_MS } from "../session/contract";

export type ConnectedAccess = Extract<AccessResult, { status: "connected" }>;

export interface AccessTokenCacheOptions {
	/** How long an entry is trusted without asking the session again. */
	maxAgeMs?: number;
	/** Entries kept per isolate; the oldest goes first. */
	maxEntries?: number;
	now?: () => number;
}

const DEFAULT_MAX_AGE_MS = 15_000;
const DEFAULT_MAX_ENTRIES = 1_000;

/**
 * A short per-isolate memory of each connection's access token, so a burst of
 * FHIR reads costs one Durable Object round trip rather than one each.
 *
 * An entry lives at most `maxAgeMs` (so a logout or revocation seen by the
 * session reaches this isolate within seconds; athena's own 401 covers the
 * gap) and never past `expiresAt - REFRESH_MARGIN_MS`, after which the session
 * is asked again and refreshes first. Keyed by the hashed session id and the
 * connection id (`tokenCacheKey` in upstream-read.ts), never the cookie value.
 *
 * @example
 * const cache = new AccessTokenCache({ maxAgeMs: 15_000 });
 * const access = cache.get(key) ?? (await api.accessToken(connectionId));
 * if (access.status === "connected") cache.set(key, access);
 */
export class AccessTokenCache {
	readonly #entries = new Map<string, { access: ConnectedAccess; validUntil: number }>();
	readonly #maxAgeMs: number;
	readonly #maxEntries: number;
	readonly #now: () => number;

	constructor(options: AccessTokenCacheOptions = {}) {
		this.#maxAgeMs = options.maxAgeMs ?? DEFAULT_MAX_AGE_MS;
		this.#maxEntries = options.maxEntries ?? DEFAULT_MAX_ENTRIES;
		this.#now = options.now ?? Date.now;
	}

	get(key: string): ConnectedAccess | undefined {
		const entry = this.#entries.get(key);
		if (!entry) return undefined;
		if (this.#now() >= entry.validUntil) {
			this.#entries.delete(key);
			return undefined;
		}
		return entry.access;
	}

	set(key: string, access: ConnectedAccess): void {
		const validUntil = Math.min(this.#now() + this.#maxAgeMs, access.expiresAt - REFRESH_MARGIN_MS);
		this.#entries.delete(key);
		if (validUntil <= this.#now()) return;
		this.#entries.set(key, { access, validUntil });
		while (this.#entries.size > this.#maxEntries) {
			const oldest = this.#entries.keys().next().value;
			if (oldest === undefined) break;
			this.#entries.delete(oldest);
		}
	}

	/** Drops the entry: athena refused its token, or the session is no longer connected. */
	forget(key: string): void {
		this.#entries.delete(key);
	}
}

/**
 * The worker's own cache, one per isolate: the proxy and the record page
 * read with it, so a page's reads and the app's share the session's tokens.
 */
export const isolateTokenCache = new AccessTokenCache();
