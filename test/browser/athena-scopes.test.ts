import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { launchChromium } from "./chromium";

// The helper is loaded the way a user pastes it: the file's text, as is,
// evaluated in the page.
const HELPER = new URL("../../tools/athena-scopes/add-athena-scopes.js", import.meta.url).pathname;
const PORTAL = new URL("./fixtures/athena-scopes-portal.html", import.meta.url);
const ARTIFACTS = new URL("../../test-results/browser/", import.meta.url).pathname;

// Shorter pauses than the defaults keep the suite quick; the helper's own
// waits on frames and conditions are what make it reliable.
const FAST = {
	perClickDelay: 10,
	perProductDelay: 50,
	postScrollDelay: 30,
	activationTimeout: 3000,
};

const SLOW_PRODUCT = "FHIR DSTU2";
/**
 * How long the slow product takes to activate: well inside FAST's
 * activationTimeout (3000 ms), so a loaded machine that stalls the page for a
 * second or two still sees it activate, while the helper must still wait.
 */
const SLOW_ACTIVATION_MS = 250;
const BROKEN_PRODUCT = "Bulk FHIR";
const EMPTY_PRODUCT = "Event Notifications";
const VIRTUALIZED_PRODUCT = "FHIR R4 SMART V1";

interface PortalProduct {
	name: string;
	status: string;
	activation: "instant" | "slow" | "never";
	scopes: string[];
	checked: string[];
}

interface PortalSnapshot {
	active: string;
	saveClicks: number;
	submits: number;
	checkboxClicks: number;
	clicksByScope: Record<string, number>;
	headerClicks: Record<string, number>;
	products: PortalProduct[];
}

interface ProductRow {
	product: string;
	status: string;
	total: number;
	added: number;
	already: number;
	missed: number;
	toTick: number;
	missedValues: string[];
	checkedValues: string[];
}

interface ScopeResults {
	dryRun: boolean;
	products: ProductRow[];
	skipped: { product: string; status: string; reason: string }[];
	missed: { product: string; value: string }[];
	totals: Record<"products" | "total" | "added" | "already" | "missed" | "skipped", number>;
	checkedScopes: string[];
}

interface Portal {
	page: Page;
	console: string[];
	snapshot(): Promise<PortalSnapshot>;
	run(options?: Record<string, unknown>): Promise<ScopeResults>;
	storedResults(): Promise<ScopeResults>;
}

let browser: Browser;

beforeAll(async () => {
	browser = await launchChromium();
});

// Closing the browser closes every page the suites opened.
afterAll(async () => {
	await browser?.close();
});

async function openPortal(settings: Record<string, string> = {}): Promise<Portal> {
	const context = await browser.newContext({
		viewport: { width: 1000, height: 700 },
	});
	const page = await context.newPage();
	const messages: string[] = [];
	page.on("console", (message) => messages.push(message.text()));
	const query = new URLSearchParams({ slowMs: String(SLOW_ACTIVATION_MS), ...settings });
	await page.goto(`${PORTAL.href}?${query}`);
	await page.waitForFunction(() => "__portal" in globalThis);
	await page.addScriptTag({ path: HELPER });
	return {
		page,
		console: messages,
		snapshot: () =>
			page.evaluate(() => (globalThis as unknown as { __portal: { snapshot(): PortalSnapshot } }).__portal.snapshot()),
		run: (options = {}) =>
			page.evaluate(
				(opts) =>
					(
						globalThis as unknown as {
							addAthenaScopes(o: unknown): Promise<ScopeResults>;
						}
					).addAthenaScopes(opts),
				{ ...FAST, ...options },
			),
		storedResults: () =>
			page.evaluate(() => (globalThis as unknown as { __athenaScopeResults: ScopeResults }).__athenaScopeResults),
	};
}

const rowFor = (results: ScopeResults, product: string) => results.products.find((row) => row.product === product);

