import { beforeEach, describe, expect, it } from "vitest";
import type { SessionView } from "../../src/session/contract";
import {
	browserFetch,
	type CookieJar,
	connectRecord,
	PATIENTS,
	type PatientBrowser,
	sandbox,
	signIn,
	signInKeepingAthena,
} from "./support/sign-in";

const html = { headers: { Accept: "text/html" } };

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

async function connectionIds(jar: CookieJar): Promise<string[]> {
	const view = (await (await browserFetch(jar, "/session")).json()) as SessionView;
	return view.connections?.map((c) => c.id) ?? [];
}

/** Jake at 80000, then Lily and Jake at 195900 connected to the same session. */
async function family(): Promise<{ browser: PatientBrowser; ids: string[] }> {
	const browser = await signInKeepingAthena();
	for (const record of [PATIENTS.dependent, PATIENTS.janeElsewhere]) {
		const added = await connectRecord(browser, record);
		if (added.status !== 302) throw new Error(`connect: ${added.status}`);
	}
	return { browser, ids: await connectionIds(browser.jar) };
}

/** The HTML of the element whose opening tag carries `aria-labelledby="{id}"`, up to the next one of `tag`. */
function sectionOf(page: string, id: string, until: string): string {
	const start = page.indexOf(`aria-labelledby="${id}"`);
	if (start < 0) throw new Error(`no section ${id}`);
	const end = page.indexOf(until, start + 1);
	return page.slice(start, end < 0 ? undefined : end);
}

describe("the record page of a session with several records", () => {
	it("shows one section per person, each record labelled by its practice, and only that record's data in it", async () => {
		const { browser, ids } = await family();
		const [jake, lily, jakeElsewhere] = ids;
		const response = await browserFetch(browser.jar, "/record", html);
		expect(response.status).toBe(200);
		const page = await response.text();
		expect(page).toContain("<h1>Your records</h1>");
		const people = [...page.matchAll(/<section class="person" aria-labelledby="[^"]+"><h2 id="[^"]+">([^<]+)<\/h2>/g)];
		expect(people.map((m) => m[1])).toEqual(["Jake Medlock", "Lily Medlock"]);

		const jakeSection = sectionOf(page, "person-1", 'class="person"');
		const labels = [...jakeSection.matchAll(/<h3 id="connection-([^"]+)">([^<]+)<\/h3>/g)].map((m) => [m[1], m[2]]);
		expect(labels.map(([id]) => id)).toEqual([jake, jakeElsewhere]);
		expect(labels[0]?.[1]).toMatch(/\(80000\)$/);
		expect(labels[1]?.[1]).toMatch(/\(195900\)$/);

		const lilySection = sectionOf(page, "person-2", "connect-another");
		expect(lilySection).toContain(PATIENTS.dependent.id);
		expect(lilySection).not.toContain(PATIENTS.jane.id);
		expect(lilySection).toContain(`id="connection-${lily}-problems"`);
		// Every id on the page once: the sections of each record are told apart.
		const idsOnPage = [...page.matchAll(/ id="([^"]+)"/g)].map((m) => m[1]);
		expect(idsOnPage.filter((id, i) => idsOnPage.indexOf(id) !== i)).toEqual([]);
		// Notes of records other than the first are read through their own connection.
		for (const link of lilySection.matchAll(/href="\/record\/documents\/[^"?]+(\?[^"]*)?"/g)) {
			expect(link[1]).toBe(`?connection=${lily}`);
		}
		expect(page).toContain('href="/export"');
	});

	it("opens a note of the second record through its connection, and no other session's", async () => {
		const { browser, ids } = await family();
		const lily = ids[1] ?? "";
		const page = await (await browserFetch(browser.jar, "/record", html)).text();
		const link = new RegExp(`href="(/record/documents/[^"?]+\\?connection=${lily})"`).exec(page)?.[1];
		expect(link).toBeDefined();
		const note = await browserFetch(browser.jar, link ?? "", html);
		expect(note.status).toBe(200);
		const other = await signIn(PATIENTS.second);
		const refused = await browserFetch(other.jar, link ?? "", html);
		expect(refused.status).toBe(302);
		expect(refused.headers.get("Location")).toBe("/record");
	});

	it("shows a record revoked at athena as revoked in its own section; the others stay readable", async () => {
		const { browser, ids } = await family();
		await sandbox("revoke", { patient: PATIENTS.dependent.id });
		await sandbox("expire-access-tokens", {});
		const response = await browserFetch(browser.jar, "/record", html);
		expect(response.status).toBe(200);
		const page = await response.text();
		const lily = sectionOf(page, `connection-${ids[1]}`, "</section></section>");
		expect(lily).toContain("Access to this record was revoked");
		expect(lily).toMatch(/name="connect" value="1".*Connect this record again/);
		const jake = sectionOf(page, `connection-${ids[0]}`, 'class="connection"');
		expect(jake).toContain(`id="connection-${ids[0]}-problems"`);
	});

	it("shows the revoked page when every record of the session is revoked", async () => {
		const { browser } = await family();
		for (const patient of [PATIENTS.jane, PATIENTS.dependent, PATIENTS.janeElsewhere]) {
			await sandbox("revoke", { patient: patient.id });
		}
		await sandbox("expire-access-tokens", {});
		// The first visit finds out record by record; a later one knows from the session alone.
		for (let visit = 0; visit < 2; visit++) {
			const page = await (await browserFetch(browser.jar, "/record", html)).text();
			expect(page).toContain("<h1>Access was revoked</h1>");
		}
		expect((await (await browserFetch(browser.jar, "/session")).json()) as SessionView).toMatchObject({
			status: "revoked",
			connections: [{ status: "revoked" }, { status: "revoked" }, { status: "revoked" }],
		});
	});

	it("offers Connect another record: a GET to /launch with connect=1", async () => {
		const { jar } = await signIn();
		const page = await (await browserFetch(jar, "/record", html)).text();
		expect(page).toMatch(
			/<form method="get" action="\/launch" class="connect"><input type="hidden" name="connect" value="1"\/><input type="hidden" name="return_to" value="\/record"\/>.*Connect another record<\/button>/,
		);
		const launched = await browserFetch(jar, "/launch?connect=1&return_to=%2Frecord");
		expect(launched.status).toBe(302);
	});
});
