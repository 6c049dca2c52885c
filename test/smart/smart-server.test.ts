/**
 * The worker against a SMART server that is not ours.
 *
 * The authorization server is panva's oidc-provider (OpenID Certified), in
 * this process on http://localhost:3201 (smart-server.ts), configured as a
 * SMART App Launch 2.2 EHR would be:
 * - one client, `smart-test-client`: `private_key_jwt` with RS384 (SMART
 *   client-confidential-asymmetric), keys from the worker's
 *   http://localhost:3200/.well-known/jwks.json, redirect URI
 *   http://localhost:3200/callback, authorization_code + refresh_token;
 * - PKCE S256 required; `aud` on the authorize request must be the FHIR base,
 *   as SMART requires of an EHR; an id_token for `openid` (nonce, `fhirUser`);
 *   RFC 7009 revocation, which ends the whole grant;
 * - scopes `openid fhirUser offline_access launch/patient patient/*.rs
 *   patient/*.read` (v2 and v1). oidc-provider grants offline_access only with
 *   prompt=consent (OpenID Connect Core §11), which SMART apps do not send: the
 *   server asks for consent whenever offline_access is requested, as SMART
 *   servers do, and one test switches to oidc-provider's own rule. Refresh
 *   tokens rotate on every use, and a rotated one presented again would end
 *   the grant (so a double refresh would show);
 * - the patient's UUID beside the token at the code exchange (a Koa
 *   middleware: oidc-provider has no SMART launch context of its own), and
 *   none on refresh, where SMART lists no launch context;
 * - login and consent pages that the tests fill in as a browser would
 *   (patient-browser.ts: cookies by host and path, redirects hop by hop).
 * Beside it, the FHIR base http://localhost:3201/fhir serves a
 * smart-configuration built from the provider's own metadata and a tiny FHIR
 * API that accepts only live access tokens of live grants (as the provider's
 * introspection would), answers 400 to a search parameter it does not know
 * (as servers that never heard of athena's `ah-practice` do) and pages an
 * Observation search in two.
 *
 * The worker is the real one, `wrangler dev` on :3200 (worker-process.ts) with
 * `EHR_PROFILE=smart`, only FHIR_BASE_URL and CLIENT_ID naming the server and
 * every ATHENA_* endpoint empty, so all it knows of the server comes from
 * discovery. A second worker on :3202 points at a FHIR base whose
 * smart-configuration offers neither PKCE S256 nor private_key_jwt: the worker
 * keeps a discovered document for an hour per isolate, so the refusal needs a
 * worker of its own.
 *
 * Nothing here waits on the clock: an access token "expires" by being ended
 * in the provider's store, and a patient "revokes" the app by the provider
 * revoking the grant. The tests in the first block run in order, as one
 * patient's day.
 */
import { decodeProtectedHeader } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Hop, PatientBrowser } from "./patient-browser";
import { CLIENT_ID, PATIENT_ID, PATIENT_LOGIN, type SmartServer, startSmartServer } from "./smart-server";
import { startWorker, type WorkerProcess } from "./worker-process";

const WORKER_PORT = 3200;
const WEAK_WORKER_PORT = 3202;
const SERVER_PORT = 3201;
const WORKER = `http://localhost:${WORKER_PORT}`;
const SCOPES = "openid fhirUser offline_access launch/patient patient/*.rs";
const SESSION_COOKIE = "__Host-athena_session";
/** The provider listed again in SMART_SERVERS (its own id, name and budget). */
const TWIN = "provider-twin";

/** The worker's settings for a SMART server: only the FHIR base and the client name it; the rest is discovered. */
function smartSettings(origin: string, fhirBase: string): Record<string, string> {
	return {
		EHR_PROFILE: "smart",
		FHIR_BASE_URL: fhirBase,
		CLIENT_ID,
		PUBLIC_ORIGIN: origin,
		REDIRECT_URI: `${origin}/callback`,
		SCOPES,
		ATHENA_AUTHORIZE_URL: "",
		ATHENA_TOKEN_URL: "",
		ATHENA_REVOKE_URL: "",
		ATHENA_JWKS_URL: "",
		ATHENA_ISSUER: "",
		ATHENA_LOGOUT_URL: "",
		DEFAULT_PRACTICE: "",
		TOKEN_REQUESTS_PER_MINUTE: "1000",
	};
}

let server: SmartServer;

beforeAll(async () => {
	server = await startSmartServer({ port: SERVER_PORT, workerOrigin: WORKER });
});

