import { env, exports } from "cloudflare:workers";
import { type SandboxFetch, signInAtSandbox } from "../../../sandbox/sign-in-script";
import { JAKE, JAKE_SECOND_PRACTICE, LILY, ROWAN, type TestUser } from "../../../sandbox/src/users";

/** A minimal cookie jar: what a browser would send back to the worker. */
export class CookieJar {
	readonly cookies = new Map<string, string>();

	store(response: Response): void {
		for (const header of response.headers.getSetCookie()) {
			const [pair] = header.split(";");
			const index = pair?.indexOf("=") ?? -1;
			if (!pair || index < 0) continue;
			const name = pair.slice(0, index).trim();
			const value = pair.slice(index + 1).trim();
			if (/max-age=0/i.test(header) || value === "") this.cookies.delete(name);
			else this.cookies.set(name, value);
		}
	}

	header(): string {
		return [...this.cookies].map(([name, value]) => `${name}=${value}`).join("; ");
	}
}

export const WORKER_ORIGIN = "http://localhost:3000";

/** A request to the worker under test, as the patient's browser would send it. */
export async function browserFetch(
	jar: CookieJar,
	path: string,
	init: RequestInit = {},
	worker: (request: Request) => Promise<Response> = (request) => exports.default.fetch(request),
): Promise<Response> {
	const headers = new Headers(init.headers);
	if (jar.cookies.size > 0) headers.set("Cookie", jar.header());
	const response = await worker(new Request(new URL(path, WORKER_ORIGIN), { ...init, headers, redirect: "manual" }));
	jar.store(response);
	return response;
}

/** The sandbox's controls (`/_sandbox/...`). */
export async function sandbox<T = unknown>(path: string, body?: unknown): Promise<T> {
	const response = await env.SANDBOX.fetch(`http://localhost:3001/_sandbox/${path}`, {
		method: body === undefined ? "GET" : "POST",
		headers: { "Content-Type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	if (!response.ok) throw new Error(`sandbox ${path}: ${response.status} ${await response.text()}`);
	return (await response.json()) as T;
}

export interface Received {
	assertions: Array<{
		endpoint: string;
		header: Record<string, unknown>;
		claims: Record<string, unknown>;
		accepted: boolean;
	}>;
	tokenCalls: Array<{ grantType: string | null; status: number; error?: string }>;
}

const patient = (user: TestUser) => ({
	username: user.username,
	password: user.password,
	practice: user.practiceId,
	id: user.id,
});

/**
 * The sandbox's test logins (sandbox/src/users.ts), each with the record it
 * picks on athena's "Select a health record" page (`id`), in the shape these
 * tests use. `jane` is the preview login's own record (Jake Medlock at 80000).
 */
export const PATIENTS = {
	jane: patient(JAKE),
	second: patient(ROWAN),
	/** The preview login picking Jake's record at his second practice. */
	janeElsewhere: patient(JAKE_SECOND_PRACTICE),
	/** The preview login picking its dependent's record (Lily, at 80000). */
	dependent: patient(LILY),
} as const;

/**
 * Runs the athena side of a sign-in (sandbox/sign-in-script.ts): the worker's
 * /launch redirect is followed to the sandbox's login page, its "Select a
 * health record" page (picking `record`, the patient's own `id` unless told
 * otherwise) and consent, and the sandbox's redirect back (the callback URL
 * with code and state) is returned without following it. No sandbox cookie is
 * kept between calls, so every call signs in with the password.
 */
export function authorizeAtSandbox(
	authorizeUrl: string,
	patient: { username: string; password: string; id: string },
	decision: "allow" | "deny" = "allow",
	record: string = patient.id,
	athenaBrowser?: CookieJar,
): Promise<URL> {
	return signInAtSandbox({
		authorizeUrl,
		login: patient,
		record,
		decision,
		fetch: athenaBrowser ? sandboxFetchWith(athenaBrowser) : (url, init) => env.SANDBOX.fetch(url, init),
	});
}

/** The sandbox as a browser meets it: its cookies (athena's browser session) kept in `jar` and sent back. */
function sandboxFetchWith(jar: CookieJar): SandboxFetch {
	return async (url, init) => {
		const headers = { ...init.headers, ...(jar.cookies.size > 0 ? { Cookie: jar.header() } : {}) };
		const response = await env.SANDBOX.fetch(url, { ...init, headers });
		jar.store(response);
		return response;
	};
}

/** Launch from the worker: returns the authorize URL the browser is sent to. */
export async function launch(
	jar: CookieJar,
	query = "practice=80000",
	worker?: (request: Request) => Promise<Response>,
): Promise<URL> {
	const response = await browserFetch(jar, `/launch?${query}`, {}, worker);
	const location = response.headers.get("Location");
	if (response.status !== 302 || !location) throw new Error(`launch: ${response.status} ${await response.text()}`);
	return new URL(location);
}

/**
 * The whole patient sign-in through real requests, picking the patient's
 * record (`id`) at athena; returns the browser's cookie jar.
 */
export async function signIn(
	patient: { username: string; password: string; practice: string; id: string } = PATIENTS.jane,
) {
	const jar = new CookieJar();
	const authorize = await launch(jar, `practice=${patient.practice}`);
	const callbackUrl = await authorizeAtSandbox(authorize.toString(), patient);
	const response = await browserFetch(jar, `${callbackUrl.pathname}${callbackUrl.search}`);
	if (response.status !== 302) throw new Error(`callback: ${response.status} ${await response.text()}`);
	return { jar, response, callbackUrl };
}

/** A browser signed in to the worker (`jar`) and to athena (`athena`: its browser session there). */
export interface PatientBrowser {
	jar: CookieJar;
	athena: CookieJar;
}

/** A sign-in that also keeps athena's browser session, so a later "Connect another record" skips athena's login. */
export async function signInKeepingAthena(patient = PATIENTS.jane): Promise<PatientBrowser> {
	const browser = { jar: new CookieJar(), athena: new CookieJar() };
	const authorize = await launch(browser.jar, `practice=${patient.practice}`);
	const callbackUrl = await authorizeAtSandbox(authorize.toString(), patient, "allow", patient.id, browser.athena);
	const response = await browserFetch(browser.jar, `${callbackUrl.pathname}${callbackUrl.search}`);
	if (response.status !== 302) throw new Error(`callback: ${response.status} ${await response.text()}`);
	return browser;
}

/**
 * "Connect another record": `/launch?connect=1` from the signed-in browser,
 * athena's record picker (straight away: athena's browser session is kept)
 * choosing `record`, and the callback. Returns the
 * callback's response (302 to the record page when the record was added).
 */
export async function connectRecord(
	browser: PatientBrowser,
	record: { id: string },
	worker?: (request: Request) => Promise<Response>,
): Promise<Response> {
	const authorize = await launch(browser.jar, "connect=1");
	// athena remembers the browser: its login page must not come up, so no working password is given.
	const noPassword = { ...PATIENTS.jane, password: "athena-must-not-ask" };
	const callbackUrl = await authorizeAtSandbox(authorize.toString(), noPassword, "allow", record.id, browser.athena);
	return browserFetch(browser.jar, `${callbackUrl.pathname}${callbackUrl.search}`, {}, worker);
}
