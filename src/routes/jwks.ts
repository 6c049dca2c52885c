import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import { jwksSettings } from "../config";
import { AppError } from "../errors";
import { publishedKeys } from "../keys/jwks";
import { log } from "../log";
import { toHex } from "../random";
import { activeSigningKey } from "../signer";

/** KV key holding the published JWKS document `{ "keys": [...] }` (see docs/storage-schema.md). */
export const JWKS_KV_KEY = "jwks";
// KV's own edge cache: a freshly published key is visible within about a minute.
const KV_CACHE_TTL_SECONDS = 60;
/**
 * Each isolate also keeps what it read for up to this long (setting
 * JWKS_KV_CACHE_SECONDS, 0 to 10, default 10): a KV read per JWKS request cost
 * two thirds of the route's throughput (BENCHMARKS.md, row 2). The key CLI's
 * activation wait includes the maximum (scripts/keys/config.mjs).
 */
export const JWKS_ISOLATE_CACHE_SECONDS = 10;

let lastRead: { namespace: KVNamespace; at: number; value: Promise<string | null> } | undefined;

/** The stored JWKS text, read from KV at most once per `cacheSeconds` per isolate. */
function storedJwks(
	namespace: KVNamespace,
	now: number,
	cacheSeconds: number,
	onError: () => void,
): Promise<string | null> {
	if (lastRead?.namespace !== namespace || now - lastRead.at >= cacheSeconds * 1000) {
		const value = namespace.get(JWKS_KV_KEY, { cacheTtl: KV_CACHE_TTL_SECONDS }).catch(() => {
			onError();
			// A failed read is not kept: the next request tries KV again.
			if (lastRead?.value === value) lastRead = undefined;
			return null;
		});
		lastRead = { namespace, at: now, value };
	}
	return lastRead.value;
}

interface RenderedJwks {
	body: string;
	etag: string;
}

// The last rendering, keyed by what it was made from: KV's text and the signer's kid.
let rendered: { source: string; jwks: RenderedJwks } | undefined;

async function render(stored: string | null, signerKid: string | undefined, build: () => Promise<RenderedJwks>) {
	const source = `${signerKid ?? ""}\n${stored ?? ""}`;
	if (rendered?.source !== source) rendered = { source, jwks: await build() };
	return rendered.jwks;
}

async function etagOf(body: string): Promise<string> {
	const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
	return `"${toHex(digest.subarray(0, 12))}"`;
}

function matchesEtag(header: string | undefined, etag: string): boolean {
	if (!header) return false;
	return header.split(",").some((tag) => {
		const t = tag.trim();
		return t === "*" || t === etag || t === `W/${etag}`;
	});
}

/**
 * `GET /.well-known/jwks.json`: the keys athena verifies our client assertions
 * with. Served even when the rest of the configuration is incomplete, because
 * athena's portal asks for the JWKS URL before it issues a client ID.
 */
export const jwksRoutes = new Hono<AppEnv>().on(["GET", "HEAD"], "/.well-known/jwks.json", async (c) => {
	const jwksConfig = jwksSettings(c.env);
	const [signer, stored] = await Promise.all([
		activeSigningKey(jwksConfig.signingKeyPem).catch((error: unknown) => {
			log("error", "signing key unavailable", {
				requestId: c.get("requestId"),
				detail: error instanceof AppError ? error.detail : "import failed",
			});
			return undefined;
		}),
		storedJwks(c.env.JWKS_KV, Date.now(), jwksConfig.kvCacheSeconds, () =>
			log("warn", "JWKS KV read failed; serving the signer's key only", { requestId: c.get("requestId") }),
		),
	]);
	const jwks = await render(stored, signer?.kid, async () => {
		const { keys, warnings } = await publishedKeys(stored, signer?.publicJwk);
		for (const warning of warnings) log("warn", "JWKS entry left out", { warning });
		if (keys.length === 0) {
			// Never publish an empty set: athena would then fail every assertion.
			throw new AppError({
				code: "jwks_unavailable",
				status: 503,
				message: "No signing key is available: set the SIGNING_KEY secret or publish keys to KV",
			});
		}
		const body = JSON.stringify({ keys });
		return { body, etag: await etagOf(body) };
	});
	const headers = {
		"Content-Type": "application/json",
		"Cache-Control": `public, max-age=${jwksConfig.maxAgeSeconds}`,
		ETag: jwks.etag,
		"Access-Control-Allow-Origin": "*",
	};
	if (matchesEtag(c.req.header("If-None-Match"), jwks.etag)) return c.body(null, 304, headers);
	if (c.req.method === "HEAD") return c.body(null, 200, headers);
	return c.body(jwks.body, 200, headers);
});