afterAll(async () => {
	await server?.close();
});

/** The page the last hop landed on, failing with what the servers said if it is not one. */
function landed(hops: Hop[], why: string): Hop {
	const last = hops.at(-1) as Hop;
	if (last.status !== 200) {
		throw new Error(
			`${why}: ended at ${last.method} ${last.url.href} with ${last.status}: ${last.body.slice(0, 400)}\n` +
				`provider problems: ${server.problems.join("; ")}`,
		);
	}
	return last;
}

/** The patient at the provider: signs in if asked to, then allows or denies on the consent page. */
async function atProvider(browser: PatientBrowser, hops: Hop[], decision: "allow" | "deny"): Promise<Hop[]> {
	let page = landed(hops, "the provider's first page");
	const all = [...hops];
	if (page.body.includes('name="password"')) {
		const login = await browser.submit(page, PATIENT_LOGIN);
		all.push(...login);
		page = landed(login, "after signing in at the provider");
	}
	expect(page.url.origin).toBe(server.origin);
	expect(page.body).toContain(`${CLIENT_ID} asks for`);
	all.push(...(await browser.submit(page, { decision })));
	return all;
}

function json(hop: Hop): Record<string, unknown> {
	return JSON.parse(hop.body) as Record<string, unknown>;
}

describe("a patient signs in through the worker at an oidc-provider SMART server", () => {
	let worker: WorkerProcess;
	const browser = new PatientBrowser();
	let workerKid: string;
	/** Tokens as the provider issued them, followed across the tests below. */
	let firstRefreshToken: string;
	let rotatedRefreshToken: string;
	let refreshedAccessToken: string;

	beforeAll(async () => {
		// The provider a second time in SMART_SERVERS, under its own id, name and token budget, with the
		// smart profile: the only independent SMART server this suite runs (last test of this block).
		const listed = [
			{ id: TWIN, name: "Provider Twin", fhirBaseUrl: server.fhirBase, clientId: CLIENT_ID, profile: "smart" },
		];
		worker = await startWorker(WORKER_PORT, {
			...smartSettings(WORKER, server.fhirBase),
			SMART_SERVERS: JSON.stringify(listed),
		});
		const jwks = (await (await fetch(`${WORKER}/.well-known/jwks.json`)).json()) as { keys: { kid: string }[] };
		workerKid = jwks.keys[0]?.kid ?? "";
	});

	afterAll(async () => {
		await worker?.stop();
	});

	/** Worker requests with the browser's cookies, as the app's own pages make them. */
	const api = (path: string, init: Parameters<PatientBrowser["request"]>[1] = {}) =>
		browser.request(`${WORKER}${path}`, { ...init, headers: { Accept: "application/json", ...init.headers } });

	it("serves the provider's endpoints and abilities in the FHIR base's smart-configuration", async () => {
		const document = (await (await fetch(`${server.fhirBase}/.well-known/smart-configuration`)).json()) as Record<
			string,
			unknown
		>;
		expect(document).toMatchObject({
			issuer: server.issuer,
			authorization_endpoint: `${server.issuer}/auth`,
			token_endpoint: `${server.issuer}/token`,
			revocation_endpoint: `${server.issuer}/token/revocation`,
			code_challenge_methods_supported: ["S256"],
		});
		expect(document.token_endpoint_auth_methods_supported).toContain("private_key_jwt");
		expect(document.token_endpoint_auth_signing_alg_values_supported).toContain("RS384");
	});

	it("launches, signs in and consents at the provider, and comes back with a session cookie", async () => {
		const launch = await browser.navigate(`${WORKER}/launch?return_to=/session`);
		expect(launch[0]?.status).toBe(302);
		const authorize = new URL(launch[0]?.location ?? "");
		expect(authorize.origin + authorize.pathname).toBe(`${server.issuer}/auth`);

		const hops = await atProvider(browser, launch.slice(1), "allow");
		const callbackIndex = hops.findIndex((hop) => hop.url.href.startsWith(`${WORKER}/callback?`));
		const callback = hops[callbackIndex] as Hop;
		if (callback?.status !== 302) {
			throw new Error(
				`callback answered ${callback?.status}: ${callback?.body.slice(0, 600)}\n${worker.output().slice(-3000)}`,
			);
		}
		// RFC 9207: oidc-provider names itself on the redirect, and the worker checked it against discovery.
		expect(callback.url.searchParams.get("iss")).toBe(server.issuer);
		expect(callback.location).toBe(`${WORKER}/session`);
		expect(callback.setCookies.some((cookie) => cookie.startsWith(`${SESSION_COOKIE}=`))).toBe(true);
		expect(browser.cookie("localhost", SESSION_COOKIE)).toBeDefined();

		// What the provider was asked: SMART's aud, PKCE S256, the configured scopes, a nonce for the id_token.
		expect(server.authorizeRequests).toHaveLength(1);
		const asked = server.authorizeRequests[0] as URLSearchParams;
		expect(Object.fromEntries(asked)).toMatchObject({
			response_type: "code",
			client_id: CLIENT_ID,
			redirect_uri: `${WORKER}/callback`,
			scope: SCOPES,
			aud: server.fhirBase,
			code_challenge_method: "S256",
		});
		expect(asked.get("nonce")).toBeTruthy();
		expect(asked.has("ah-practice")).toBe(false);
		// OpenID Connect Core §11: offline_access is asked for with prompt=consent under the smart profile.
		expect(asked.get("prompt")).toBe("consent");

		// The code exchange, as the provider saw it: an RS384 assertion it verified with the worker's JWKS.
		expect(server.clientCalls).toHaveLength(1);
		const exchange = server.clientCalls[0];
		expect(exchange).toMatchObject({
			endpoint: "token",
			grantType: "authorization_code",
			status: 200,
			client: { id: CLIENT_ID, method: "private_key_jwt" },
		});
		expect(exchange?.assertion?.header).toMatchObject({ alg: "RS384", typ: "JWT", kid: workerKid });
		expect(exchange?.assertion?.claims).toMatchObject({
			iss: CLIENT_ID,
			sub: CLIENT_ID,
			aud: `${server.issuer}/token`,
		});
		expect(exchange?.issued).toMatchObject({ patient: PATIENT_ID, token_type: "Bearer" });
		expect(String(exchange?.issued?.scope).split(" ").sort()).toEqual(SCOPES.split(" ").sort());
		// The id_token the worker verified is the provider's own, signed with its key.
		expect(decodeProtectedHeader(String(exchange?.issued?.id_token))).toMatchObject({ kid: "smart-test-id-token" });
		firstRefreshToken = String(exchange?.issued?.refresh_token);
		expect(await server.refreshTokenState(firstRefreshToken)).toBe("active");
		expect(server.problems).toEqual([]);
	});

	it("shows the connected UUID patient with no practice on /session", async () => {
		const session = await api("/session");
		expect(session.status).toBe(200);
		const view = json(session);
		expect(view).toMatchObject({ status: "connected", patient: PATIENT_ID, reads: "all" });
		expect(view).not.toHaveProperty("practice");
		expect(view.scopes).toEqual(expect.arrayContaining(["launch/patient", "patient/*.rs"]));
	});

	it("reads the patient and follows a two-page search through the proxy, sending searches as written", async () => {
		const before = server.fhirRequests.length;
		const patient = await api(`/fhir/r4/Patient/${PATIENT_ID}`);
		expect(patient.status).toBe(200);
		expect(json(patient)).toMatchObject({ resourceType: "Patient", id: PATIENT_ID });

		const first = await api(`/fhir/r4/Observation?patient=${PATIENT_ID}`);
		expect(first.status).toBe(200);
		const firstPage = json(first) as { link: { relation: string; url: string }[]; entry: { fullUrl: string }[] };
		expect(firstPage.entry.map((entry) => entry.fullUrl)).toEqual([
			`${WORKER}/fhir/r4/Observation/obs-1`,
			`${WORKER}/fhir/r4/Observation/obs-2`,
		]);
		const next = firstPage.link.find((link) => link.relation === "next")?.url ?? "";
		// The server's next link, pointed back at the proxy.
		expect(next).toBe(`${WORKER}/fhir/r4/Observation?patient=${PATIENT_ID}&_page=2`);

		const second = await api(new URL(next).pathname + new URL(next).search);
		expect(second.status).toBe(200);
		const secondPage = json(second) as { link: { relation: string }[]; entry: { fullUrl: string }[] };
		expect(secondPage.entry.map((entry) => entry.fullUrl)).toEqual([`${WORKER}/fhir/r4/Observation/obs-3`]);
		expect(secondPage.link.map((link) => link.relation)).toEqual(["self"]);

		// A search naming no patient goes out as written (athena's profile would add the patient and ah-practice).
		const unnamed = await api("/fhir/r4/Observation?category=vital-signs");
		expect(unnamed.status).toBe(403);

		const seen = server.fhirRequests.slice(before);
		expect(seen.map((request) => `${request.status} ${request.path}?${request.query}`)).toEqual([
			`200 /Patient/${PATIENT_ID}?`,
			`200 /Observation?patient=${PATIENT_ID}`,
			`200 /Observation?patient=${PATIENT_ID}&_page=2`,
			"403 /Observation?category=vital-signs",
		]);
		expect(server.fhirRequests.some((request) => request.query.has("ah-practice"))).toBe(false);
	});

	it("refreshes once the provider no longer accepts the access token, keeping the rotated refresh token", async () => {
		expect(await server.expireAccessTokens()).toBe(1);
		const before = server.fhirRequests.length;
		const calls = server.clientCalls.length;

		// Three reads at once, all refused by the server: one refresh between them (presenting a rotated
		// refresh token twice would make oidc-provider revoke the whole grant).
		const reads = await Promise.all([
			api(`/fhir/r4/Patient/${PATIENT_ID}`),
			api(`/fhir/r4/Observation?patient=${PATIENT_ID}`),
			api(`/fhir/r4/Patient/${PATIENT_ID}`),
		]);
		expect(reads.map((read) => read.status)).toEqual([200, 200, 200]);
		const statuses = server.fhirRequests.slice(before).map((request) => request.status);
		expect(statuses.filter((status) => status === 200)).toHaveLength(3);

		const refreshes = server.clientCalls.slice(calls);
		expect(refreshes).toHaveLength(1);
		const refresh = refreshes[0];
		expect(refresh).toMatchObject({
			endpoint: "token",
			grantType: "refresh_token",
			status: 200,
			presented: firstRefreshToken,
			client: { id: CLIENT_ID, method: "private_key_jwt" },
		});
		expect(refresh?.assertion?.header).toMatchObject({ alg: "RS384", kid: workerKid });
		expect(refresh?.assertion?.claims).toMatchObject({ aud: `${server.issuer}/token` });
		// Rotation: a new refresh token, the one presented spent.
		rotatedRefreshToken = String(refresh?.issued?.refresh_token);
		refreshedAccessToken = String(refresh?.issued?.access_token);
		expect(rotatedRefreshToken).not.toBe(firstRefreshToken);
		expect(await server.refreshTokenState(firstRefreshToken)).toBe("consumed");
		expect(await server.refreshTokenState(rotatedRefreshToken)).toBe("active");
		// No patient on refresh (SMART lists none): the session keeps the one from sign-in.
		expect(refresh?.issued).not.toHaveProperty("patient");
		expect(json(await api("/session"))).toMatchObject({ status: "connected", patient: PATIENT_ID });

		// The new token serves the next read without another refresh.
		const again = await api(`/fhir/r4/Observation?patient=${PATIENT_ID}`);
		expect(again.status).toBe(200);
		expect(server.clientCalls).toHaveLength(calls + 1);
		expect(server.problems).toEqual([]);
	});

	it("signs out by revoking the rotated refresh token at the provider with an RS384 assertion", async () => {
		const calls = server.clientCalls.length;
		const logout = await api("/logout", { method: "POST", headers: { Origin: WORKER } });
		expect(logout.status).toBe(200);
		expect(json(logout)).toEqual({ status: "signed_out", revokedAtAthena: true });
		expect(browser.cookie("localhost", SESSION_COOKIE)).toBeUndefined();

		const revocations = server.clientCalls.slice(calls);
		expect(revocations).toHaveLength(1);
		const revocation = revocations[0];
		expect(revocation).toMatchObject({
			endpoint: "revocation",
			status: 200,
			presented: rotatedRefreshToken,
			client: { id: CLIENT_ID, method: "private_key_jwt" },
		});
		expect(revocation?.assertion?.header).toMatchObject({ alg: "RS384", typ: "JWT", kid: workerKid });
		expect(revocation?.assertion?.claims).toMatchObject({ iss: CLIENT_ID, sub: CLIENT_ID });
		// The whole grant is gone at the provider: the refresh token and the access token it issued.
		expect(await server.refreshTokenState(rotatedRefreshToken)).toBe("gone");
		expect(await server.accessTokenActive(refreshedAccessToken)).toBe(false);

		expect(json(await api("/session"))).toEqual({ status: "signed_out" });
		const read = await api(`/fhir/r4/Patient/${PATIENT_ID}`);
		expect(read.status).toBe(401);
		expect(json(read)).toEqual({ status: "signed_out" });
		expect(server.problems).toEqual([]);
	});

	it("shows the session as revoked once the patient's grant is revoked at the provider", async () => {
		const launch = await browser.navigate(`${WORKER}/launch?return_to=/session`);
		const hops = await atProvider(browser, launch.slice(1), "allow");
		expect(hops.find((hop) => hop.url.pathname === "/callback")?.status).toBe(302);
		const calls = server.clientCalls.length;
		const refreshToken = String(server.clientCalls[calls - 1]?.issued?.refresh_token);

		expect(await server.revokeGrants()).toBe(1);
		const before = server.fhirRequests.length;
		const read = await api(`/fhir/r4/Patient/${PATIENT_ID}`);
		expect(read.status).toBe(401);
		expect(json(read)).toEqual({ status: "revoked" });
		expect(server.fhirRequests.slice(before).map((request) => request.status)).toEqual([401]);
		// The worker tried its refresh token once; oidc-provider's invalid_grant ended the grant here too.
		expect(server.clientCalls.slice(calls)).toMatchObject([
			{ endpoint: "token", grantType: "refresh_token", presented: refreshToken, status: 400, error: "invalid_grant" },
		]);
		// /session lists the session's connections since sessions hold several: this one reads as revoked.
		expect(json(await api("/session"))).toEqual({
			status: "revoked",
			patient: PATIENT_ID,
			connections: [expect.objectContaining({ status: "revoked", patient: PATIENT_ID, server: "localhost:3201" })],
		});

		// Nothing is left to hand back at sign-out.
		const logout = await api("/logout", { method: "POST", headers: { Origin: WORKER } });
		expect(json(logout)).toEqual({ status: "signed_out", revokedAtAthena: false });
		expect(server.clientCalls).toHaveLength(calls + 1);
		expect(json(await api("/session"))).toEqual({ status: "signed_out" });
	});

	it("gets a refresh token from a strict OpenID server: offline_access goes with prompt=consent", async () => {
		// oidc-provider's own rule: offline_access only with prompt=consent, which the worker sends under `smart`.
		server.setOfflineAccess("oidc");
		try {
			const calls = server.clientCalls.length;
			const launch = await browser.navigate(`${WORKER}/launch?return_to=/session`);
			const hops = await atProvider(browser, launch.slice(1), "allow");
			expect(hops.find((hop) => hop.url.pathname === "/callback")?.status).toBe(302);
			const exchange = server.clientCalls[calls];
			expect(String(exchange?.issued?.scope).split(" ")).toContain("offline_access");
			expect(exchange?.issued).toHaveProperty("refresh_token");
			// Signed out here, so the next sign-in (same browser, same grant at the provider) starts clean.
			expect(json(await api("/logout", { method: "POST", headers: { Origin: WORKER } }))).toMatchObject({
				status: "signed_out",
				revokedAtAthena: true,
			});
		} finally {
			server.setOfflineAccess("smart");
		}
	});

	it("ends the session with its access token when the server grants no offline_access", async () => {
		server.setOfflineAccess("never");
		try {
			const calls = server.clientCalls.length;
			const launch = await browser.navigate(`${WORKER}/launch?return_to=/session`);
			const hops = await atProvider(browser, launch.slice(1), "allow");
			expect(hops.find((hop) => hop.url.pathname === "/callback")?.status).toBe(302);
			const exchange = server.clientCalls[calls];
			expect(exchange).toMatchObject({ grantType: "authorization_code", status: 200 });
			expect(String(exchange?.issued?.scope).split(" ")).not.toContain("offline_access");
			expect(exchange?.issued).not.toHaveProperty("refresh_token");
			expect(json(await api("/session"))).toMatchObject({ status: "connected", patient: PATIENT_ID });

			expect(await server.expireAccessTokens()).toBe(1);
			const before = server.fhirRequests.length;
			const read = await api(`/fhir/r4/Patient/${PATIENT_ID}`);
			expect(read.status).toBe(401);
			expect(json(read)).toEqual({ status: "signed_out" });
			expect(server.fhirRequests.slice(before).map((request) => request.status)).toEqual([401]);
			// Nothing to refresh with: no token call, and the patient is asked to connect again.
			expect(server.clientCalls).toHaveLength(calls + 1);
			expect(json(await api("/session"))).toEqual({ status: "signed_out" });
		} finally {
			server.setOfflineAccess("smart");
		}
	});

	it("tells a patient who denies at the provider's consent page that nothing was shared", async () => {
		const denying = new PatientBrowser();
		const launch = await denying.navigate(`${WORKER}/launch`);
		const hops = await atProvider(denying, launch.slice(1), "deny");
		const callback = hops.find((hop) => hop.url.href.startsWith(`${WORKER}/callback?`));
		expect(callback?.url.searchParams.get("error")).toBe("access_denied");
		expect(callback?.status).toBe(403);
		expect(callback?.body).toContain("Nothing was shared");
		expect(denying.cookie("localhost", SESSION_COOKIE)).toBeUndefined();
	});
	const twinBrowser = new PatientBrowser();
	/** A launch followed through the provider's pages to the worker's callback, which must add the record. */
	async function connect(path: string): Promise<URLSearchParams> {
		const asked = server.authorizeRequests.length;
		const launch = await twinBrowser.navigate(`${WORKER}${path}`);
		expect(launch[0]?.status).toBe(302);
		const hops = await atProvider(twinBrowser, launch.slice(1), "allow");
		const callback = hops.find((hop) => hop.url.href.startsWith(`${WORKER}/callback?`));
		if (callback?.status !== 302) {
			throw new Error(`callback answered ${callback?.status}: ${callback?.body.slice(0, 600)}`);
		}
		return server.authorizeRequests[asked] as URLSearchParams;
	}

	// Last of this block: its own browser, and the provider's calls counted from here on.
	it("offers a SMART_SERVERS server on the home page, connects it as a second record, and reads each record through its own mount", async () => {
		const home = await twinBrowser.request(`${WORKER}/`);
		expect(home.body).toContain('<input type="hidden" name="server" value="provider-twin"/>');
		expect(home.body).toContain("Connect with Provider Twin");

		await connect("/launch?return_to=/session");
		const asked = await connect(`/launch?connect=1&server=${TWIN}&return_to=/session`);
		expect(asked.get("client_id")).toBe(CLIENT_ID);
		expect(asked.get("aud")).toBe(server.fhirBase);
		expect(asked.get("prompt")).toBe("consent");

		const view = json(await twinBrowser.request(`${WORKER}/session`, { headers: { Accept: "application/json" } })) as {
			connections: Array<{ id: string; server: string; serverId?: string; status: string; patient: string }>;
		};
		expect(view.connections.map((c) => [c.server, c.serverId, c.status, c.patient])).toEqual([
			["localhost:3201", undefined, "connected", PATIENT_ID],
			["Provider Twin", TWIN, "connected", PATIENT_ID],
		]);
		for (const { id } of view.connections) {
			const read = await twinBrowser.request(`${WORKER}/fhir/${id}/r4/Patient/${PATIENT_ID}`);
			expect(read.status).toBe(200);
			expect(json(read)).toMatchObject({ resourceType: "Patient", id: PATIENT_ID });
		}
	});
});

