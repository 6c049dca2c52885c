import { beforeEach, describe, expect, it } from "vitest";
import { safeReturnTo } from "../../src/oauth/return-to";
import { authorizeAtSandbox, browserFetch, CookieJar, PATIENTS, sandbox, WORKER_ORIGIN } from "./support/sign-in";

/**
 * Paths that start with one slash but resolve to "//host": the URL parser
 * removes dot segments ("." , "..", "%2e" and "%2E" spellings), and a
 * resolved "//evil.example/x" sent as a Location is another host.
 */
const DOT_SEGMENT_ESCAPES = [
	"/.//evil.example/x",
	"/..//evil.example/x",
	"/%2e//evil.example/x",
	"/%2E//evil.example/x",
	"/%2e%2e//evil.example/x",
	"/.%2E//evil.example/x",
	"/a/..//evil.example/x",
	"/a/b/../..//evil.example/x",
	"/a/%2e%2e//evil.example/x",
	// An encoded "?" is a path character, so the ".." after it removes it.
	"/%3F/..//evil.example/x",
];

/**
 * What the patient's browser ends on after a sign-in that started with this
 * return_to: the launch's refusal, or the callback's Location resolved the way
 * a browser resolves it.
 */
async function landing(returnTo: string): Promise<{ refused: string } | { landed: string }> {
	const jar = new CookieJar();
	const launched = await browserFetch(jar, `/launch?practice=80000&return_to=${encodeURIComponent(returnTo)}`);
	if (launched.status !== 302) return { refused: ((await launched.json()) as { error: string }).error };
	const callback = await authorizeAtSandbox(launched.headers.get("Location") ?? "", PATIENTS.jane);
	const finished = await browserFetch(jar, `${callback.pathname}${callback.search}`);
	expect(finished.status).toBe(302);
	return { landed: new URL(finished.headers.get("Location") ?? "", WORKER_ORIGIN).href };
}

describe("return_to: dot segments cannot turn a path into another host", () => {
	for (const raw of DOT_SEGMENT_ESCAPES) {
		it(`refuses ${JSON.stringify(raw)}`, () => {
			expect(safeReturnTo(raw)).toBeUndefined();
		});
	}

	it("still accepts dot segments that stay on the site, and returns them resolved", () => {
		expect(safeReturnTo("/a/./b/../records?tab=labs")).toBe("/a/records?tab=labs");
		expect(safeReturnTo("/a/../records")).toBe("/records");
		expect(safeReturnTo("/%2e/records")).toBe("/records");
		expect(safeReturnTo("/records#//section")).toBe("/records#//section");
	});
});

describe("return_to through a real sign-in", () => {
	beforeEach(async () => {
		await sandbox("reset", {});
		await sandbox("config", { tokenRateLimit: 0 });
	});

	it("never sends the patient to another host after signing in, whatever dot segments return_to holds", async () => {
		const outcomes: Record<string, unknown> = {};
		for (const raw of DOT_SEGMENT_ESCAPES) outcomes[raw] = await landing(raw);
		expect(outcomes).toEqual(
			Object.fromEntries(DOT_SEGMENT_ESCAPES.map((raw) => [raw, { refused: "return_to_invalid" }])),
		);
	});

	it("lands on the resolved same-origin path after signing in", async () => {
		expect(await landing("/a/../records?tab=labs")).toEqual({ landed: `${WORKER_ORIGIN}/records?tab=labs` });
	});
});
