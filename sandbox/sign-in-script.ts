/*
 * The patient's part of a sign-in at the local athena sandbox, scripted once
 * for the worker's tests (inside workerd), the bench and the load run (plain
 * Node): the authorize page, athena's login page, its "Select a health
 * record" page and consent, up to the redirect back to the app's callback,
 * which is returned without being followed.
 *
 * Node imports this file as it is (type stripping), so it holds erasable
 * TypeScript only and imports nothing but types. The network is the caller's
 * `fetch`: `env.SANDBOX.fetch` in workerd, the global `fetch`, or any client
 * answering in the same shape.
 *
 * athena's sign-in widget reuses a browser's athena session
 * (shared/athena-observed.md), and so does the sandbox: when the caller's
 * `fetch` sends the sandbox's session cookie back, the authorize page is the
 * record picker itself and the login step is skipped.
 */
import type { TestLogin } from "./src/users.ts";

/** The part of `RequestInit` the script sends. */
export interface SandboxRequestInit {
	method: "GET" | "POST";
	headers: Record<string, string>;
	body?: string;
	/** The redirect back to the app is the script's answer: it must not be followed. */
	redirect: "manual";
}

/** The part of `Response` the script reads. */
export interface SandboxResponse {
	readonly status: number;
	readonly headers: { get(name: string): string | null };
	text(): Promise<string>;
}

/** One HTTP request to the sandbox, redirects not followed: `fetch` or a client shaped like it. */
export type SandboxFetch = (url: string, init: SandboxRequestInit) => Promise<SandboxResponse>;

/** Which page of the sandbox's sign-in answered unexpectedly. */
export type SandboxSignInStep = "authorize" | "sign-in" | "record picker" | "consent";

/**
 * The sandbox answered a step with something other than the next page. The
 * message names the step, the status and the page's own error text (all
 * bounded: the load run counts failures by message); `detail` keeps the start
 * of the body for whoever debugs it.
 */
export class SandboxSignInError extends Error {
	override readonly name = "SandboxSignInError";
	readonly step: SandboxSignInStep;
	readonly status: number;
	readonly detail: string;

	constructor(step: SandboxSignInStep, expected: string, status: number, body: string) {
		const alert = /<p class="error" role="alert">([^<]*)<\/p>/.exec(body)?.[1];
		super(`sandbox ${step}: expected ${expected}, got ${status}${alert ? ` (${alert})` : ""}`);
		this.step = step;
		this.status = status;
		this.detail = body.slice(0, 300);
	}
}

export interface SandboxSignIn {
	/** The authorize URL the app sent the browser to (the worker's /launch redirect). */
	authorizeUrl: string | URL;
	/** Typed into athena's login page, when the sandbox asks for it. */
	login: TestLogin;
	/** The patient id picked on "Select a health record" (`a-{practice}.E-{id}`). */
	record: string;
	/** The answer on the consent page. */
	decision?: "allow" | "deny";
	fetch: SandboxFetch;
}

/** A sandbox page's form: where it posts and the pending sign-in it carries. */
interface SandboxPage {
	url: URL;
	status: number;
	html: string;
	/** The form's action, resolved: which page this is. */
	action: URL | undefined;
	request: string | undefined;
}

const PAGE_ACTIONS = {
	signIn: "/oauth2/v1/authorize/signin",
	select: "/oauth2/v1/authorize/select",
	consent: "/oauth2/v1/authorize/consent",
} as const;

function readPage(url: URL, status: number, html: string): SandboxPage {
	const action = /<form method="post" action="([^"]+)"/.exec(html)?.[1];
	const request = /name="request" value="([^"]+)"/.exec(html)?.[1];
	return { url, status, html, action: action === undefined ? undefined : new URL(action, url), request };
}

const isPage = (page: SandboxPage, path: string) => page.status === 200 && page.action?.pathname === path;

/**
 * Runs the patient's side of athena's authorize pages and returns the
 * sandbox's redirect to the app (the callback URL with `code` and `state`, or
 * `error=access_denied` on deny).
 *
 * @example
 * const callback = await signInAtSandbox({
 *   authorizeUrl, login: JAKE, record: JAKE.id, fetch: (url, init) => env.SANDBOX.fetch(url, init),
 * });
 */
export async function signInAtSandbox({
	authorizeUrl,
	login,
	record,
	decision = "allow",
	fetch,
}: SandboxSignIn): Promise<URL> {
	const submit = (page: SandboxPage, fields: Record<string, string>) => {
		const target = page.action ?? page.url;
		return fetch(target.toString(), {
			method: "POST",
			// What a browser posting the sandbox's own form sends.
			headers: { "Content-Type": "application/x-www-form-urlencoded", Origin: target.origin },
			body: new URLSearchParams({ request: page.request ?? "", ...fields }).toString(),
			redirect: "manual",
		});
	};
	const nextPage = async (page: SandboxPage, fields: Record<string, string>) => {
		const response = await submit(page, fields);
		return readPage(page.action ?? page.url, response.status, await response.text());
	};

	const start = new URL(authorizeUrl);
	const opened = await fetch(start.toString(), { method: "GET", headers: {}, redirect: "manual" });
	let page = readPage(start, opened.status, await opened.text());
	if (isPage(page, PAGE_ACTIONS.signIn)) {
		page = await nextPage(page, { username: login.username, password: login.password });
		if (!isPage(page, PAGE_ACTIONS.select)) {
			throw new SandboxSignInError("sign-in", "the record picker", page.status, page.html);
		}
	} else if (!isPage(page, PAGE_ACTIONS.select)) {
		throw new SandboxSignInError("authorize", "the login page or the record picker", page.status, page.html);
	}
	page = await nextPage(page, { record });
	if (!isPage(page, PAGE_ACTIONS.consent)) {
		throw new SandboxSignInError("record picker", "the consent page", page.status, page.html);
	}
	const decided = await submit(page, { decision });
	const location = decided.headers.get("Location");
	if (decided.status !== 302 || !location) {
		throw new SandboxSignInError("consent", "a redirect to the app", decided.status, await decided.text());
	}
	return new URL(location, page.url);
}
