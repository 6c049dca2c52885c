import { createExecutionContext, waitOnExecutionContext } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { app } from "../../src/app";
import { recordPage } from "../../src/pages/record";
import { randomToken } from "../../src/random";
import { SESSION_COOKIE } from "../../src/session/contract";
import { EMPTY_SECTION, emptyRecord } from "./support/record-view";
import { authorizeAtSandbox, browserFetch, CookieJar, launch, PATIENTS, sandbox, signIn } from "./support/sign-in";

const html = { headers: { Accept: "text/html" } };

/**
 * The headers the issue asks of every page. Pages with the sign-out POST form
 * send `same-origin` instead of `no-referrer`, else browsers send `Origin: null`.
 */
function expectPageHeaders(headers: Headers, referrerPolicy = "no-referrer"): void {
	const csp = headers.get("Content-Security-Policy") ?? "";
	expect(csp).toContain("default-src 'none'");
	expect(csp).toContain("style-src 'self'");
	expect(csp).toContain("frame-ancestors 'none'");
	expect(csp).not.toContain("script-src");
	expect(csp).not.toContain("unsafe-inline");
	expect(headers.get("Referrer-Policy")).toBe(referrerPolicy);
	expect(headers.get("X-Content-Type-Options")).toBe("nosniff");
	expect(headers.get("X-Frame-Options")).toBe("DENY");
	expect(headers.get("Content-Type")).toBe("text/html; charset=utf-8");
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("the home page", () => {
	it("explains the app and connects with one click: no practice ID asked (athena's sign-in picks the record)", async () => {
		const response = await browserFetch(new CookieJar(), "/", html);
		expect(response.status).toBe(200);
		const page = await response.text();
		expect(page).toContain('<html lang="en">');
		expect(page).toContain('<meta name="viewport" content="width=device-width, initial-scale=1"/>');
		expect(page).toContain("<h1>See your athenahealth record</h1>");
		expect(page).toMatch(/<main id="content">/);
		expect(page).toContain('<form method="get" action="/launch"');
		expect(page).not.toContain('name="practice"');
		expect(page).not.toMatch(/practice(?:'s)? (?:athenahealth )?ID/i);
		expect(page).toContain('<button type="submit">Connect with athenahealth</button>');
		expect(page).not.toContain("<script");
	});

	it("lets the connect form's redirect reach athena's authorize origin and nothing else", async () => {
		const response = await browserFetch(new CookieJar(), "/", html);
		expect(response.headers.get("Content-Security-Policy")).toContain("form-action 'self' http://localhost:3001;");
	});

	it("says a session ended when the browser's cookie names a session the server no longer has, and clears it", async () => {
		const jar = new CookieJar();
		jar.cookies.set(SESSION_COOKIE, randomToken());
		const response = await browserFetch(jar, "/", html);
		expect(response.status).toBe(200);
		expect(await response.text()).toContain("Your session has ended");
		expect(jar.cookies.has(SESSION_COOKIE)).toBe(false);
		expect(await (await browserFetch(jar, "/", html)).text()).not.toContain("Your session has ended");
	});
});

describe("security headers", () => {
	it("are on the home, record, revoked, denied and stylesheet responses", async () => {
		expectPageHeaders((await browserFetch(new CookieJar(), "/", html)).headers);

		const { jar } = await signIn();
		expectPageHeaders((await browserFetch(jar, "/record", html)).headers, "same-origin");
		await sandbox("revoke", { patient: PATIENTS.jane.id });
		const revoked = await browserFetch(jar, "/record", html);
		expect(await revoked.text()).toContain("Access was revoked");
		expectPageHeaders(revoked.headers, "same-origin");

		const denyJar = new CookieJar();
		const callback = await authorizeAtSandbox((await launch(denyJar)).toString(), PATIENTS.jane, "deny");
		const denied = await browserFetch(denyJar, `${callback.pathname}${callback.search}`, html);
		expectPageHeaders(denied.headers);

		const css = await browserFetch(new CookieJar(), "/assets/app.css");
		expect(css.headers.get("Content-Type")).toBe("text/css; charset=utf-8");
		expect(css.headers.get("X-Content-Type-Options")).toBe("nosniff");
	});
});

describe("outcome pages", () => {
	it("shows denial at consent as a choice the patient made, with a way to connect again", async () => {
		const jar = new CookieJar();
		const callback = await authorizeAtSandbox((await launch(jar)).toString(), PATIENTS.jane, "deny");
		const response = await browserFetch(jar, `${callback.pathname}${callback.search}`, html);
		const page = await response.text();
		expect(page).toContain("<h1>You did not share your record</h1>");
		expect(page).toContain("Nothing was shared");
		expect(page).toContain('<a class="button" href="/">Connect again</a>');
	});

	it("tells a visitor of a misconfigured worker to ask the operator, pointing at /health without any secret", async () => {
		const broken = { ...env, SESSION_ENCRYPTION_KEYS: "" } as Env;
		const ctx = createExecutionContext();
		const response = await app.fetch(new Request("http://localhost:3000/", html), broken, ctx);
		await waitOnExecutionContext(ctx);
		expect(response.status).toBe(503);
		expectPageHeaders(response.headers);
		const page = await response.text();
		expect(page).toContain("<h1>This service is not set up yet</h1>");
		expect(page).toContain('href="/health"');
		expect(page).not.toContain("SESSION_ENCRYPTION_KEYS");
		expect(page).not.toContain("PRIVATE KEY");
	});
});

describe("empty and unreadable sections", () => {
	const base = emptyRecord({
		patientId: "a-80000.E-1",
		name: "Ada <b>Example</b>",
		birthDate: undefined,
		practiceId: "80000",
	});

	it("say so instead of showing nothing", async () => {
		const page = String(await recordPage(base));
		for (const text of [
			"No active problems recorded.",
			"No current medications recorded.",
			"No allergies recorded.",
			"No immunizations recorded.",
			"No lab results recorded.",
			"No vital signs recorded.",
			"No visits recorded.",
			"No notes shared.",
			"No imaging or other reports recorded.",
			"date not recorded",
			"Practice 80000",
		]) {
			expect(page).toContain(text);
		}
	});

	it("explain a section athena would not provide while the rest of the page renders, escaping record text", async () => {
		const page = String(
			await recordPage({
				...base,
				immunizations: { ok: false, message: "Your practice does not share this part of the record." },
			}),
		);
		expect(page).toContain("Your practice does not share this part of the record. Try again later.");
		expect(page).toContain("No allergies recorded.");
		expect(page).toContain("Ada &lt;b&gt;Example&lt;/b&gt;");
		expect(page).not.toContain("<b>Example</b>");
	});

	it("say once how many notes are withheld, and put long lists behind 'Show all'", async () => {
		const note = (id: number, released: boolean) => ({
			id: `n${id}`,
			title: `Note ${id}`,
			date: "2025-01-01",
			released,
		});
		const one = String(await recordPage({ ...base, documents: { ...EMPTY_SECTION, items: [note(1, false)] } }));
		expect(one).toContain("No notes are released to the portal yet.");
		expect(one).toContain("1 note is not released to the portal by your practice.");
		const visits = Array.from({ length: 12 }, (_, i) => ({
			type: `Visit ${i}`,
			date: `2020-01-${String(i + 1).padStart(2, "0")}`,
			practitioner: undefined,
			diagnoses: [],
		}));
		const page = String(await recordPage({ ...base, encounters: { ...EMPTY_SECTION, items: visits } }));
		const shown = page.slice(page.indexOf('aria-labelledby="visits"'), page.indexOf("<details>"));
		expect(shown.match(/<li>/g)).toHaveLength(5);
		expect(page).toContain("<details><summary>Show all 12 visits</summary>");
	});

	it("leave a practice out when the server has none (a SMART server without athena's practices)", async () => {
		const page = String(await recordPage({ ...base, practiceId: undefined }));
		expect(page).not.toContain("<dt>Practice</dt>");
		expect(page).toContain("<dt>Patient ID</dt><dd>a-80000.E-1</dd>");
	});
});
