// @ts-check
// The key lifecycle, one function per command: init, rotate add/activate/retire,
// status. Each reads the environment's published state first and checks that
// everything it is about to touch belongs to that environment. Wrangler, the
// paths and the clock are injected, so tests run it against a local wrangler
// or a recording one.
import { MAX_PUBLISHED_KEYS } from "../../src/keys/public-jwk.ts";
import { KeysError } from "./errors.mjs";
import {
	deleteKeyFile,
	generateSigningKey,
	isKid,
	localKids,
	publishableJwk,
	readKeyFile,
	writeKeyFile,
} from "./key-material.mjs";

export { MAX_PUBLISHED_KEYS };

/**
 * @typedef {import("./key-material.mjs").PublicJwk} PublicJwk
 * @typedef {{ kid: string, publishedAt: string, activatedAt?: string }} KeyRecord
 * @typedef {{ version: 1, environment: string, activeKid: string, keys: KeyRecord[], updatedAt: string }} KeysMeta
 * @typedef {{
 *   settings: import("./config.mjs").EnvironmentSettings,
 *   store: import("./wrangler.mjs").EnvironmentStore,
 *   keysDir: string,
 *   now: () => number,
 *   warn: (line: string) => void,
 * }} KeysContext
 * @typedef {{ keys: PublicJwk[], meta: KeysMeta | undefined }} PublishedState
 */

/** @param {KeysContext} ctx */
function env(ctx) {
	return ctx.settings.environment;
}

/** @param {KeysContext} ctx @param {string} command */
function cmd(ctx, command) {
	return `npm run keys -- ${command} --env ${env(ctx)}`;
}

/**
 * Reads and checks what the environment publishes: every JWKS entry a valid
 * public key, metadata written for this environment, and both naming the same kids.
 * @param {KeysContext} ctx
 * @returns {Promise<PublishedState>}
 */
export async function readPublishedState(ctx) {
	const environment = env(ctx);
	if (ctx.store.environment !== environment) {
		throw new KeysError(
			"environment_mismatch",
			`The store is for ${ctx.store.environment}, the settings for ${environment}`,
		);
	}
	await ctx.store.ensureLoggedIn();
	const raw = await ctx.store.readPublished();
	/** @type {PublicJwk[]} */
	let keys = [];
	if (raw.jwks !== null) {
		let parsed;
		try {
			parsed = JSON.parse(raw.jwks);
		} catch {
			throw new KeysError("kv_corrupt", `${environment}'s KV key "jwks" is not JSON; fix or delete it by hand.`);
		}
		if (!Array.isArray(parsed?.keys)) {
			throw new KeysError("kv_corrupt", `${environment}'s KV key "jwks" has no keys array; fix or delete it by hand.`);
		}
		keys = parsed.keys.map((/** @type {unknown} */ entry, /** @type {number} */ index) => {
			const jwk = publishableJwk(entry);
			if (typeof jwk === "string") {
				throw new KeysError("kv_corrupt", `${environment}'s published key ${index}: ${jwk}.`);
			}
			return jwk;
		});
	}
	if (raw.meta === null) {
		if (keys.length > 0) {
			throw new KeysError(
				"kv_out_of_sync",
				`${environment} publishes ${keys.length} key(s) but has no "jwks-meta" record, so this CLI cannot tell which key signs or when each was published. Publish through this CLI only.`,
			);
		}
		return { keys, meta: undefined };
	}
	/** @type {KeysMeta} */
	let meta;
	try {
		meta = JSON.parse(raw.meta);
	} catch {
		throw new KeysError("kv_corrupt", `${environment}'s KV key "jwks-meta" is not JSON.`);
	}
	if (meta?.environment !== environment) {
		throw new KeysError(
			"environment_mismatch",
			`${environment}'s KV namespace holds key metadata for the ${String(meta?.environment)} environment. Keys never cross environments; check JWKS_KV's namespace id for ${environment} in wrangler.toml.`,
		);
	}
	if (!Array.isArray(meta.keys) || typeof meta.activeKid !== "string") {
		throw new KeysError("kv_corrupt", `${environment}'s KV key "jwks-meta" is malformed.`);
	}
	const published = keys.map((k) => k.kid).sort();
	const recorded = meta.keys.map((k) => k.kid).sort();
	if (published.join() !== recorded.join() || !recorded.includes(meta.activeKid)) {
		throw new KeysError(
			"kv_out_of_sync",
			`${environment}'s "jwks" (${published.join(", ") || "no keys"}) and "jwks-meta" (${recorded.join(", ") || "no keys"}, active ${meta.activeKid}) disagree; was a key published by hand?`,
		);
	}
	return { keys, meta };
}

/**
 * @param {KeysContext} ctx @param {PublicJwk[]} keys @param {KeysMeta} meta
 */
async function publish(ctx, keys, meta) {
	const updated = { ...meta, updatedAt: new Date(ctx.now()).toISOString() };
	await ctx.store.writePublished(JSON.stringify({ keys }), JSON.stringify(updated));
	return updated;
}

