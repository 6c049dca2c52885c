// Sign-in as a browser would do it, over HTTP: the worker's /launch, the
// sandbox's login, "Select a health record" and consent pages (scripted once
// in sandbox/sign-in-script.ts), the worker's callback. And, for the direct
// sandbox reads, the same authorize pages with the bench's own PKCE and a
// code redeemed in Node with a client assertion signed by the bench's
// throwaway key (the one the worker under test also signs with).
import { createHash, randomBytes } from "node:crypto";
import { calculateJwkThumbprint, exportJWK, importPKCS8, SignJWT } from "jose";
import { signInAtSandbox } from "../../sandbox/sign-in-script.ts";
import { JAKE } from "../../sandbox/src/users.ts";
import { asFetch, cookieHeader, send, storeCookies } from "./http.mjs";

/** The bench signs in as the preview login with its own record (sandbox/src/users.ts). */
export const PATIENT = JAKE.id;
export const PRACTICE = JAKE.practiceId;

function expect(response, status, step) {
	if (response.status !== status) {
		throw new Error(`${step}: expected ${status}, got ${response.status}: ${String(response.body).slice(0, 300)}`);
	}
	return response;
}

const form = (fields) => ({
	method: "POST",
	headers: { "Content-Type": "application/x-www-form-urlencoded" },
	body: new URLSearchParams(fields).toString(),
});

/**
 * The sandbox's authorize page → login → record picker (the test user's
 * own record, Jake's unless told) → consent: returns the redirect with the
 * code. No sandbox cookie is kept, so each sign-in is a new browser typing
 * the password.
 */
function authorizeAtSandbox(authorizeUrl, user = JAKE) {
	return signInAtSandbox({ authorizeUrl, login: user, record: user.id, fetch: asFetch(send) });
}

let clientSeq = 0;
/** A distinct address from 198.18.0.0/15 (RFC 2544, set aside for benchmarks) per sign-in. */
export function nextClientAddress() {
	clientSeq += 1;
	return `198.18.${(clientSeq >> 8) & 255}.${clientSeq & 255}`;
}

/**
 * One full sign-in through the worker at `workerOrigin`. Returns the cookie
 * jar holding `__Host-athena_session`, and the time spent in worker requests
 * (launch + callback) against the whole round trip.
 */
export async function signInThroughWorker(workerOrigin, user = JAKE) {
	const jar = new Map();
	// Each sign-in comes from its own client address, as patients do: the worker
	// limits launches and callbacks per address (wrangler dev keeps a
	// CF-Connecting-IP the client sent). Only a header; no traffic goes there.
	const client = { "CF-Connecting-IP": nextClientAddress() };
	const started = performance.now();
	const launch = expect(
		await send(`${workerOrigin}/launch?practice=${user.practiceId}`, { headers: client }),
		302,
		"worker /launch",
	);
	storeCookies(jar, launch);
	const redirect = await authorizeAtSandbox(launch.headers.location, user);
	if (!redirect.searchParams.get("code")) throw new Error(`sandbox redirected without a code: ${redirect}`);
	// The redirect names the registered REDIRECT_URI; the bench sends it to the worker it measures.
	const callback = expect(
		await send(`${workerOrigin}${redirect.pathname}${redirect.search}`, {
			headers: { ...client, Cookie: cookieHeader(jar) },
		}),
		302,
		"worker callback",
	);
	storeCookies(jar, callback);
	if (!jar.has("__Host-athena_session")) throw new Error("callback set no session cookie");
	return { jar, totalMs: performance.now() - started, workerMs: launch.total + callback.total };
}

const base64url = (buffer) => buffer.toString("base64url");

/**
 * An access token for the direct sandbox reads, obtained like the worker
 * obtains one (authorization code + PKCE + RS384 client assertion), with the
 * same client and key, but redeemed here in Node.
 */
export async function directAccessToken({ sandboxOrigin, pem, clientId, redirectUri, scope, user = JAKE }) {
	const verifier = base64url(randomBytes(32));
	const challenge = base64url(createHash("sha256").update(verifier).digest());
	const authorize = new URL(`${sandboxOrigin}/oauth2/v1/authorize`);
	for (const [k, v] of Object.entries({
		response_type: "code",
		client_id: clientId,
		redirect_uri: redirectUri,
		scope,
		state: base64url(randomBytes(16)),
		aud: `${sandboxOrigin}/fhir/r4`,
		code_challenge: challenge,
		code_challenge_method: "S256",
	})) {
		authorize.searchParams.set(k, v);
	}
	const code = (await authorizeAtSandbox(authorize.toString(), user)).searchParams.get("code");
	const key = await importPKCS8(pem, "RS384", { extractable: true });
	const jwk = await exportJWK(key);
	const kid = await calculateJwkThumbprint({ kty: "RSA", n: jwk.n, e: jwk.e });
	const tokenUrl = `${sandboxOrigin}/oauth2/v1/token`;
	const assertion = await new SignJWT({ jti: base64url(randomBytes(32)) })
		.setProtectedHeader({ alg: "RS384", typ: "JWT", kid })
		.setIssuer(clientId)
		.setSubject(clientId)
		.setAudience(tokenUrl)
		.setIssuedAt()
		.setExpirationTime("2m")
		.sign(key);
	const response = expect(
		await send(
			tokenUrl,
			form({
				grant_type: "authorization_code",
				code,
				redirect_uri: redirectUri,
				code_verifier: verifier,
				client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
				client_assertion: assertion,
			}),
		),
		200,
		"direct code redemption",
	);
	return JSON.parse(response.body).access_token;
}