describe("a SMART server without PKCE S256 or private_key_jwt", () => {
	const origin = `http://localhost:${WEAK_WORKER_PORT}`;
	let worker: WorkerProcess;

	beforeAll(async () => {
		worker = await startWorker(WEAK_WORKER_PORT, smartSettings(origin, server.weakFhirBase));
	});

	afterAll(async () => {
		await worker?.stop();
	});

	it("is refused at /launch with server_unsupported, naming both, before the patient is sent anywhere", async () => {
		const authorizeRequests = server.authorizeRequests.length;
		const response = await fetch(`${origin}/launch`, { redirect: "manual", headers: { Accept: "application/json" } });
		expect(response.status).toBe(503);
		expect(response.headers.get("Location")).toBeNull();
		expect(response.headers.getSetCookie()).toEqual([]);
		const body = (await response.json()) as { error: string; message: string };
		expect(body.error).toBe("server_unsupported");
		expect(body.message).toContain("PKCE S256");
		expect(body.message).toContain("private_key_jwt");

		// A patient's browser gets the same as a page.
		const page = await new PatientBrowser().request(`${origin}/launch`);
		expect(page.status).toBe(503);
		expect(page.contentType).toContain("text/html");
		expect(page.body).toContain("PKCE S256 and private_key_jwt");
		expect(server.authorizeRequests).toHaveLength(authorizeRequests);
	});
});