/**
 * `init`: the environment's first key. Generated here, kept as a 0600 local
 * copy, set as the SIGNING_KEY secret, then published to KV.
 * @param {KeysContext} ctx
 */
export async function init(ctx) {
	const environment = env(ctx);
	const state = await readPublishedState(ctx);
	if (state.meta || state.keys.length > 0) {
		throw new KeysError(
			"already_initialised",
			`${environment} already has keys (${state.keys.map((k) => k.kid).join(", ")}). To change keys, use \`${cmd(ctx, "rotate add")}\`; see \`${cmd(ctx, "status")}\`.`,
		);
	}
	const leftovers = localKids(ctx.keysDir, environment);
	if (leftovers.length > 0) {
		throw new KeysError(
			"already_initialised",
			`${ctx.keysDir}/${environment}/ already holds private keys (${leftovers.join(", ")}) that ${environment} does not publish; an earlier init may not have finished. Remove them once you are sure they are not in use, then run init again.`,
		);
	}
	const now = new Date(ctx.now());
	const { privatePem, publicJwk } = generateSigningKey();
	const keyFile = writeKeyFile(ctx.keysDir, environment, publicJwk.kid, privatePem, now);
	await ctx.store.putSigningKey(privatePem);
	const meta = await publish(ctx, [publicJwk], {
		version: 1,
		environment,
		activeKid: publicJwk.kid,
		keys: [{ kid: publicJwk.kid, publishedAt: now.toISOString(), activatedAt: now.toISOString() }],
		updatedAt: now.toISOString(),
	});
	return { kid: publicJwk.kid, keyFile, secret: ctx.store.describeSecret(), meta, publicJwk };
}

/**
 * `rotate add`: the next key, published beside the current ones; it signs only after `rotate activate`.
 * @param {KeysContext} ctx
 */
export async function rotateAdd(ctx) {
	const environment = env(ctx);
	const { keys, meta } = await readPublishedState(ctx);
	if (!meta)
		throw new KeysError("not_initialised", `${environment} has no keys yet; run \`${cmd(ctx, "init")}\` first.`);
	if (keys.length >= MAX_PUBLISHED_KEYS) {
		throw new KeysError(
			"too_many_keys",
			`${environment} already publishes ${keys.length} keys, athena's maximum is ${MAX_PUBLISHED_KEYS}. Retire one first: \`${cmd(ctx, "rotate retire --kid=<kid>")}\`.`,
		);
	}
	const now = new Date(ctx.now());
	const { privatePem, publicJwk } = generateSigningKey();
	const keyFile = writeKeyFile(ctx.keysDir, environment, publicJwk.kid, privatePem, now);
	const published = [...keys, publicJwk];
	const pending = await publish(ctx, published, {
		...meta,
		keys: [...meta.keys, { kid: publicJwk.kid, publishedAt: now.toISOString() }],
	});
	// The wait before activation counts from when KV took the write, not from
	// when this command started (wrangler needs seconds to start), so the time
	// is recorded again once the write has returned.
	const publishedAt = new Date(ctx.now()).toISOString();
	let updated = pending;
	try {
		updated = await publish(ctx, published, {
			...pending,
			keys: pending.keys.map((k) => (k.kid === publicJwk.kid ? { ...k, publishedAt } : k)),
		});
	} catch (error) {
		ctx.warn(
			`Key ${publicJwk.kid} is published, but its publication time could not be confirmed (${error instanceof Error ? error.message : "write failed"}); wait a minute longer than status says before activating it.`,
		);
	}
	const record = updated.keys.find((k) => k.kid === publicJwk.kid);
	return {
		kid: publicJwk.kid,
		keyFile,
		meta: updated,
		activatableAt: activatableAt(ctx, record?.publishedAt ?? publishedAt),
	};
}

/** When a key published at `publishedAt` is in every cached copy of the JWKS. @param {KeysContext} ctx @param {string} publishedAt */
export function activatableAt(ctx, publishedAt) {
	const wait = (ctx.settings.maxAgeSeconds + ctx.settings.propagationSeconds) * 1000;
	return new Date(Date.parse(publishedAt) + wait);
}

/**
 * `rotate activate [kid]`: makes a published key the signer. Refuses until the
 * key has been published for longer than the JWKS max-age plus KV propagation,
 * because until then athena may hold a cached JWKS without it.
 * @param {KeysContext} ctx @param {{ kid?: string, force?: boolean }} options
 */
