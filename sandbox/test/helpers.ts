import { env, exports } from "cloudflare:workers";
import { base64url, exportJWK, generateKeyPair, type JWK, type JWTPayload, SignJWT } from "jose";
import { DEFAULT_ISSUER } from "../src/config";
import { practiceReference } from "../src/data";
import type { SandboxEnv } from "../src/env";
import * as USERS from "../src/users";

export const ORIGIN = "http://sandbox.test";
export const TOKEN_URL = `${ORIGIN}/oauth2/v1/token`;
export const FHIR_BASE = `${ORIGIN}/fhir/r4`;
export const CLIENT_ID = "local-dev-client";
export const REDIRECT_URI = "http://localhost:3000/callback";
export const ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** The sandbox's Okta-style issuer: not its own origin (sandbox.test), as at athena. */
export const ISSUER = DEFAULT_ISSUER;
/** Where the registered client may be sent after `/oauth2/v1/logout`. */
export const POST_LOGOUT_REDIRECT_URI = "http://localhost:3000/";

/**
 * Test logins with the record each picks on "Select a health record", with
 * `practice` as the `ah-practice` reference FHIR searches carry. JANE is the
 * preview login's own record (Jake Medlock; the name is older than the record).
 */
export const JANE = { ...USERS.JAKE, practice: practiceReference(USERS.JAKE.practiceId) };
export const ROWAN = { ...USERS.ROWAN, practice: practiceReference(USERS.ROWAN.practiceId) };
/** The preview login, picking the dependent's record (Lily) instead of its own. */
export const LILY = { ...USERS.LILY, practice: practiceReference(USERS.LILY.practiceId) };

export const SCOPE =
	"openid fhirUser offline_access launch/patient patient/Patient.read patient/Observation.rs patient/AllergyIntolerance.read patient/MedicationRequest.read patient/Provenance.read patient/DocumentReference.read patient/Binary.read patient/Condition.read";

const sandboxEnv = env as unknown as SandboxEnv;
const self = (exports as unknown as { default: Fetcher }).default;

/** A real request to the sandbox worker under test. */
export function call(path: string, init?: RequestInit): Promise<Response> {
	return self.fetch(new Request(new URL(path, ORIGIN), { redirect: "manual", ...init }));
}

export async function control(path: string, body?: unknown): Promise<Response> {
	return call(`/_sandbox/${path}`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify(body ?? {}),
	});
}

export interface TestClientKey {
	privateKey: CryptoKey;
	publicJwk: JWK;
	kid: string;
}

export async function newClientKey(kid = crypto.randomUUID()): Promise<TestClientKey> {
	const { privateKey, publicKey } = await generateKeyPair("RS384", { extractable: true });
	return { privateKey, publicJwk: { ...(await exportJWK(publicKey)), kid, alg: "RS384", use: "sig" }, kid };
}

/** Publishes the client's JWKS through the CLIENT service binding. */
export async function publishJwks(keys: JWK[], cacheControl = "public, max-age=300"): Promise<void> {
	const client = sandboxEnv.CLIENT;
	if (!client) throw new Error("CLIENT binding missing in the test configuration");
	const response = await client.fetch("http://client.test/__test/jwks", {
		method: "PUT",
		body: JSON.stringify({ jwks: { keys }, cacheControl }),
	});
	if (response.status !== 204) throw new Error("could not publish the test JWKS");
}

export async function jwksFetches(): Promise<number> {
	const client = sandboxEnv.CLIENT;
	if (!client) throw new Error("CLIENT binding missing in the test configuration");
	return ((await (await client.fetch("http://client.test/__test/stats")).json()) as { fetches: number }).fetches;
}

export interface AssertionOptions {
	header?: Record<string, unknown>;
	claims?: JWTPayload;
	omit?: string[];
	key?: CryptoKey;
	alg?: string;
	/** Signing time (epoch ms) for iat/exp; the real time by default, as the worker signs. */
	at?: number;
}

