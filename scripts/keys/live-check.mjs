// @ts-check
// `live check`: what athena will see of a deployed worker. Each check says
// what it found; none needs a Cloudflare login except reading the active kid
// from the environment's KV metadata. `fetch` is injected for tests.
import { randomBytes } from "node:crypto";
import { importPKCS8, SignJWT } from "jose";
import { diagnose } from "../../src/oauth/first-contact.ts";
import { KeysError } from "./errors.mjs";
import { publicJwkProblem, readKeyFile } from "./key-material.mjs";

const TIMEOUT_MS = 10_000;
const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** The worker's assertion lifetime (src/oauth/client-assertion.ts); athena refuses more than 300 s. */
const ASSERTION_LIFETIME_SECONDS = 120;
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

/** @param {Response} response */
function maxAgeOf(response) {
	const value = /max-age=(\d+)/.exec(response.headers.get("Cache-Control") ?? "")?.[1];
	return value === undefined ? undefined : Number(value);
}

/**
 * Why athena's key fetcher would not get the JWKS from this answer, or
 * undefined. Cloudflare's bot protection answers a server with a challenge
 * page (403/503, `cf-mitigated: challenge`, "Just a moment...") that a browser
 * passes and athena never does; athena follows no redirects; and a max-age
 * longer than JWKS_MAX_AGE_SECONDS makes `rotate activate` too early.
 * @param {Response} response @param {string} type @param {string} text @param {number} maxAgeSeconds
 */
export function reachability(response, type, text, maxAgeSeconds) {
	if (response.headers.get("cf-mitigated") === "challenge" || /Just a moment\.\.\.|challenge-platform/.test(text)) {
		return `answered ${response.status} with a Cloudflare challenge page: athena cannot pass it. Turn off Bot Fight Mode / the challenge (WAF skip rule) for /.well-known/jwks.json`;
	}
	if (response.status >= 300 && response.status < 400) {
		return `answered ${response.status}, a redirect to ${response.headers.get("Location") ?? "nowhere"}: athena does not follow redirects; serve the JWKS at this URL (PUBLIC_ORIGIN, the route)`;
	}
	if (/text\/html/i.test(type)) {
		return `answered ${response.status} with an HTML page (a bot or login page in front of the worker?), not the JWKS`;
	}
	if (!response.ok) return `answered ${response.status}`;
	if (!/^application\/(jwk-set\+)?json\b/i.test(type)) {
		return `has content type "${type || "none"}"; athena expects application/json`;
	}
	const maxAge = maxAgeOf(response);
	if (maxAge !== undefined && maxAge > maxAgeSeconds) {
		return `Cache-Control max-age ${maxAge} s is longer than JWKS_MAX_AGE_SECONDS (${maxAgeSeconds} s), which the rotation waits assume: athena could keep a retired key's JWKS too long; fix the cache rule in front of the worker`;
	}
	return undefined;
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
 *   keysDir?: string,
 *   tokenCall?: boolean,
 *   now?: () => number,
 * }} options
 * @returns {Promise<Check[]>}
 */
export async function liveCheck({
	url,
	settings,
	activeKid,
	fetch: fetchImpl = fetch,
	keysDir = ".keys",
	tokenCall = true,
	now = Date.now,
}) {
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

	// 1. The JWKS athena fetches: as a server does, without a browser's cookies
	// or its JavaScript, and without following redirects.
	const jwksUrl = `${origin}/.well-known/jwks.json`;
	/** @type {string[]} */
	let servedKids = [];
	try {
		const response = await get(fetchImpl, jwksUrl, {
			headers: { Accept: "application/json", "User-Agent": "athena-connector-live-check" },
			redirect: "manual",
		});
		const type = response.headers.get("Content-Type") ?? "";
		const text = await response.text();
		const problem = reachability(response, type, text, settings.maxAgeSeconds);
		if (problem) add("jwks", false, `${jwksUrl}: ${problem}`);
		else {
			let keys;
			try {
				keys = JSON.parse(text)?.keys;
			} catch {}
			if (!Array.isArray(keys)) add("jwks", false, `${jwksUrl} is not a JSON document with a keys array`);
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
					const maxAge = maxAgeOf(response);
					add("jwks", true, `${keys.length} valid RS384 key(s) at ${jwksUrl}, max-age ${maxAge ?? "not set"}`);
				}
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
	let tokenUrl = settings.tokenUrl;
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
		} else {
			tokenUrl ||= body.token_endpoint;
			add("smart-configuration", true, `${smartUrl} reachable, token_endpoint ${body.token_endpoint}`);
		}
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

	// 5. One token request signed with the deployed key, as the worker signs it.
	if (!tokenCall) add("client authentication", true, "skipped (--no-token-call)");
	else if (!activeKid || !tokenUrl) {
		add(
			"client authentication",
			false,
			`not tried: ${activeKid ? "no token URL (ATHENA_TOKEN_URL or discovery)" : "no active key"}`,
		);
	} else {
		const outcome = await clientAuthentication({ fetchImpl, settings, origin, tokenUrl, kid: activeKid, keysDir, now });
		add("client authentication", outcome.ok, outcome.detail);
	}
	return checks;
}