export async function rotateActivate(ctx, { kid, force = false }) {
	const environment = env(ctx);
	const { keys, meta } = await readPublishedState(ctx);
	if (!meta)
		throw new KeysError("not_initialised", `${environment} has no keys yet; run \`${cmd(ctx, "init")}\` first.`);
	const waiting = meta.keys.filter((k) => k.kid !== meta.activeKid);
	const target = kid ?? waiting.sort((a, b) => Date.parse(b.publishedAt) - Date.parse(a.publishedAt))[0]?.kid;
	if (!target) {
		throw new KeysError(
			"nothing_to_activate",
			`${environment} publishes no key besides the active one; run \`${cmd(ctx, "rotate add")}\` first.`,
		);
	}
	if (!isKid(target)) throw new KeysError("bad_kid", `"${target}" is not a kid (a 43-character RFC 7638 thumbprint)`);
	if (target === meta.activeKid)
		throw new KeysError("already_active", `Key ${target} already signs for ${environment}.`);
	const record = meta.keys.find((k) => k.kid === target);
	if (!record) {
		throw new KeysError(
			"not_published",
			`Key ${target} is not published for ${environment}; see \`${cmd(ctx, "status")}\`.`,
		);
	}
	const { privatePem } = readKeyFile(ctx.keysDir, environment, target);
	const now = ctx.now();
	const readyAt = activatableAt(ctx, record.publishedAt);
	if (now <= readyAt.getTime()) {
		const seconds = Math.ceil((readyAt.getTime() - now) / 1000);
		const why = `Key ${target} was published at ${record.publishedAt}; athena may cache ${environment}'s JWKS for up to ${ctx.settings.maxAgeSeconds} s (JWKS_MAX_AGE_SECONDS) plus ${ctx.settings.propagationSeconds} s of KV propagation, so it may not know this key yet.`;
		if (!force) {
			throw new KeysError(
				"too_early",
				`${why} Activate after ${readyAt.toISOString()} (in ${seconds} s), or pass --force to risk failed sign-ins.`,
			);
		}
		ctx.warn("!!! --force: activating before every cache can hold the new key.");
		ctx.warn(`!!! ${why}`);
		ctx.warn(`!!! Token requests to athena may fail with invalid_client for up to ${seconds} s.`);
	}
	await ctx.store.putSigningKey(privatePem);
	const activatedAt = new Date(ctx.now()).toISOString();
	const updated = await publish(ctx, keys, {
		...meta,
		activeKid: target,
		keys: meta.keys.map((k) => (k.kid === target ? { ...k, activatedAt } : k)),
	});
	return { kid: target, previousKid: meta.activeKid, secret: ctx.store.describeSecret(), meta: updated };
}

/**
 * `rotate retire --kid=<kid>`: unpublishes an old key and deletes its local private copy.
 * Never the active key; and not until the new signer has had time to reach
 * every location, so no in-flight assertion is signed with a key just removed.
 * @param {KeysContext} ctx @param {{ kid: string, force?: boolean }} options
 */
export async function rotateRetire(ctx, { kid, force = false }) {
	const environment = env(ctx);
	if (!kid) throw new KeysError("bad_kid", `Name the key to retire: \`${cmd(ctx, "rotate retire --kid=<kid>")}\`.`);
	if (!isKid(kid)) throw new KeysError("bad_kid", `"${kid}" is not a kid (a 43-character RFC 7638 thumbprint)`);
	const { keys, meta } = await readPublishedState(ctx);
	if (!meta) throw new KeysError("not_initialised", `${environment} has no keys yet.`);
	if (kid === meta.activeKid) {
		throw new KeysError(
			"retiring_active_key",
			`Key ${kid} is the one ${environment} signs with; activate another key first (\`${cmd(ctx, "rotate activate --kid=<kid>")}\`).`,
		);
	}
	if (!meta.keys.some((k) => k.kid === kid)) {
		throw new KeysError(
			"not_published",
			`Key ${kid} is not published for ${environment}; see \`${cmd(ctx, "status")}\`.`,
		);
	}
	const active = meta.keys.find((k) => k.kid === meta.activeKid);
	const settledAt =
		Date.parse(active?.activatedAt ?? active?.publishedAt ?? "") + ctx.settings.propagationSeconds * 1000;
	if (ctx.now() <= settledAt && !force) {
		throw new KeysError(
			"too_early",
			`Key ${meta.activeKid} became the signer at ${active?.activatedAt}; wait until ${new Date(settledAt).toISOString()} so every location signs with it before ${kid} is removed, or pass --force.`,
		);
	}
	const updated = await publish(
		ctx,
		keys.filter((k) => k.kid !== kid),
		{ ...meta, keys: meta.keys.filter((k) => k.kid !== kid) },
	);
	const deleted = deleteKeyFile(ctx.keysDir, environment, kid);
	return { kid, deletedFile: deleted, meta: updated };
}

/**
 * `list` / `status`: the published kids, which one signs, when each was published.
 * @param {KeysContext} ctx
 */
export async function status(ctx) {
	const { meta } = await readPublishedState(ctx);
	const local = new Set(localKids(ctx.keysDir, env(ctx)));
	const keys = (meta?.keys ?? []).map((k) => ({
		...k,
		active: k.kid === meta?.activeKid,
		activatableAt: activatableAt(ctx, k.publishedAt).toISOString(),
		localCopy: local.has(k.kid),
	}));
	return { environment: env(ctx), activeKid: meta?.activeKid, keys, jwksUrl: ctx.settings.jwksUrl };
}
