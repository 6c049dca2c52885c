import { mkdirSync, readFileSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { patientRecord } from "../../sandbox/src/data";
import { JAKE, LILY, type TestUser } from "../../sandbox/src/users";
import { launchChromium } from "./chromium";
import { type DevServers, sandboxControl, startDevServers, WORKER_ORIGIN } from "./support/dev-servers";
import { SecretWatch } from "./support/secret-watch";

// The record page in Debian's Chromium, for the sandbox's athena-shaped test
// patient (Jake Medlock: 43 conditions, 491 observations, 46 reports, 22
// notes, one of them hostile HTML), at desktop and phone width, with
// screenshots in test-results/record-page/.

const SCREENSHOTS = new URL("../../test-results/record-page/", import.meta.url).pathname;
const DESKTOP = { width: 1200, height: 900 };
const PHONE = { width: 390, height: 844 };
/** "About a screen": a section may run a little past the viewport's height, never much more. */
const SCREENFUL = 1.2;

let servers: DevServers | undefined;
let browser: Browser;
const contexts: BrowserContext[] = [];

async function newContext(viewport = DESKTOP): Promise<{ page: Page; watch: SecretWatch }> {
	const context = await browser.newContext({ baseURL: WORKER_ORIGIN, viewport });
	contexts.push(context);
	const watch = new SecretWatch(context);
	return { page: await context.newPage(), watch };
}

async function screenshot(page: Page, name: string): Promise<void> {
	await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

/** Home page → the sandbox's login, "Select a health record" and consent → the record page. */
async function connect(page: Page, user: TestUser): Promise<void> {
	await page.goto("/");
	await page.getByRole("button", { name: "Connect with athenahealth" }).click();
	await page.waitForURL("http://localhost:3001/oauth2/v1/authorize**");
	await page.fill("input[name=username]", user.username);
	await page.fill("input[name=password]", user.password);
	await page.getByRole("button", { name: "Sign in" }).click();
	await page.getByRole("heading", { name: "Select a health record" }).waitFor();
	await page.check(`input[name=record][value="${user.id}"]`);
	await page.getByRole("button", { name: "Continue" }).click();
	await page.getByRole("button", { name: "Allow" }).click();
	await page.waitForURL(`${WORKER_ORIGIN}/record`);
	await page.waitForLoadState("load");
}

/** Each section card's heading and rendered height, in CSS pixels. */
async function sectionHeights(page: Page): Promise<Array<{ title: string; height: number }>> {
	return page.locator("section.card").evaluateAll((cards) =>
		cards.map((card) => ({
			title: card.querySelector("h2")?.textContent ?? "",
			height: card.getBoundingClientRect().height,
		})),
	);
}

/** The sandbox's notes for the patient: the hostile HTML one, and one withheld from the portal. */
function sandboxNotes(patient: string): { hostile: string; withheld: string } {
	const notes = patientRecord(patient)?.byType.get("DocumentReference") ?? [];
	const attachment = (note: (typeof notes)[number]) =>
		(note.content as Array<{ attachment: { data?: string } }>)[0]?.attachment;
	const hostile = notes.find((n) => atob(attachment(n)?.data ?? "").includes("<script"));
	const withheld = notes.find((n) => attachment(n)?.data === undefined);
	if (!hostile || !withheld) throw new Error("the sandbox chart lacks a hostile or a withheld note");
	return { hostile: hostile.id, withheld: withheld.id };
}

beforeAll(async () => {
	mkdirSync(SCREENSHOTS, { recursive: true });
	browser = await launchChromium();
	servers = await startDevServers({ TOKEN_REQUESTS_PER_MINUTE: "100" });
}, 120_000);

afterAll(async () => {
	await browser?.close();
	await servers?.stop();
}, 30_000);

beforeEach(async () => {
	await sandboxControl("reset", {});
	await sandboxControl("config", { tokenRateLimit: 0 });
});

afterEach(async () => {
	for (const context of contexts.splice(0)) await context.close();
});

describe("the record page for athena's test patient", () => {
	it("reads well on a desktop: current name, one line per problem, one lab table, three vital charts, each section about a screen", async () => {
		const { page, watch } = await newContext();
		await connect(page, JAKE);
		expect(await page.locator("h1").textContent()).toBe("Jake Medlock");
		await screenshot(page, "01-record-desktop");

		const problems = await page.locator("#problems + ul.items > li").allTextContents();
		expect(problems).toHaveLength(6);
		expect(new Set(problems).size).toBe(problems.length);
		const labs = page.getByRole("table", { name: "Lab results, newest first" });
		expect(await labs.locator("tbody tr").count()).toBe(8);
		for (const chart of ["Blood pressure over time", "Weight over time", "Heart rate over time"]) {
			expect(await page.getByRole("img", { name: chart }).count()).toBe(1);
		}
		const weight = (await page.locator("#vitals ~ * tr", { hasText: "Weight" }).first().textContent()) ?? "";
		expect(weight).toMatch(/\d+(\.\d)? lb \(\d+(\.\d)? kg\)/);
		const notes = (await page.locator("section[aria-labelledby=notes]").textContent()) ?? "";
		expect(notes.match(/not released to the portal/g)).toHaveLength(1);

		for (const { title, height } of await sectionHeights(page)) {
			expect.soft(height, title).toBeLessThanOrEqual(DESKTOP.height * SCREENFUL);
		}
		// The rest of the labs open in place, without script.
		await page.locator("#labs ~ details > summary").click();
		const all = page.getByRole("table", { name: "Lab results, newest first" });
		expect(await all.nth(1).locator("tbody tr").count()).toBeGreaterThan(20);
		await screenshot(page, "02-record-labs-open");
		await watch.expectClean();
	});

	it("fits a phone: nothing wider than 390 px, each section about a screen", async () => {
		const { page, watch } = await newContext(PHONE);
		await connect(page, JAKE);
		expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(0);
		for (const { title, height } of await sectionHeights(page)) {
			expect.soft(height, title).toBeLessThanOrEqual(PHONE.height * SCREENFUL);
		}
		await screenshot(page, "03-record-phone");
		for (const id of ["problems", "labs", "vitals", "visits", "notes"]) {
			await page.locator(`section[aria-labelledby=${id}]`).screenshot({ path: `${SCREENSHOTS}03-phone-${id}.png` });
		}
		await watch.expectClean();
	});

	it("opens an HTML note sandboxed: its script, event handler and remote image never run or load", async () => {
		const { page, watch } = await newContext(PHONE);
		await connect(page, JAKE);
		const { hostile, withheld } = sandboxNotes(JAKE.id);
		const dialogs: string[] = [];
		const elsewhere: string[] = [];
		const blocked: string[] = [];
		page.on("dialog", (dialog) => {
			dialogs.push(dialog.message());
			void dialog.dismiss();
		});
		// Playwright reports a load the CSP refused as a request that failed with "csp": never sent.
		page.on("request", (request) => {
			if (!request.url().startsWith("http://localhost:")) elsewhere.push(request.url());
		});
		page.on("requestfailed", (request) => {
			if (request.failure()?.errorText === "csp") blocked.push(request.url());
		});

		const opened = page.waitForResponse(`${WORKER_ORIGIN}/record/documents/${hostile}`);
		await page.locator(`a[href="/record/documents/${hostile}"]`).click();
		const response = await opened;
		await page.waitForLoadState("load");
		expect(response.headers()["content-security-policy"]).toMatch(/^default-src 'none';.*; sandbox$/);
		expect(response.headers()["x-content-type-options"]).toBe("nosniff");
		expect(await page.getByText("Hover text from the note template.").isVisible()).toBe(true);
		await page.getByText("Hover text from the note template.").hover();
		await screenshot(page, "04-note-hostile");
		// The script would have navigated to collector.example with the cookie; it stayed put.
		expect(page.url()).toBe(`${WORKER_ORIGIN}/record/documents/${hostile}`);
		expect(dialogs).toEqual([]);
		// Anything the note tried to load elsewhere was refused by the CSP, never sent.
		await page.waitForLoadState("networkidle");
		expect(blocked.filter((url) => !elsewhere.includes(url))).toEqual([]);
		expect(elsewhere.filter((url) => !blocked.includes(url))).toEqual([]);

		// The note's way back (put before athena's HTML, inside the same sandbox) is a plain link.
		await page.getByRole("link", { name: "Back to your record" }).click();
		await page.waitForURL(`${WORKER_ORIGIN}/record#notes`);

		await page.goto(`/record/documents/${withheld}`);
		expect(await page.locator("h1").textContent()).toBe("This note is not available");
		await screenshot(page, "05-note-withheld");
		await page.getByRole("link", { name: "Back to your record" }).click();
		await page.waitForURL(`${WORKER_ORIGIN}/record#notes`);
		await watch.expectClean();
	});

	it("downloads the whole record from the Download my record button, as a FHIR Bundle that opens", async () => {
		const { page, watch } = await newContext();
		await connect(page, JAKE);
		const [download] = await Promise.all([
			page.waitForEvent("download"),
			page.getByRole("link", { name: "Download my record" }).click(),
		]);
		expect(download.suggestedFilename()).toMatch(/^jake-medlock-\d{4}-\d{2}-\d{2}\.fhir\.json$/);
		const file = await download.path();
		const bundle = JSON.parse(readFileSync(file, "utf8")) as {
			resourceType: string;
			type: string;
			entry: Array<{
				fullUrl: string;
				resource: { resourceType: string; id?: string; issue?: Array<{ severity: string; details: { text: string } }> };
			}>;
		};
		expect(bundle).toMatchObject({ resourceType: "Bundle", type: "collection" });
		const resources = bundle.entry.map((e) => e.resource);
		expect(resources[0]).toMatchObject({ resourceType: "Patient", id: JAKE.id });
		const last = resources.at(-1)?.issue?.[0];
		expect(last?.severity).toBe("information");
		expect(last?.details.text).toMatch(/^Export complete: /);
		// Every listed resource the sandbox holds for Jake, of each type the local scopes grant.
		const record = patientRecord(JAKE.id);
		for (const type of ["Condition", "Observation", "DiagnosticReport", "DocumentReference", "MedicationRequest"]) {
			const held = (record?.byType.get(type) ?? []).filter((r) => !record?.unlisted.has(r.id)).length;
			expect(resources.filter((r) => r.resourceType === type).length, type).toBe(held);
		}
		// Still on the record page: a download does not navigate away.
		expect(page.url()).toBe(`${WORKER_ORIGIN}/record`);
		await watch.expectClean();
	});

	it("connects a dependent's record from the record page without a second login, shows one section per person, and downloads both", async () => {
		const { page, watch } = await newContext();
		await connect(page, JAKE);
		await page.getByRole("button", { name: "Connect another record" }).click();
		// athena remembers the browser: straight to its record picker, no password asked.
		await page.getByRole("heading", { name: "Select a health record" }).waitFor();
		expect(await page.locator("input[name=password]").count()).toBe(0);
		await page.check(`input[name=record][value="${LILY.id}"]`);
		await page.getByRole("button", { name: "Continue" }).click();
		await page.getByRole("button", { name: "Allow" }).click();
		await page.waitForURL(`${WORKER_ORIGIN}/record`);
		expect(await page.locator("section.person > h2").allTextContents()).toEqual(["Jake Medlock", "Lily Medlock"]);
		await screenshot(page, "09-two-people-desktop");

		const [download] = await Promise.all([
			page.waitForEvent("download"),
			page.getByRole("link", { name: "Download my record" }).click(),
		]);
		const bundle = JSON.parse(readFileSync(await download.path(), "utf8")) as {
			entry: Array<{ fullUrl: string; resource: { resourceType: string; id?: string } }>;
		};
		const patients = bundle.entry.filter((e) => e.resource.resourceType === "Patient");
		expect(patients.map((e) => e.resource.id)).toEqual([JAKE.id, LILY.id]);
		expect(patients[0]?.fullUrl).toBe(`${WORKER_ORIGIN}/fhir/r4/Patient/${JAKE.id}`);
		expect(patients[1]?.fullUrl).toMatch(new RegExp(`^${WORKER_ORIGIN}/fhir/[^/]+/r4/Patient/${LILY.id}$`));
		await watch.expectClean();
	});

	it("keeps the session's state pages at phone width: busy, down, revoked", async () => {
		const { page, watch } = await newContext(PHONE);
		await connect(page, JAKE);
		const states = [
			{ fault: { target: "fhir", status: 429 }, heading: "athenahealth is busy", name: "06-busy-phone" },
			{ fault: { target: "fhir", status: 500 }, heading: "athenahealth is not answering", name: "07-down-phone" },
		];
		for (const state of states) {
			await sandboxControl("faults", state.fault);
			await page.reload();
			expect(await page.locator("h1").textContent()).toBe(state.heading);
			expect(await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth)).toBeLessThanOrEqual(
				0,
			);
			await screenshot(page, state.name);
			await sandboxControl("faults", undefined, "DELETE");
		}
		await sandboxControl("revoke", { patient: JAKE.id });
		await page.reload();
		expect(await page.locator("h1").textContent()).toBe("Access was revoked");
		await screenshot(page, "08-revoked-phone");
		await watch.expectClean();
	});
});
