/**
 * What a patient's browser does in a sign-in, with fetch: one cookie jar per
 * host (as browsers keep cookies: by host and path, not port, so the worker on
 * :3200 and the provider on :3201 both see each other's cookies, as they would
 * on a developer's machine), redirects followed one hop at a time so each hop
 * can be checked, and HTML forms submitted as a person would fill them in.
 */

const REQUEST_TIMEOUT_MS = 15_000;
const MAX_HOPS = 12;

/** One response on the way, with what it said. */
export interface Hop {
	url: URL;
	method: string;
	status: number;
	location: string | undefined;
	setCookies: string[];
	contentType: string;
	body: string;
}

interface StoredCookie {
	name: string;
	value: string;
	path: string;
}

/** An expiry date at or before this means "delete" (servers use 1970-01-01); no wall clock needed. */
const DELETION_DATE = Date.parse("1970-01-02T00:00:00Z");

export class PatientBrowser {
	readonly #jar = new Map<string, Map<string, StoredCookie>>();

	/** The value of a cookie the browser holds for `host`, whatever its path. */
	cookie(host: string, name: string): string | undefined {
		for (const cookie of this.#jar.get(host)?.values() ?? []) if (cookie.name === name) return cookie.value;
		return undefined;
	}

	#cookieHeader(url: URL): string | undefined {
		const cookies = [...(this.#jar.get(url.hostname)?.values() ?? [])].filter(
			(c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith("/") ? c.path : `${c.path}/`),
		);
		return cookies.length > 0 ? cookies.map((c) => `${c.name}=${c.value}`).join("; ") : undefined;
	}

	#store(url: URL, setCookie: string): void {
		const [pair = "", ...attributes] = setCookie.split(";").map((part) => part.trim());
		const at = pair.indexOf("=");
		const name = pair.slice(0, at);
		const value = pair.slice(at + 1);
		let path = "/";
		let deleted = false;
		for (const attribute of attributes) {
			const [key = "", attributeValue = ""] = attribute.split("=");
			const lower = key.toLowerCase();
			if (lower === "path") path = attributeValue;
			if (lower === "max-age" && Number(attributeValue) <= 0) deleted = true;
			if (lower === "expires" && Date.parse(attributeValue) <= DELETION_DATE) deleted = true;
		}
		const host = this.#jar.get(url.hostname) ?? new Map<string, StoredCookie>();
		this.#jar.set(url.hostname, host);
		if (deleted) host.delete(`${path};${name}`);
		else host.set(`${path};${name}`, { name, value, path });
	}

	/** One request, no redirect followed; cookies sent and kept. */
	async request(
		url: string | URL,
		init: { method?: string; body?: URLSearchParams; headers?: Record<string, string> } = {},
	) {
		const target = new URL(url);
		const headers = new Headers(init.headers);
		const cookie = this.#cookieHeader(target);
		if (cookie) headers.set("Cookie", cookie);
		if (!headers.has("Accept")) headers.set("Accept", "text/html");
		const method = init.method ?? (init.body ? "POST" : "GET");
		const response = await fetch(target, {
			method,
			headers,
			body: init.body,
			redirect: "manual",
			signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
		});
		const setCookies = response.headers.getSetCookie();
		for (const value of setCookies) this.#store(target, value);
		const location = response.headers.get("Location") ?? undefined;
		const hop: Hop = {
			url: target,
			method,
			status: response.status,
			location: location === undefined ? undefined : new URL(location, target).href,
			setCookies,
			contentType: response.headers.get("Content-Type") ?? "",
			body: await response.text(),
		};
		return hop;
	}

	/** A request and every redirect after it, as a browser follows them (a POST redirected with 302 or 303 becomes a GET). */
	async navigate(url: string | URL, init: { body?: URLSearchParams; headers?: Record<string, string> } = {}) {
		const hops: Hop[] = [await this.request(url, init)];
		for (;;) {
			const last = hops.at(-1) as Hop;
			if (last.status < 300 || last.status >= 400 || last.location === undefined) return hops;
			if (hops.length >= MAX_HOPS) throw new Error(`more than ${MAX_HOPS} redirects from ${url}`);
			hops.push(await this.request(last.location, { headers: init.headers }));
		}
	}

	/** Submits the page's form (its `action`, resolved against the page) with `fields`, following redirects. */
	submit(page: Hop, fields: Record<string, string>): Promise<Hop[]> {
		const form = /<form[^>]*\baction="([^"]*)"/i.exec(page.body);
		if (!form?.[1]) throw new Error(`no form on ${page.url.href}:\n${page.body.slice(0, 500)}`);
		return this.navigate(new URL(form[1].replaceAll("&amp;", "&"), page.url), { body: new URLSearchParams(fields) });
	}
}
