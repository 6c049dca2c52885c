import { mkdirSync } from "node:fs";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { patientRecord } from "../../sandbox/src/data";
import type { TestUser } from "../../sandbox/src/users";
import * as USERS from "../../sandbox/src/users";
import { launchChromium } from "./chromium";
import { type DevServers, sandboxControl, startDevServers, WORKER_ORIGIN } from "./support/dev-servers";
import { SecretWatch } from "./support/secret-watch";

// The patient's whole journey in Debian's Chromium against `npm run dev`: the
// worker on :3000 and the local athena sandbox on :3001, started here.

const SCREENSHOTS = new URL("../../test-results/e2e/", import.meta.url).pathname;

interface TestPatient {
	username: string;
	password: string;
	practice: string;
	id: string;
	/** As the record page's heading shows it. */
	name: string;
}

const testPatient = (user: TestUser): TestPatient => ({
	username: user.username,
	password: user.password,
	practice: user.practiceId,
	id: user.id,
	name: `${user.given} ${user.family}`,
});
/** The preview login, picking its own record ("Jake Medlock (you)" at 80000). */
const JANE = testPatient(USERS.JAKE);
const ROWAN = testPatient(USERS.ROWAN);

/** A phone's viewport: the pages must work at this width without sideways scrolling. */
const PHONE = { width: 390, height: 844 };

/** The newest value of a LOINC-coded Observation in the sandbox's data, rounded as the page shows it. */
function latestValue(patient: string, loinc: string): string {
	const observations = patientRecord(patient)?.byType.get("Observation") ?? [];
	// athena's data has text-only codes and results still pending (no value): only measured values count.
	const newest = observations
		.filter((o) => (o.code as { coding?: Array<{ code: string }> }).coding?.some((c) => c.code === loinc))
		.filter((o) => o.valueQuantity !== undefined && o.status !== "entered-in-error")
		.sort((a, b) => String(b.effectiveDateTime).localeCompare(String(a.effectiveDateTime)))[0];
	const value = (newest?.valueQuantity as { value: number } | undefined)?.value;
	if (value === undefined) throw new Error(`no ${loinc} for ${patient} in the sandbox data`);
	return String(Math.round(value * 10) / 10);
}

let servers: DevServers | undefined;
let browser: Browser;
const contexts: BrowserContext[] = [];

async function newContext(viewport = { width: 1200, height: 900 }): Promise<{ page: Page; watch: SecretWatch }> {
	const context = await browser.newContext({ baseURL: WORKER_ORIGIN, viewport });
	contexts.push(context);
	const watch = new SecretWatch(context);
	return { page: await context.newPage(), watch };
}

async function screenshot(page: Page, name: string): Promise<void> {
	await page.screenshot({ path: `${SCREENSHOTS}${name}.png`, fullPage: true });
}

async function heading(page: Page): Promise<string> {
	return (await page.locator("h1").textContent())?.trim() ?? "";
}

/** The practice field, while the home page still asks for one (the record picker makes it redundant). */
async function fillPracticeIfAsked(page: Page, patient: TestPatient): Promise<void> {
	const practice = page.getByLabel("Your practice's athenahealth ID");
	if ((await practice.count()) > 0) await practice.fill(patient.practice);
}

/** From the home page's form through the sandbox's real login, record picker and consent pages, to the decision. */
async function connect(page: Page, patient: TestPatient, decision: "Allow" | "Deny" = "Allow"): Promise<void> {
	await page.goto("/");
	await fillPracticeIfAsked(page, patient);
	await page.getByRole("button", { name: "Connect with athenahealth" }).click();
	await signInAtSandbox(page, patient, decision);
}

/**
 * athena's side of a sign-in: the login page (unless this browser still has
 * an athena session: `athenaSession`), "Select a health record", where the
 * patient's record is picked by its id, and consent.
 */
async function signInAtSandbox(
	page: Page,
	patient: TestPatient,
	decision: "Allow" | "Deny",
	{ athenaSession = false } = {},
): Promise<void> {
	await page.waitForURL("http://localhost:3001/oauth2/v1/authorize**");
	if (!athenaSession) {
		await page.fill("input[name=username]", patient.username);
		await page.fill("input[name=password]", patient.password);
		await page.getByRole("button", { name: "Sign in" }).click();
	}
	await page.getByRole("heading", { name: "Select a health record" }).waitFor();
	await page.check(`input[name=record][value="${patient.id}"]`);
	await page.getByRole("button", { name: "Continue" }).click();
	await page.getByRole("button", { name: decision }).click();
	await page.waitForURL(`${WORKER_ORIGIN}/**`);
	await page.waitForLoadState("load");
}