describe("the fixture portal", () => {
	it("mounts only the scope rows in view, like the portal's virtualized table", async () => {
		const portal = await openPortal();
		const { page } = portal;
		await page.getByText(VIRTUALIZED_PRODUCT).click();
		await page.waitForFunction(
			(name) => (globalThis as unknown as { __portal: { activeProduct(): string } }).__portal.activeProduct() === name,
			VIRTUALIZED_PRODUCT,
		);
		const total = (await portal.snapshot()).products.find((p) => p.name === VIRTUALIZED_PRODUCT)?.scopes.length;
		const mounted = await page.locator('input[name="scopes_checkbox_group"]').count();
		expect(total).toBe(40);
		expect(mounted).toBeGreaterThan(0);
		expect(mounted).toBeLessThanOrEqual(9);
	});
});

describe("addAthenaScopes({ dryRun: true })", () => {
	let portal: Portal;
	let before: PortalSnapshot;
	let results: ScopeResults;

	beforeAll(async () => {
		portal = await openPortal();
		before = await portal.snapshot();
		results = await portal.run({ dryRun: true });
	});

	it("ticks nothing and clicks no checkbox", async () => {
		const after = await portal.snapshot();
		expect(after.checkboxClicks).toBe(0);
		expect(after.products.map((p) => p.checked)).toEqual(before.products.map((p) => p.checked));
	});

	it("counts every product's scopes and how many are already ticked", () => {
		for (const product of before.products) {
			if (product.activation === "never") continue;
			expect(rowFor(results, product.name)).toMatchObject({
				total: product.scopes.length,
				already: product.checked.length,
				toTick: product.scopes.length - product.checked.length,
				added: 0,
				missed: 0,
			});
		}
		expect(results.dryRun).toBe(true);
		expect(results.totals.added).toBe(0);
	});

	it("says nothing was ticked", () => {
		expect(portal.console).toContain("[athena-scopes] Dry run: nothing was ticked.");
	});
});