/**
 * Sends ONE client_credentials request to athena's token endpoint, signed
 * exactly as the worker signs its assertions. athena's authorization server
 * (Okta) authenticates the client before it looks at the grant, so
 * `invalid_client` means it refused our assertion, while a grant refusal
 * (`unauthorized_client`, `unsupported_grant_type`: a patient app is not
 * allowed 2-legged) means the assertion was accepted. No patient is needed.
 * @param {{ fetchImpl: Fetch, settings: import("./config.mjs").EnvironmentSettings, origin: string, tokenUrl: string, kid: string, keysDir: string, now: () => number }} input
 */
async function clientAuthentication({ fetchImpl, settings, origin, tokenUrl, kid, keysDir, now }) {
	const spent = `spent 1 token request of ${settings.environment}'s per-minute budget at athena (skip with --no-token-call)`;
	let privatePem;
	try {
		({ privatePem } = readKeyFile(keysDir, settings.environment, kid));
	} catch (error) {
		const why = error instanceof KeysError ? error.message : reason(error);
		return { ok: false, detail: `not tried: ${why} Run live check where .keys/ is, or pass --no-token-call.` };
	}
	const iat = Math.floor(now() / 1000);
	const assertion = await new SignJWT()
		.setProtectedHeader({ alg: "RS384", typ: "JWT", kid })
		.setIssuer(settings.clientId)
		.setSubject(settings.clientId)
		.setAudience(settings.assertionAudience || tokenUrl)
		.setJti(randomBytes(32).toString("base64url"))
		.setIssuedAt(iat)
		.setExpirationTime(iat + ASSERTION_LIFETIME_SECONDS)
		.sign(await importPKCS8(privatePem, "RS384"));
	const body = new URLSearchParams({
		grant_type: "client_credentials",
		client_id: settings.clientId,
		client_assertion_type: CLIENT_ASSERTION_TYPE,
		client_assertion: assertion,
	});
	let response;
	try {
		response = await get(fetchImpl, tokenUrl, {
			method: "POST",
			headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
			body,
			redirect: "manual",
		});
	} catch (error) {
		return { ok: false, detail: `${tokenUrl} could not be reached: ${reason(error)}` };
	}
	const json = await response.json().catch(() => undefined);
	if (response.ok) {
		return { ok: true, detail: `athena accepted the assertion (kid ${kid}) and even issued a token; ${spent}` };
	}
	if (response.status === 429) {
		return {
			ok: false,
			detail: `${tokenUrl} answered 429: the budget is spent this minute; try again in a minute. ${spent}`,
		};
	}
	const error = typeof json?.error === "string" ? json.error.slice(0, 40) : `http_${response.status}`;
	const description = typeof json?.error_description === "string" ? json.error_description : undefined;
	const diagnosis = diagnose({
		endpoint: "token",
		error,
		error_description: description,
		status: response.status,
		settings: {
			clientId: settings.clientId,
			redirectUri: settings.redirectUri,
			scopes: settings.scopes,
			tokenUrl,
			assertionAudience: settings.assertionAudience,
			jwksMaxAgeSeconds: settings.maxAgeSeconds,
			publicJwksUrl: `${origin}/.well-known/jwks.json`,
		},
	});
	const said = `athena answered ${response.status} ${error}${description ? ` "${description.slice(0, 200)}"` : ""}`;
	const ok = diagnosis.cause === "client_authenticated";
	return {
		ok,
		detail: `${said}: ${diagnosis.whatYouSee}${ok ? ` (kid ${kid})` : `. Cause ${diagnosis.cause}; change: ${diagnosis.whatToChange}`}. ${spent}`,
	};
}