beforeAll(async () => {
	mkdirSync(SCREENSHOTS, { recursive: true });
	// The browser first: without one, the suite stops at once with how to install it, before any server starts.
	browser = await launchChromium();
	// A run signs in six times within a minute; athena's preview budget of 5 is exercised by the worker suite.
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

describe("a patient in the browser", () => {
	it("signs in through athena's sign-in and consent pages and sees their own record", async () => {
		const { page, watch } = await newContext();
		await page.goto("/");
		expect(await heading(page)).toBe("See your athenahealth record");
		await screenshot(page, "01-home");

		await connect(page, JANE);
		expect(page.url()).toBe(`${WORKER_ORIGIN}/record`);
		expect(await heading(page)).toBe(JANE.name);
		const main = page.locator("main");
		const text = (await main.textContent()) ?? "";
		for (const entry of [
			"Jan 28, 1952",
			"Sandbox Practice 80000",
			"Penicillin G",
			"Essential (primary) hypertension",
			"metformin hydrochloride 500 MG Extended Release Oral Tablet",
			"Progress note",
		]) {
			expect(text).toContain(entry);
		}
		// athena sends body weight in grams; a patient reads pounds and kilograms.
		const weight =
			(await page
				.getByRole("table", { name: "Latest vital signs" })
				.locator("tr", { hasText: "Weight" })
				.textContent()) ?? "";
		expect(weight).toContain(`${(Number(latestValue(JANE.id, "29463-7")) / 1000).toFixed(1)} kg`);
		expect(weight).toMatch(/\d lb/);
		expect(weight).not.toMatch(/\d g\b/);
		// One lab table: HbA1c once, with its newest value (past the first rows, behind "Show all").
		await page.locator("summary", { hasText: /^Show all \d+ tests$/ }).click();
		const a1c = page.getByRole("table", { name: "Lab results, newest first" }).locator("tr", { hasText: /A1c/ });
		expect(await a1c.count()).toBe(1);
		expect(await a1c.textContent()).toContain(latestValue(JANE.id, "4548-4"));
		expect(await page.getByRole("img", { name: /Blood pressure over time/ }).count()).toBe(1);
		await screenshot(page, "02-record");

		// Usable on a phone: one column, nothing wider than the screen.
		await page.setViewportSize(PHONE);
		const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
		expect(overflow).toBeLessThanOrEqual(0);
		await screenshot(page, "03-record-phone");

		await page.getByRole("button", { name: "Sign out" }).click();
		await page.waitForURL(`${WORKER_ORIGIN}/`);
		expect(await heading(page)).toBe("See your athenahealth record");
		expect(await page.locator("main").textContent()).not.toContain("Your session has ended");
		expect((await page.context().cookies(WORKER_ORIGIN)).map((c) => c.name)).not.toContain("__Host-athena_session");
		await screenshot(page, "04-signed-out");
		await watch.expectClean();
	});

	it("sees a plain explanation and a way back after denying access at consent", async () => {
		const { page, watch } = await newContext(PHONE);
		await connect(page, JANE, "Deny");
		expect(page.url()).toMatch(/^http:\/\/localhost:3000\/callback\?/);
		expect(await heading(page)).toBe("You did not share your record");
		expect(await page.locator("main").textContent()).toContain("Nothing was shared");
		await screenshot(page, "05-denied");
		await page.getByRole("link", { name: "Connect again" }).click();
		await page.waitForURL(`${WORKER_ORIGIN}/`);
		expect(await heading(page)).toBe("See your athenahealth record");
		await watch.expectClean();
	});

	it("sees revocation at athena on the next page load, and reconnects with one button", async () => {
		const { page, watch } = await newContext();
		await connect(page, JANE);
		expect(await heading(page)).toBe(JANE.name);

		await sandboxControl("revoke", { patient: JANE.id });
		await page.reload();
		expect(await heading(page)).toBe("Access was revoked");
		expect(await page.locator("main").textContent()).toContain("revoked by you or your practice");
		expect(await page.locator("main").textContent()).not.toContain("Allergy to penicillin");
		await screenshot(page, "06-revoked");

		await page.getByRole("button", { name: "Reconnect with athenahealth" }).click();
		// The athena session from the first sign-in is still open in this browser: no password again.
		await signInAtSandbox(page, JANE, "Allow", { athenaSession: true });
		expect(page.url()).toBe(`${WORKER_ORIGIN}/record`);
		expect(await heading(page)).toBe(JANE.name);
		expect(await sandboxControl("received")).toMatchObject({ counts: { passwordSignIn: 1, sessionReused: 1 } });
		await watch.expectClean();
	});

	it("keeps two patients in two browsers apart", async () => {
		const jane = await newContext();
		const rowan = await newContext();
		await connect(jane.page, JANE);
		await connect(rowan.page, ROWAN);
		// Both sessions live at once; each reload reads that browser's own record.
		await jane.page.reload();
		await rowan.page.reload();
		expect(await heading(jane.page)).toBe(JANE.name);
		expect(await heading(rowan.page)).toBe(ROWAN.name);
		const janeText = (await jane.page.locator("body").textContent()) ?? "";
		const rowanText = (await rowan.page.locator("body").textContent()) ?? "";
		expect(rowanText).toContain("Sandbox Practice 195900");
		expect(janeText).not.toContain("Rowan");
		expect(janeText).not.toContain("195900");
		expect(rowanText).not.toContain("Medlock");
		expect(rowanText).not.toContain("Sandbox Practice 80000");
		// The FHIR proxy answers each browser with its own patient only.
		const asked = await rowan.page.request.get(`/fhir/r4/Patient/${JANE.id}`);
		expect(asked.status()).toBe(403);
		await screenshot(rowan.page, "07-second-patient");
		await jane.watch.expectClean();
		await rowan.watch.expectClean();
	});

	it("is told when athena is busy and when to retry, and the retry works once athena answers", async () => {
		const { page, watch } = await newContext();
		await connect(page, JANE);
		await sandboxControl("faults", { target: "fhir", status: 429 });
		await page.reload();
		expect(await heading(page)).toBe("athenahealth is busy");
		expect(await page.locator("main").textContent()).toContain("Try again in about 60 seconds");
		await screenshot(page, "08-busy");
		await sandboxControl("faults", undefined, "DELETE");
		await page.getByRole("link", { name: "Try again" }).click();
		await page.waitForURL(`${WORKER_ORIGIN}/record`);
		expect(await heading(page)).toBe(JANE.name);
		await watch.expectClean();
	});

	it("is told their session ended and can connect again", async () => {
		const { page, watch } = await newContext();
		await connect(page, JANE);
		// The session ends on the server while the browser still holds its cookie, as after idle expiry:
		// the harness (not page script, which cannot read the HttpOnly cookie) signs it out directly.
		const session = (await page.context().cookies(WORKER_ORIGIN)).find((c) => c.name === "__Host-athena_session");
		if (!session) throw new Error("no session cookie after sign-in");
		const ended = await fetch(`${WORKER_ORIGIN}/logout`, {
			method: "POST",
			headers: { Origin: WORKER_ORIGIN, Cookie: `${session.name}=${session.value}` },
		});
		expect(ended.status).toBe(200);

		await page.reload();
		expect(page.url()).toBe(`${WORKER_ORIGIN}/`);
		expect(await page.locator("main").textContent()).toContain("Your session has ended");
		await screenshot(page, "09-session-ended");
		await page.getByRole("button", { name: "Connect with athenahealth" }).click();
		await signInAtSandbox(page, JANE, "Allow", { athenaSession: true });
		expect(await heading(page)).toBe(JANE.name);
		await watch.expectClean();
	});

	it("chooses whose record to share on athena's record picker, not on the app's page", async () => {
		const { page, watch } = await newContext();
		await page.goto("/");
		await fillPracticeIfAsked(page, JANE);
		await page.getByRole("button", { name: "Connect with athenahealth" }).click();
		await page.waitForURL("http://localhost:3001/oauth2/v1/authorize**");
		await page.fill("input[name=username]", JANE.username);
		await page.fill("input[name=password]", JANE.password);
		await page.getByRole("button", { name: "Sign in" }).click();
		await page.getByRole("heading", { name: "Select a health record" }).waitFor();
		const labels = (await page.locator("form label").allTextContents()).map((l) => l.replace(/\s+/g, " ").trim());
		expect(labels).toEqual(
			USERS.recordsFor(JANE.username).map(
				(r) => `${r.display}${r.relationship === "self" ? " (you)" : ""} at practice ${r.practice}`,
			),
		);
		await screenshot(page, "10-record-picker");
		await page.check(`input[name=record][value="${JANE.id}"]`);
		await page.getByRole("button", { name: "Continue" }).click();
		await page.getByRole("heading", { name: "Allow access to your health record?" }).waitFor();
		expect(await page.locator("body").textContent()).toContain("Jake Medlock (you) at practice 80000");
		await page.getByRole("button", { name: "Allow" }).click();
		await page.waitForURL(`${WORKER_ORIGIN}/record`);
		expect(await heading(page)).toBe(JANE.name);
		await watch.expectClean();
	});
});