describe("addAthenaScopes()", () => {
	let portal: Portal;
	let before: PortalSnapshot;
	let after: PortalSnapshot;
	let results: ScopeResults;

	beforeAll(async () => {
		portal = await openPortal();
		before = await portal.snapshot();
		results = await portal.run();
		after = await portal.snapshot();
		await portal.page.screenshot({
			path: `${ARTIFACTS}athena-scopes-after-run.png`,
			fullPage: true,
		});
	});

	it("ticks every scope of every product that activates", () => {
		const reachable = after.products.filter((p) => p.activation !== "never");
		expect(reachable.length).toBeGreaterThanOrEqual(5);
		for (const product of reachable) {
			expect(product.checked, product.name).toEqual(product.scopes);
		}
		expect(results.totals.missed).toBe(0);
	});

	it("counts added and already-ticked scopes per product", () => {
		for (const product of before.products) {
			if (product.activation === "never") continue;
			expect(rowFor(results, product.name)).toMatchObject({
				total: product.scopes.length,
				already: product.checked.length,
				added: product.scopes.length - product.checked.length,
				missed: 0,
				missedValues: [],
			});
		}
	});

	it("waits for the product that is slow to activate", () => {
		const slow = after.products.find((p) => p.name === SLOW_PRODUCT);
		expect(slow?.activation).toBe("slow");
		expect(slow?.checked).toHaveLength(10);
		expect(rowFor(results, SLOW_PRODUCT)?.added).toBe(10);
		expect(after.headerClicks[SLOW_PRODUCT]).toBe(1);
	});

	it("reports the product that never activates as skipped and leaves it alone", () => {
		expect(results.skipped).toEqual([
			{
				product: BROKEN_PRODUCT,
				status: "Pending",
				reason: "did not become active within 3000 ms",
			},
		]);
		expect(rowFor(results, BROKEN_PRODUCT)).toBeUndefined();
		expect(after.products.find((p) => p.name === BROKEN_PRODUCT)?.checked).toEqual([]);
	});

	it("handles the product with no scopes", () => {
		expect(rowFor(results, EMPTY_PRODUCT)).toMatchObject({
			total: 0,
			added: 0,
			already: 0,
			missed: 0,
		});
	});

	it("clicks a checkbox again when its first click is ignored", () => {
		// Both stubborn rows start unticked and need exactly two clicks.
		expect(after.clicksByScope["patient/Procedure.read"]).toBe(2);
		expect(after.clicksByScope["patient/Encounter.rs"]).toBe(2);
		expect(after.products.flatMap((p) => p.checked)).toEqual(
			expect.arrayContaining(["patient/Procedure.read", "patient/Encounter.rs"]),
		);
	});

	it("stores results on window.__athenaScopeResults that match the page", async () => {
		const stored = await portal.storedResults();
		expect(stored).toEqual(results);
		for (const product of after.products) {
			const row = rowFor(stored, product.name);
			if (product.activation === "never") continue;
			expect(row?.checkedValues).toEqual(product.checked);
			expect(row?.total).toBe(product.scopes.length);
		}
		const checkedOnPage = after.products.filter((p) => p.activation !== "never").flatMap((p) => p.checked);
		expect([...stored.checkedScopes].sort()).toEqual([...checkedOnPage].sort());
		expect(stored.totals).toEqual({
			products: after.products.length,
			total: checkedOnPage.length,
			added: checkedOnPage.length - 3,
			already: 3,
			missed: 0,
			skipped: 1,
		});
	});

	it("never clicks Save or submits the form, and says Save is up to the user", () => {
		expect(after.saveClicks).toBe(0);
		expect(after.submits).toBe(0);
		expect(portal.console).toContain("[athena-scopes] Nothing is saved yet: click the portal's Save button yourself.");
	});

	it("finds nothing left to tick when run again", async () => {
		const again = await portal.run();
		expect(again.totals.added).toBe(0);
		expect(again.totals.already).toBe(results.totals.total);
		expect((await portal.snapshot()).saveClicks).toBe(0);
	});
});

describe("addAthenaScopes() on a virtual list that hides its native scrollbar", () => {
	it("still scrolls it and finds every scope", async () => {
		const portal = await openPortal({ hiddenScrollbar: "1" });
		const results = await portal.run();
		const v1 = (await portal.snapshot()).products.find((p) => p.name === VIRTUALIZED_PRODUCT);
		expect(rowFor(results, VIRTUALIZED_PRODUCT)).toMatchObject({ total: 40, missed: 0 });
		expect(v1?.checked).toEqual(v1?.scopes);
	});
});

describe("addAthenaScopes() with a checkbox that never ticks", () => {
	const JAMMED = "patient/Binary.read";
	let portal: Portal;
	let results: ScopeResults;

	beforeAll(async () => {
		portal = await openPortal({ jammed: JAMMED });
		results = await portal.run({ verifyRetries: 2 });
	});

	it("retries it verifyRetries times, then once more at the end", async () => {
		const { clicksByScope } = await portal.snapshot();
		expect(clicksByScope[JAMMED]).toBe(1 + 2 + 1);
	});

	it("reports it as missed, by product and value, and ticks the rest", async () => {
		expect(results.missed).toEqual([{ product: VIRTUALIZED_PRODUCT, value: JAMMED }]);
		expect(rowFor(results, VIRTUALIZED_PRODUCT)).toMatchObject({
			total: 40,
			missed: 1,
			missedValues: [JAMMED],
			added: 40 - 3 - 1,
		});
		const v1 = (await portal.snapshot()).products.find((p) => p.name === VIRTUALIZED_PRODUCT);
		expect(v1?.checked).toEqual(v1?.scopes.filter((s) => s !== JAMMED));
		expect((await portal.storedResults()).missed).toEqual(results.missed);
	});
});
