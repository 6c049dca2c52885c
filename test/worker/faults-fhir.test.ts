import { env } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { expectCleanFailure, html, storedSession, workerWith } from "./support/faults";
import { browserFetch, PATIENTS, type Received, sandbox, signIn } from "./support/sign-in";

/*
 * athena's FHIR API on a bad day, through the proxy (the app's JSON view)
 * and the record page (the patient's view, which reads through the same
 * proxy). Each row: what both see, and that the session is untouched and
 * reads work again once athena recovers.
 */

interface FhirFault {
	status?: number;
	delayMs?: number;
	cutAfterBytes?: number;
}

interface Row {
	fault: string;
	inject: FhirFault;
	/** The app's read: status, and the OperationOutcome issue code or pass-through. */
	status: number;
	issue?: string;
	retryAfter: string | null;
	/** A cut stream: headers were already sent with 200, so the body errors instead of ending as if complete. */
	bodyErrors?: boolean;
	/** The record page: status and a phrase the patient reads. */
	pageStatus: number;
	pageText: RegExp;
}

/** The proxy waits this long for athena's headers here (production: FHIR_TIMEOUT_MS, default 20 s). */
const SHORT_TIMEOUT = { FHIR_TIMEOUT_MS: "250" };

const rows: Row[] = [
	{
		fault: "500",
		inject: { status: 500 },
		status: 502,
		issue: "transient",
		retryAfter: null,
		pageStatus: 503,
		pageText: /athenahealth did not answer in time, so your record could not be read/,
	},
	{
		fault: "503",
		inject: { status: 503 },
		status: 502,
		issue: "transient",
		retryAfter: null,
		pageStatus: 503,
		pageText: /athenahealth did not answer in time, so your record could not be read/,
	},
	{
		fault: "429",
		inject: { status: 429 },
		status: 429,
		retryAfter: "60",
		pageStatus: 503,
		pageText: /athenahealth is limiting how often apps may ask for records/,
	},
	{
		fault: "no headers within the timeout",
		inject: { delayMs: 1_500 },
		status: 504,
		issue: "timeout",
		retryAfter: null,
		pageStatus: 503,
		pageText: /athenahealth did not answer in time/,
	},
	{
		fault: "a stream cut after 200 bytes",
		inject: { cutAfterBytes: 200 },
		status: 200,
		retryAfter: null,
		bodyErrors: true,
		pageStatus: 503,
		pageText: /athenahealth did not answer in time/,
	},
];

const READ = `/fhir/r4/Observation?category=vital-signs&_count=50`;

async function clearFaults(): Promise<void> {
	await env.SANDBOX.fetch("http://localhost:3001/_sandbox/faults", { method: "DELETE" });
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("fault matrix: athena's FHIR API", () => {
	for (const row of rows) {
		it(`FHIR answers ${row.fault}: the app gets ${row.status}${row.issue ? ` (${row.issue})` : ""}, the patient a ${row.pageStatus} page, the session survives`, async () => {
			const worker = workerWith(SHORT_TIMEOUT);
			const { jar } = await signIn();
			const before = await storedSession(jar);
			const tokenCallsBefore = (await sandbox<Received>("received")).tokenCalls.length;
			// Until cleared: the record page's parallel reads all meet it.
			await sandbox("faults", { target: "fhir", ...row.inject });

			const read = await browserFetch(jar, READ, {}, worker);
			expect(read.headers.get("Cache-Control")).toBe("private, no-store");
			expect(read.headers.get("Retry-After")).toBe(row.retryAfter);
			if (row.bodyErrors) {
				expect(read.status).toBe(200);
				await expect(read.text()).rejects.toThrow();
			} else {
				const { json } = await expectCleanFailure(read, row.status);
				expect(json).toMatchObject({ resourceType: "OperationOutcome" });
				if (row.issue) expect(json).toMatchObject({ issue: [{ severity: "error", code: row.issue }] });
			}

			const page = await browserFetch(jar, "/record", html, worker);
			const { text } = await expectCleanFailure(page, row.pageStatus);
			expect(page.headers.get("Content-Type")).toContain("text/html");
			expect(text).toMatch(row.pageText);
			expect(text).toContain("You are still connected; nothing was lost.");

			await clearFaults();
			// A FHIR failure is not a token failure: no refresh, the same sealed tokens, reads work again.
			expect((await sandbox<Received>("received")).tokenCalls.length).toBe(tokenCallsBefore);
			expect((await storedSession(jar)).sealed).toEqual(before.sealed);
			expect(await (await browserFetch(jar, "/session", {}, worker)).json()).toMatchObject({ status: "connected" });
			const recovered = await browserFetch(jar, READ, {}, worker);
			expect(recovered.status).toBe(200);
			const bundle = (await recovered.json()) as { entry: Array<{ resource: { subject: { reference: string } } }> };
			expect(bundle.entry[0]?.resource.subject.reference).toBe(`Patient/${PATIENTS.jane.id}`);
			expect((await browserFetch(jar, "/record", html, worker)).status).toBe(200);
		});
	}
});
