import { afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { browserFetch, CookieJar, PATIENTS, sandbox, signIn } from "./support/sign-in";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const lines: Record<string, unknown>[] = [];

function captureLogs(): void {
	for (const method of ["log", "info", "warn", "error", "debug"] as const) {
		vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
			for (const arg of args) if (typeof arg === "string" && arg.startsWith("{")) lines.push(JSON.parse(arg));
		});
	}
}

function linesOf(requestId: string | null): Record<string, unknown>[] {
	return lines.filter((line) => line.requestId === requestId);
}

beforeAll(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

afterEach(() => {
	vi.restoreAllMocks();
	lines.length = 0;
});

describe("request ids are ours, whatever X-Request-Id the caller sends", () => {
	it("answers and logs a fresh id of its own, and keeps a well-formed caller id apart as clientRequestId", async () => {
		captureLogs();
		const first = await browserFetch(new CookieJar(), "/health", { headers: { "X-Request-Id": "attacker-value" } });
		const second = await browserFetch(new CookieJar(), "/health", { headers: { "X-Request-Id": "attacker-value" } });
		const ids = [first.headers.get("X-Request-Id"), second.headers.get("X-Request-Id")];
		for (const id of ids) expect(id).toMatch(UUID);
		expect(ids[0]).not.toBe(ids[1]);

		const requestLines = lines.filter((line) => line.msg === "request");
		expect(requestLines).toHaveLength(2);
		expect(requestLines.map((line) => line.requestId)).toEqual(ids);
		for (const line of requestLines)
			expect(line).toMatchObject({ clientRequestId: "attacker-value", route: "/health" });
		expect(lines.filter((line) => line.requestId === "attacker-value")).toEqual([]);
	});

	const hostile: Array<[string, string]> = [
		["quotes and a tab", 'x","level":"info","msg":"fhir\t'],
		["spaces", "a b c"],
		["too long", "a".repeat(65)],
		["far too long", "b".repeat(4096)],
		["a percent-encoded newline", "x%0d%0aforged"],
		["a JSON body", '{"requestId":"forged"}'],
	];
	for (const [what, value] of hostile) {
		it(`drops a caller id with ${what}: not our id, not logged`, async () => {
			captureLogs();
			const response = await browserFetch(new CookieJar(), "/health", { headers: { "X-Request-Id": value } });
			const id = response.headers.get("X-Request-Id");
			expect(id).toMatch(UUID);
			const [line, ...others] = linesOf(id);
			expect(others).toEqual([]);
			expect(line).toMatchObject({ msg: "request", requestId: id });
			expect(line).not.toHaveProperty("clientRequestId");
			expect(JSON.stringify(lines)).not.toContain(JSON.stringify(value).slice(1, -1));
		});
	}

	it("puts our id, not the caller's, in an error body and its log line", async () => {
		captureLogs();
		const response = await browserFetch(new CookieJar(), "/launch?practice=not-digits", {
			headers: { "X-Request-Id": "attacker-value" },
		});
		expect(response.status).toBe(400);
		const id = response.headers.get("X-Request-Id");
		expect(id).toMatch(UUID);
		expect(await response.json()).toMatchObject({ error: "practice_invalid", requestId: id });
		expect(linesOf(id).map((line) => line.msg)).toEqual(["request failed", "request"]);
		expect(linesOf("attacker-value")).toEqual([]);
	});

	it("writes the FHIR audit line under our id", async () => {
		const { jar } = await signIn();
		captureLogs();
		const response = await browserFetch(jar, `/fhir/r4/Patient/${PATIENTS.jane.id}`, {
			headers: { "X-Request-Id": "attacker-value" },
		});
		await response.arrayBuffer();
		const id = response.headers.get("X-Request-Id");
		expect(id).toMatch(UUID);
		expect(linesOf(id)).toEqual([expect.objectContaining({ msg: "fhir", resourceType: "Patient", status: 200 })]);
		expect(linesOf("attacker-value")).toEqual([]);
	});
});