/** A client assertion as the worker would sign it, with any rule bent on request. */
export async function signAssertion(key: TestClientKey, options: AssertionOptions = {}): Promise<string> {
	const now = Math.floor((options.at ?? Date.now()) / 1000);
	const claims: JWTPayload = {
		iss: CLIENT_ID,
		sub: CLIENT_ID,
		aud: TOKEN_URL,
		jti: crypto.randomUUID(),
		iat: now,
		exp: now + 240,
		...options.claims,
	};
	for (const name of options.omit ?? []) delete claims[name];
	const header = { alg: options.alg ?? "RS384", typ: "JWT", kid: key.kid, ...options.header };
	for (const [name, value] of Object.entries(header)) {
		if (value === undefined) delete (header as Record<string, unknown>)[name];
	}
	return new SignJWT(claims).setProtectedHeader(header as { alg: string }).sign(options.key ?? key.privateKey);
}

export async function tokenRequest(
	fields: Record<string, string>,
	assertion?: string,
	path = "/oauth2/v1/token",
): Promise<Response> {
	const body = new URLSearchParams(fields);
	if (assertion !== undefined) {
		body.set("client_assertion_type", ASSERTION_TYPE);
		body.set("client_assertion", assertion);
	}
	return call(path, {
		method: "POST",
		headers: { "Content-Type": "application/x-www-form-urlencoded" },
		body,
	});
}

export function newVerifier(): string {
	return base64url.encode(crypto.getRandomValues(new Uint8Array(32)));
}

export async function challengeFor(verifier: string): Promise<string> {
	return base64url.encode(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
}

export async function authorizeUrl(params: Record<string, string | undefined> = {}): Promise<string> {
	const verifier = newVerifier();
	const defaults: Record<string, string> = {
		response_type: "code",
		client_id: CLIENT_ID,
		redirect_uri: REDIRECT_URI,
		scope: SCOPE,
		state: "state-abc",
		aud: FHIR_BASE,
		code_challenge: await challengeFor(verifier),
		code_challenge_method: "S256",
		nonce: "nonce-xyz",
	};
	const merged: Record<string, string> = { ...defaults };
	for (const [name, value] of Object.entries(params)) {
		if (value === undefined) delete merged[name];
		else merged[name] = value;
	}
	return `/oauth2/v1/authorize?${new URLSearchParams(merged)}`;
}

export function requestIdFrom(html: string): string {
	const match = /name="request" value="([^"]+)"/.exec(html);
	if (!match?.[1]) throw new Error("no pending request id in the page");
	return match[1];
}

export function form(fields: Record<string, string>): RequestInit {
	return {
		method: "POST",
		headers: { "Content-Type": "application/x-www-form-urlencoded" },
		body: new URLSearchParams(fields),
	};
}

/** The name=value of the athena session cookie a response sets, if any. */
export function sessionCookieFrom(response: Response): string | undefined {
	const header = response.headers.getSetCookie().find((c) => c.startsWith("athena_sandbox_sid="));
	return header?.split(";")[0];
}

export interface SignInOptions {
	decision?: "allow" | "deny";
	scope?: string;
	/** The record to pick on "Select a health record"; the user's own `id` by default. */
	record?: string;
	/** A browser's athena session cookie (`name=value`): the login page is skipped. */
	cookie?: string;
}

/**
 * Walks the pages as a browser would (login, "Select a health record",
 * consent) and returns the redirect, and the session cookie the login set.
 */
