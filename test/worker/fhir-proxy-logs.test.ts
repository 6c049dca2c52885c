import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { browserFetch, PATIENTS, sandbox, signIn } from "./support/sign-in";

const captured: string[] = [];

function captureConsole(): void {
	for (const method of ["log", "info", "warn", "error", "debug"] as const) {
		vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
			captured.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
		});
	}
}

beforeAll(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

afterEach(() => {
	vi.restoreAllMocks();
	captured.length = 0;
});

describe("FHIR proxy: what reaches the logs", () => {
	it("logs a sign-in and a session of reads without a token, the cookie, the patient's name or a query value", async () => {
		captureConsole();
		const { jar } = await signIn();
		const cookie = jar.cookies.get("__Host-athena_session") ?? "";
		expect(cookie.length).toBeGreaterThan(20);
		const reads = [
			`/fhir/r4/Patient/${PATIENTS.jane.id}`,
			"/fhir/r4/Observation?category=laboratory&code=http://loinc.org|2345-7",
			"/fhir/r4/Condition?clinical-status=active",
			"/fhir/r4/DocumentReference?date=ge2025-01-01",
			"/fhir/r4/Patient?name=Testpatient",
			"/fhir/r4/Patient/..%2fsecret-value",
		];
		for (const path of reads) await (await browserFetch(jar, path)).arrayBuffer();
		await sandbox("expire-access-tokens", {});
		await (await browserFetch(jar, `/fhir/r4/Patient/${PATIENTS.jane.id}`)).arrayBuffer();

		const text = captured.join("\n");
		for (const secret of [
			"Bearer ",
			"eyJ",
			cookie,
			"refresh_token",
			"access_token",
			"code=",
			"code_verifier",
			"Jane",
			"Testpatient",
			PATIENTS.jane.id,
			PATIENTS.jane.username,
			"laboratory",
			"2345-7",
			"loinc",
			"clinical-status",
			"ge2025",
			"secret-value",
		]) {
			expect(text, `logs must not contain ${JSON.stringify(secret)}`).not.toContain(secret);
		}

		const audits = captured.map((line) => JSON.parse(line) as Record<string, unknown>).filter((l) => l.msg === "fhir");
		expect(audits).toHaveLength(reads.length + 1);
		expect(audits[0]).toMatchObject({
			resourceType: "Patient",
			interaction: "read",
			status: 200,
			upstreamStatus: 200,
			outcome: "complete",
		});
		expect(audits[0]?.session).toMatch(/^[A-Za-z0-9_-]{16}$/);
		expect(audits[0]?.bytes).toBeGreaterThan(100);
		expect(audits[1]).toMatchObject({ resourceType: "Observation", interaction: "search-type", status: 200 });
		expect(audits[5]).toMatchObject({ status: 400, outcome: "no-body" });
		// One request line per FHIR request: the audit line stands in for the generic one
		// (an error's detail may add a "request failed" line beside it).
		const lines = captured.map((line) => JSON.parse(line) as Record<string, unknown>);
		for (const audit of audits) {
			const mine = lines.filter((l) => l.requestId === audit.requestId && (l.msg === "request" || l.msg === "fhir"));
			expect(mine.map((l) => l.msg)).toEqual(["fhir"]);
			expect(audit).toMatchObject({ method: "GET", route: "/fhir/r4/*" });
		}
	});
});
