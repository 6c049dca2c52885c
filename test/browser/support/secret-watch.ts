import type { BrowserContext, Page } from "playwright-core";
import { expect } from "vitest";
import { WORKER_ORIGIN } from "./dev-servers";

/**
 * A JWT (access tokens may be JWTs; id_tokens always are): two base64url JSON
 * segments, each starting `eyJ` (`{"`), joined by a dot. Random 43-character
 * ids (state, session) can contain `eyJ` by chance, never this shape.
 */
const JWT_SHAPE = /eyJ[A-Za-z0-9_-]*\.eyJ[A-Za-z0-9_-]*\./;
/** Names that only appear where a token, verifier or id_token is being carried. */
const TOKEN_NAMES = /access_token|refresh_token|code_verifier|id_token/;
/** `ATHENA_LOGOUT_URL` of the local environment (wrangler.toml). */
const ATHENA_LOGOUT_URL = "http://localhost:3001/oauth2/v1/logout";

/** athena's (here the sandbox's) end-session URL carrying only an id_token hint and where to return. */
function isEndSession(url: string): boolean {
	const parsed = new URL(url);
	if (`${parsed.origin}${parsed.pathname}` !== ATHENA_LOGOUT_URL) return false;
	const names = [...parsed.searchParams.keys()].sort().join(",");
	return names === "id_token_hint,post_logout_redirect_uri" || names === "id_token_hint,post_logout_redirect_uri,state";
}

/**
 * Watches one browser context for anything that would put a token within the
 * page's reach: every URL it requests or navigates to (so every history
 * entry), every HTML document this app serves, and what page script can read
 * (`document.cookie`, web storage). The app's tokens live server-side only, so
 * the browser never learns their values; the checks look for their shapes and
 * names instead.
 */
export class SecretWatch {
	readonly urls: string[] = [];
	private readonly documents: Array<Promise<string>> = [];
	private readonly pages: Page[] = [];

	constructor(private readonly context: BrowserContext) {
		for (const page of context.pages()) this.watch(page);
		context.on("page", (page) => this.watch(page));
	}

	private watch(page: Page): void {
		this.pages.push(page);
		page.on("request", (request) => this.urls.push(request.url()));
		page.on("framenavigated", (frame) => this.urls.push(frame.url()));
		page.on("response", (response) => {
			const ours = response.url().startsWith(`${WORKER_ORIGIN}/`);
			const redirect = response.status() >= 300 && response.status() < 400;
			if (ours && !redirect && response.request().resourceType() === "document") {
				// A page's body can be gone once the next navigation starts; what was served is what counts.
				this.documents.push(response.text().catch(() => ""));
			}
		});
	}

	/** What page script on our origin can read: cookies and web storage. */
	private async scriptVisible(page: Page): Promise<string> {
		if (!page.url().startsWith(`${WORKER_ORIGIN}/`)) return "";
		return page.evaluate(() =>
			JSON.stringify({
				cookie: document.cookie,
				local: { ...window.localStorage },
				session: { ...window.sessionStorage },
			}),
		);
	}

	/** Asserts nothing seen so far carries a token, and that the app's cookies are out of script's reach. */
	async expectClean(): Promise<void> {
		const documents = await Promise.all(this.documents);
		expect(documents.length).toBeGreaterThan(0);
		for (const html of documents) {
			expect(html).not.toMatch(JWT_SHAPE);
			expect(html).not.toContain("eyJ");
			expect(html).not.toMatch(TOKEN_NAMES);
			expect(html).not.toContain("Bearer ");
		}
		expect(this.urls.length).toBeGreaterThan(0);
		for (const url of this.urls) {
			// The one exception, by protocol: sign-out hands athena's end-session endpoint
			// (OpenID RP-Initiated Logout) athena's own id_token as the hint, and nothing else.
			if (isEndSession(url)) continue;
			expect(url).not.toMatch(JWT_SHAPE);
			expect(decodeURIComponent(url)).not.toMatch(TOKEN_NAMES);
		}
		for (const page of this.pages) {
			if (page.isClosed()) continue;
			const visible = await this.scriptVisible(page);
			if (visible) expect(JSON.parse(visible)).toEqual({ cookie: "", local: {}, session: {} });
		}
		const cookies = await this.context.cookies(WORKER_ORIGIN);
		for (const cookie of cookies) {
			expect(cookie.name.startsWith("__Host-"), cookie.name).toBe(true);
			expect(cookie).toMatchObject({ httpOnly: true, secure: true, sameSite: "Lax", path: "/" });
			expect(cookie.value).not.toMatch(JWT_SHAPE);
		}
	}
}
