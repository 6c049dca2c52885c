// @ts-check
// `live check`: what athena will see of a deployed worker. Each check says
// what it found; none needs a Cloudflare login except reading the active kid
// from the environment's KV metadata. `fetch` is injected for tests.
import { publicJwkProblem } from "./key-material.mjs";

const TIMEOUT_MS = 10_000;
const LOCAL_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * @typedef {{ name: string, ok: boolean, detail: string }} Check
 * @typedef {(url: string, init?: RequestInit) => Promise<Response>} Fetch
 */

/**
 * The origin to check: HTTPS, or http on localhost only (athena fetches the
 * JWKS from a public HTTPS URL; local runs are the one exception).
 * @param {string} raw
 */
export function checkedOrigin(raw) {
	let url;
	try {
		url = new URL(raw);
	} catch {
		return { error: `--url "${raw}" is not a URL` };
	}
	if (url.protocol === "https:") return { origin: url.origin };
	if (url.protocol === "http:" && LOCAL_HOSTS.has(url.hostname)) return { origin: url.origin };
	return { error: `--url must be https (http is allowed for localhost only); got ${url.origin}` };
}

/** @param {Fetch} fetchImpl @param {string} url @param {RequestInit} [init] */
async function get(fetchImpl, url, init) {
	return fetchImpl(url, { ...init, signal: AbortSignal.timeout(TIMEOUT_MS) });
}

/** @param {unknown} error */
function reason(error) {
	return error instanceof Error ? (error.cause instanceof Error ? error.cause.message : error.message) : String(error);
}

/**
 * Runs every check and returns them all, passed or not, so one run shows every problem.
 * @param {{
 *   url: string,
 *   settings: import("./config.mjs").EnvironmentSettings,
 *   activeKid: string | undefined,
 *   fetch?: Fetch,
 * }} options
 * @returns {Promise<Check[]>}
 */
export async function liveCheck({ url, settings, activeKid, fetch: fetchImpl = fetch }) {
	/** @type {Check[]} */
	const checks = [];
	const add = (/** @type {string} */ name, /** @type {boolean} */ ok, /** @type {string} */ detail) =>
		checks.push({ name, ok, detail });

	const target = checkedOrigin(url);
	if (!target.origin) {
		add("url", false, target.error ?? "bad url");
		return checks;
	}
	const origin = target.origin;
	if (settings.publicOrigin && settings.publicOrigin !== origin) {
		add(
			"url",
			false,
			`${origin} is not ${settings.environment}'s PUBLIC_ORIGIN (${settings.publicOrigin}) in wrangler.toml`,
		);
	} else add("url", true, origin);

	// 1. The JWKS athena fetches.
	const jwksUrl = `${origin}/.well-known/jwks.json`;
	/** @type {string[]} */
	let servedKids = [];
	try {
		const response = await get(fetchImpl, jwksUrl, { headers: { Accept: "application/json" } });
		const body = response.ok ? await response.json().catch(() => undefined) : undefined;
		const keys = /** @type {{ keys?: unknown } | undefined} */ (body)?.keys;
		if (!response.ok) add("jwks", false, `${jwksUrl} answered ${response.status}`);
		else if (!Array.isArray(keys)) add("jwks", false, `${jwksUrl} is not a JSON document with a keys array`);
		else if (keys.length < 1 || keys.length > 5)
			add("jwks", false, `${jwksUrl} publishes ${keys.length} keys; athena needs 1 to 5`);
		else {
			const problems = keys
				.map((k, i) => [i, publicJwkProblem(k)])
				.filter(([, p]) => p)
				.map(([i, p]) => `key ${i}: ${p}`);
			if (problems.length > 0) add("jwks", false, problems.join("; "));
			else {
				servedKids = keys.map((k) => /** @type {{ kid: string }} */ (k).kid);
				const maxAge = /max-age=(\d+)/.exec(response.headers.get("Cache-Control") ?? "")?.[1];
				add("jwks", true, `${keys.length} valid RS384 key(s) at ${jwksUrl}, max-age ${maxAge ?? "not set"}`);
			}
		}
	} catch (error) {
		add("jwks", false, `${jwksUrl} could not be fetched: ${reason(error)}`);
	}

	// 2. The kid the worker signs with: the active kid recorded in the
	// environment's KV metadata. The worker serves its signer's key first, so a
	// different first key means the deployed SIGNING_KEY is not the recorded one.
	if (!activeKid) add("signing key", false, `${settings.environment} has no active key recorded; run init`);
	else if (!servedKids.includes(activeKid)) {
		add("signing key", false, `active kid ${activeKid} is not in the served JWKS (${servedKids.join(", ") || "none"})`);
	} else if (servedKids[0] !== activeKid) {
		add(
			"signing key",
			false,
			`the worker signs with ${servedKids[0]}, but the active kid is ${activeKid}: is the deployed SIGNING_KEY secret the one \`rotate activate\` set?`,
		);
	} else add("signing key", true, `active kid ${activeKid} is published and is the worker's signer`);

	// 3. athena's discovery document, under the FHIR base (the root /.well-known is 404 on athena).
	const smartUrl = `${settings.fhirBaseUrl}/.well-known/smart-configuration`;
	try {
		const response = await get(fetchImpl, smartUrl, { headers: { Accept: "application/json" } });
		const body = response.ok ? await response.json().catch(() => undefined) : undefined;
		if (!response.ok) add("smart-configuration", false, `${smartUrl} answered ${response.status}`);
		else if (typeof body?.token_endpoint !== "string" || typeof body?.authorization_endpoint !== "string") {
			add("smart-configuration", false, `${smartUrl} has no token_endpoint or authorization_endpoint`);
		} else if (settings.tokenUrl && body.token_endpoint !== settings.tokenUrl) {
			add(
				"smart-configuration",
				false,
				`token_endpoint is ${body.token_endpoint}, but ATHENA_TOKEN_URL is ${settings.tokenUrl}`,
			);
		} else add("smart-configuration", true, `${smartUrl} reachable, token_endpoint ${body.token_endpoint}`);
	} catch (error) {
		add("smart-configuration", false, `${smartUrl} could not be fetched: ${reason(error)}`);
	}

	// 4. The redirect URI registered at athena must be a route of this worker.
	let redirect;
	try {
		redirect = new URL(settings.redirectUri);
	} catch {
		redirect = undefined;
	}
	if (!redirect) add("redirect URI", false, `REDIRECT_URI "${settings.redirectUri}" is not a URL`);
	else if (redirect.origin !== origin) add("redirect URI", false, `REDIRECT_URI ${redirect.href} is not on ${origin}`);
	else {
		try {
			const response = await get(fetchImpl, redirect.href, { redirect: "manual" });
			await response.body?.cancel();
			if (response.status === 404)
				add("redirect URI", false, `${redirect.href} answered 404: the worker does not serve it`);
			else add("redirect URI", true, `${redirect.href} is served (${response.status} without a code, as expected)`);
		} catch (error) {
			add("redirect URI", false, `${redirect.href} could not be fetched: ${reason(error)}`);
		}
	}
	return checks;
}