export async function signIn(
	user: { username: string; password: string; id: string } = JANE,
	options: SignInOptions = {},
): Promise<{ location: URL; verifier: string; cookie: string | undefined }> {
	const verifier = newVerifier();
	const start = await call(
		await authorizeUrl({
			code_challenge: await challengeFor(verifier),
			...(options.scope ? { scope: options.scope } : {}),
		}),
		options.cookie ? { headers: { Cookie: options.cookie } } : {},
	);
	if (start.status !== 200) throw new Error(`authorize answered ${start.status}`);
	let picker = start;
	let cookie = options.cookie;
	if (!options.cookie) {
		picker = await call(
			"/oauth2/v1/authorize/signin",
			form({ request: requestIdFrom(await start.text()), username: user.username, password: user.password }),
		);
		if (picker.status !== 200) throw new Error(`sign-in answered ${picker.status}`);
		cookie = sessionCookieFrom(picker);
	}
	const pickerHtml = await picker.text();
	if (!pickerHtml.includes("Select a health record")) throw new Error("no record picker after sign-in");
	const consent = await call(
		"/oauth2/v1/authorize/select",
		form({ request: requestIdFrom(pickerHtml), record: options.record ?? user.id }),
	);
	if (consent.status !== 200) throw new Error(`record picker answered ${consent.status}`);
	const decided = await call(
		"/oauth2/v1/authorize/consent",
		form({ request: requestIdFrom(await consent.text()), decision: options.decision ?? "allow" }),
	);
	const location = decided.headers.get("Location");
	if (decided.status !== 302 || !location) throw new Error(`consent answered ${decided.status}`);
	return { location: new URL(location), verifier, cookie };
}

export interface TokenBody {
	access_token?: string;
	token_type?: string;
	expires_in?: number;
	scope?: string;
	patient?: string;
	refresh_token?: string;
	id_token?: string;
	error?: string;
	error_description?: string;
}

export async function exchangeCode(
	key: TestClientKey,
	code: string,
	verifier: string,
	extra: Record<string, string> = {},
): Promise<Response> {
	return tokenRequest(
		{ grant_type: "authorization_code", code, redirect_uri: REDIRECT_URI, code_verifier: verifier, ...extra },
		await signAssertion(key),
	);
}

/** Signs in as the user, picks the user's record and exchanges the code: a full login. */
export async function login(
	key: TestClientKey,
	user: { username: string; password: string; id: string } = JANE,
	scope?: string,
): Promise<TokenBody> {
	const { location, verifier } = await signIn(user, scope ? { scope } : {});
	const code = location.searchParams.get("code");
	if (!code) throw new Error("no code in the redirect");
	const response = await exchangeCode(key, code, verifier);
	if (response.status !== 200) throw new Error(`token answered ${response.status}: ${await response.text()}`);
	return (await response.json()) as TokenBody;
}

export function fhirGet(path: string, accessToken: string | undefined, headers: Record<string, string> = {}) {
	return call(path.startsWith("http") ? path : `/fhir/r4${path}`, {
		headers: { ...(accessToken ? { Authorization: `Bearer ${accessToken}` } : {}), ...headers },
	});
}

export interface ClockReading {
	now: number;
	frozen: boolean;
}

async function clockAnswer(response: Response): Promise<ClockReading> {
	if (response.status !== 200) throw new Error(`clock control answered ${response.status}: ${await response.text()}`);
	return (await response.json()) as ClockReading;
}

/** Freezes the sandbox's clock at `now` (epoch ms). */
export async function freezeClock(now: number): Promise<ClockReading> {
	return clockAnswer(await control("clock", { now }));
}

/** Moves the frozen sandbox clock forward. */
export async function advanceClock(advanceMs: number): Promise<ClockReading> {
	return clockAnswer(await control("clock", { advanceMs }));
}

/**
 * The start of the real current minute: a frozen instant at most 60 s behind
 * the real time the helpers (like the worker) sign assertions with, so their
 * 240 s assertions stay valid however the test then moves the clock within a
 * minute or two. Whole minutes make the rate limit's windows exact.
 */
export function startOfThisMinute(): number {
	return Math.floor(Date.now() / 60_000) * 60_000;
}

/** Clean state, no rate limit (tests about the limit set it back) and a fresh client key. */
export async function freshSandbox(): Promise<TestClientKey> {
	await control("reset");
	await control("config", { tokenRateLimit: 0 });
	const key = await newClientKey();
	await publishJwks([key.publicJwk]);
	return key;
}
