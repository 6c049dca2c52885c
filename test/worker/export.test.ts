import { createExecutionContext, env, waitOnExecutionContext } from "cloudflare:test";
import { Hono } from "hono";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { AVERY, LARGE_RECORD } from "../../sandbox/src/users";
import type { AppEnv } from "../../src/app-env";
import type { ExportClock } from "../../src/export/pacing";
import { EXPORT_TYPES } from "../../src/export/searches";
import { requestIdentity, requestLog } from "../../src/middleware/request-log";
import { exportFileName, exportRoutes } from "../../src/routes/export";
import { testClock } from "./support/export-clock";
import { patchConnection, storedSession, withSessionEnv } from "./support/faults";
import {
	browserFetch,
	type CookieJar,
	connectRecord,
	PATIENTS,
	sandbox,
	signIn,
	signInKeepingAthena,
	WORKER_ORIGIN,
} from "./support/sign-in";

/*
 * GET /export against the sandbox with real sign-ins and sessions: the file
 * holds exactly what the record's searches return through the proxy, nothing
 * of anyone else and no token; refusals, athena failing and access ending
 * mid-way leave a file that says so. The export's own decisions with athena
 * scripted in-process are in export-record.test.ts.
 */

type Resource = { resourceType: string; id?: string } & Record<string, unknown>;
interface Bundle {
	resourceType: string;
	type: string;
	timestamp: string;
	entry: Array<{ fullUrl: string; resource: Resource }>;
	link?: Array<{ relation: string; url: string }>;
}
interface Issue {
	severity: string;
	code: string;
	details: { text: string };
	expression?: string[];
}

const LOCAL_SCOPE_TYPES = [
	"AllergyIntolerance",
	"Condition",
	"DiagnosticReport",
	"DocumentReference",
	"Encounter",
	"Immunization",
	"MedicationRequest",
	"Observation",
];
const ALL_INTENTS = "proposal,plan,order,original-order,reflex-order,filler-order,instance-order,option";

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

afterEach(() => {
	vi.restoreAllMocks();
});

/** The ids every page of one search returns through the proxy, following the proxy's next links. */
async function searchedIds(jar: CookieJar, type: string, patient: string, base = "/fhir/r4"): Promise<string[]> {
	const intent = type === "MedicationRequest" ? `&intent=${ALL_INTENTS}` : "";
	let path: string | undefined = `${base}/${type}?patient=${patient}${intent}&_count=100`;
	const ids: string[] = [];
	while (path) {
		const response = await browserFetch(jar, path);
		expect(response.status, path).toBe(200);
		const page = (await response.json()) as Bundle;
		ids.push(...(page.entry ?? []).map((e) => `${e.resource.resourceType}/${e.resource.id}`));
		const next = page.link?.find((l) => l.relation === "next")?.url;
		path = next?.slice(WORKER_ORIGIN.length);
	}
	return ids;
}

/** The export's first `chunks` chunks as text, and a way to read the rest. */
async function partly(response: Response, chunks: number) {
	const reader = (response.body as ReadableStream<Uint8Array>).getReader();
	const decoder = new TextDecoder();
	let text = "";
	for (let i = 0; i < chunks; i++) text += decoder.decode((await reader.read()).value, { stream: true });
	return {
		text,
		async rest(): Promise<string> {
			let all = text;
			for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
				all += decoder.decode(chunk.value, { stream: true });
			}
			return all + decoder.decode();
		},
	};
}

const issueOf = (resource: Resource | undefined) => (resource?.issue as Issue[] | undefined)?.[0];

/** The export route on its own, behind the worker's middleware, with the export's clock given. */
function exportWorker(clock: ExportClock) {
	const app = new Hono<AppEnv>().use(requestIdentity()).use(requestLog()).route("/", exportRoutes({ clock }));
	return async (request: Request) => {
		const ctx = createExecutionContext();
		const response = await app.fetch(request, env, ctx);
		await waitOnExecutionContext(ctx);
		return response;
	};
}

describe("GET /export", () => {
	for (const [label, patient] of Object.entries(PATIENTS)) {
		it(`holds exactly what the searches return for ${label} (${patient.id}), each once, nothing of anyone else, no token`, async () => {
			const { jar } = await signIn(patient);
			const response = await browserFetch(jar, "/export");
			expect(response.status).toBe(200);
			expect(response.headers.get("Content-Type")).toBe("application/fhir+json");
			expect(response.headers.get("Cache-Control")).toBe("private, no-store");
			const text = await response.text();
			const bundle = JSON.parse(text) as Bundle;
			expect(bundle).toMatchObject({ resourceType: "Bundle", type: "collection" });
			const resources = bundle.entry.map((e) => e.resource);
			expect(resources[0]).toMatchObject({ resourceType: "Patient", id: patient.id });

			const exported = resources
				.filter((r) => r.resourceType !== "OperationOutcome")
				.map((r) => `${r.resourceType}/${r.id}`);
			expect(new Set(exported).size).toBe(exported.length);
			const searched = [`Patient/${patient.id}`];
			for (const type of LOCAL_SCOPE_TYPES) searched.push(...new Set(await searchedIds(jar, type, patient.id)));
			expect(exported.sort()).toEqual(searched.sort());

			for (const entry of bundle.entry.slice(0, -1)) {
				expect(entry.fullUrl).toBe(`${WORKER_ORIGIN}/fhir/r4/${entry.resource.resourceType}/${entry.resource.id}`);
			}
			const last = issueOf(resources.at(-1));
			expect(last?.severity).toBe("information");
			const notShared = EXPORT_TYPES.filter((t) => !LOCAL_SCOPE_TYPES.includes(t));
			expect(last?.details.text).toContain(`Not shared with this app: ${notShared.join(", ")}.`);

			for (const other of Object.values(PATIENTS).filter((p) => p.id !== patient.id)) {
				expect(text.includes(other.id), other.id).toBe(false);
			}
			expect(text).not.toContain("http://localhost:3001");
			const { opened } = await storedSession(jar);
			for (const token of [opened?.accessToken, opened?.refreshToken, opened?.idToken]) {
				expect(token && text.includes(token)).toBeFalsy();
			}
		});
	}

	it("exports the large record (110,625 resources in scope, 1,105 pages of Observations) exactly, each once, as NDJSON", async () => {
		const { jar } = await signIn({
			username: AVERY.username,
			password: AVERY.password,
			practice: AVERY.practiceId,
			id: AVERY.id,
		});
		const response = await browserFetch(jar, "/export?format=ndjson");
		const counts = new Map<string, number>();
		const ids = new Set<string>();
		let last: Resource | undefined;
		let pending = "";
		const decoder = new TextDecoder();
		const reader = (response.body as ReadableStream<Uint8Array>).getReader();
		for (let chunk = await reader.read(); !chunk.done; chunk = await reader.read()) {
			const lines = (pending + decoder.decode(chunk.value, { stream: true })).split("\n");
			pending = lines.pop() ?? "";
			for (const line of lines) {
				last = JSON.parse(line) as Resource;
				if (!last.id) continue;
				ids.add(`${last.resourceType}/${last.id}`);
				counts.set(last.resourceType, (counts.get(last.resourceType) ?? 0) + 1);
				const subject = (last.subject as { reference?: string } | undefined)?.reference;
				if (subject) expect(subject).toBe(`Patient/${AVERY.id}`);
			}
		}
		expect(pending).toBe("");
		const expected = new Map<string, number>([["Patient", 1]]);
		for (const type of LOCAL_SCOPE_TYPES)
			expected.set(type, LARGE_RECORD.searchCounts[type as keyof typeof LARGE_RECORD.searchCounts]);
		expect(Object.fromEntries(counts)).toEqual(Object.fromEntries(expected));
		expect(ids.size).toBe([...expected.values()].reduce((a, b) => a + b));
		expect(issueOf(last)?.severity).toBe("information");
	}, 180_000);

	it("records each type athena refuses as an OperationOutcome naming it and athena's words, and exports the rest", async () => {
		const { jar } = await signIn(PATIENTS.jane);
		// A session whose grant reads as every type (as a wildcard grant would), at a server that grants fewer:
		// the export asks for all fifteen types and the sandbox refuses the ungranted ones as athena does.
		const { stub } = await storedSession(jar);
		await patchConnection(stub, (connection) => ({ ...connection, scopes: ["patient/*.read"] }));
		const bundle = (await (await browserFetch(jar, "/export")).json()) as Bundle;
		const resources = bundle.entry.map((e) => e.resource);
		const refusals = resources
			.slice(0, -1)
			.filter((r) => r.resourceType === "OperationOutcome")
			.map(issueOf);
		const ungranted = EXPORT_TYPES.filter((t) => !LOCAL_SCOPE_TYPES.includes(t));
		expect(refusals.map((i) => i?.expression?.[0])).toEqual(ungranted);
		for (const refusal of refusals) {
			expect(refusal).toMatchObject({ severity: "error", code: "forbidden" });
			expect(refusal?.details.text).toBe(
				`athenahealth refused the ${refusal?.expression?.[0]} search (status 403): Invalid Token Scope`,
			);
		}
		for (const type of LOCAL_SCOPE_TYPES) {
			const exported = resources.filter((r) => r.resourceType === type).length;
			expect(exported, type).toBe(new Set(await searchedIds(jar, type, PATIENTS.jane.id)).size);
		}
		const last = issueOf(resources.at(-1));
		expect(last?.severity).toBe("information");
		expect(last?.details.text).toContain(`athenahealth refused: ${ungranted.join(", ")}.`);
	});

	it("names the file after the patient and the day, and gives NDJSON with the same resources", async () => {
		const { jar } = await signIn(PATIENTS.jane);
		const bundleResponse = await browserFetch(jar, "/export?format=json");
		const disposition = bundleResponse.headers.get("Content-Disposition") ?? "";
		expect(disposition).toMatch(/^attachment; filename="jake-medlock-\d{4}-\d{2}-\d{2}\.fhir\.json"$/);
		const bundle = (await bundleResponse.json()) as Bundle;

		const ndjson = await browserFetch(jar, "/export?format=ndjson");
		expect(ndjson.headers.get("Content-Type")).toBe("application/fhir+ndjson");
		expect(ndjson.headers.get("Content-Disposition")).toMatch(/filename="jake-medlock-[\d-]+\.ndjson"$/);
		const lines = (await ndjson.text()).trimEnd().split("\n");
		const ids = (list: Resource[]) => list.filter((r) => r.id).map((r) => `${r.resourceType}/${r.id}`);
		expect(ids(lines.map((l) => JSON.parse(l) as Resource))).toEqual(ids(bundle.entry.map((e) => e.resource)));
		expect(issueOf(JSON.parse(lines.at(-1) ?? "{}") as Resource)?.severity).toBe("information");
	});

	it("refuses an unknown format, sends a browser without a session home, and shows the revoked page", async () => {
		const { jar } = await signIn(PATIENTS.second);
		const unknown = await browserFetch(jar, "/export?format=xml");
		expect(unknown.status).toBe(400);
		expect(await unknown.json()).toMatchObject({ error: "export_format_unknown" });

		const anonymous = await browserFetch({ cookies: new Map(), header: () => "", store: () => {} } as never, "/export");
		expect(anonymous.status).toBe(302);
		expect(anonymous.headers.get("Location")).toBe("/");

		await sandbox("revoke", { patient: PATIENTS.second.id });
		const revoked = await browserFetch(jar, "/export", { headers: { Accept: "text/html" } });
		expect(revoked.status).toBe(200);
		expect(revoked.headers.get("Content-Type")).toContain("text/html");
		expect(await revoked.text()).toContain("Access was revoked");
	});

	it("ends with a fatal entry when access is revoked mid-way, keeping what was read", async () => {
		const { jar } = await signIn(PATIENTS.jane);
		const response = await browserFetch(jar, "/export");
		// The opening and the Patient: the searches have not all been read yet (three at a time, one page ahead).
		const started = await partly(response, 2);
		await sandbox("revoke", { patient: PATIENTS.jane.id });
		const text = await started.rest();
		const resources = (JSON.parse(text) as Bundle).entry.map((e) => e.resource);
		expect(resources[0]?.id).toBe(PATIENTS.jane.id);
		expect(issueOf(resources.at(-1))).toMatchObject({ severity: "fatal", code: "security" });
		expect(issueOf(resources.at(-1))?.details.text).toContain("Access to the record was revoked during the export.");
		expect(resources.some((r) => r.resourceType === "Observation")).toBe(false);
	});

	it("waits out athena's 429 (Retry-After 60) and completes", async () => {
		const clock = testClock();
		const { jar } = await signIn(PATIENTS.dependent);
		const worker = exportWorker(clock);
		const response = await browserFetch(jar, "/export", {}, worker);
		const started = await partly(response, 2);
		await sandbox("faults", { target: "fhir", status: 429, times: 1 });
		const text = await started.rest();
		expect(clock.sleeps).toEqual([60_000]);
		const resources = (JSON.parse(text) as Bundle).entry.map((e) => e.resource);
		expect(issueOf(resources.at(-1))?.severity).toBe("information");
	});

	it("ends with a fatal entry when athena fails mid-way and stays down through the retries", async () => {
		const clock = testClock();
		const { jar } = await signIn(PATIENTS.jane);
		const response = await browserFetch(jar, "/export", {}, exportWorker(clock));
		const started = await partly(response, 2);
		await sandbox("faults", { target: "fhir", status: 503 });
		const text = await started.rest();
		const last = issueOf((JSON.parse(text) as Bundle).entry.at(-1)?.resource);
		expect(last).toMatchObject({ severity: "fatal", code: "transient" });
		expect(last?.details.text).toContain("athenahealth answered 503; the export stopped.");
		// Each search that meets the failure pauses all of them, 1 s then 2 s; a search's third failure ends the export.
		expect(new Set(clock.sleeps)).toEqual(new Set([1_000, 2_000]));
	});

	it("refreshes once mid-export when athena ends the access token, however many searches meet the 401", async () => {
		const { jar } = await signIn(PATIENTS.jane);
		const received = () => sandbox<{ tokenCalls: Array<{ grantType: string | null }> }>("received");
		const refreshes = async () => (await received()).tokenCalls.filter((t) => t.grantType === "refresh_token").length;
		const response = await browserFetch(jar, "/export");
		const started = await partly(response, 2);
		await sandbox("expire-access-tokens", {});
		const text = await started.rest();
		expect(await refreshes()).toBe(1);
		expect(text).toContain('"severity":"information"');
		expect(text).toContain("Export complete");
	});
});

describe("GET /export of a session with several records", () => {
	async function jakeAndLily() {
		const browser = await signInKeepingAthena(PATIENTS.jane);
		expect((await connectRecord(browser, PATIENTS.dependent)).status).toBe(302);
		const view = (await (await browserFetch(browser.jar, "/session")).json()) as {
			connections: Array<{ id: string; patient: string }>;
		};
		const lily = view.connections.find((x) => x.patient === PATIENTS.dependent.id);
		if (!lily) throw new Error("Lily's record was not connected");
		return { jar: browser.jar, lilyBase: `/fhir/${lily.id}/r4` };
	}

	it("writes each record whole under its own base: its Patient, exactly its searches, nothing of the other", async () => {
		const { jar, lilyBase } = await jakeAndLily();
		const bundle = (await (await browserFetch(jar, "/export")).json()) as Bundle;
		const under = (base: string) => bundle.entry.filter((e) => e.fullUrl.startsWith(`${WORKER_ORIGIN}${base}/`));
		const records = [
			{ patient: PATIENTS.jane.id, base: "/fhir/r4", other: PATIENTS.dependent.id },
			{ patient: PATIENTS.dependent.id, base: lilyBase, other: PATIENTS.jane.id },
		];
		for (const { patient, base, other } of records) {
			const entries = under(base);
			expect(entries[0]?.resource).toMatchObject({ resourceType: "Patient", id: patient });
			const searched = [`Patient/${patient}`];
			for (const type of LOCAL_SCOPE_TYPES) searched.push(...new Set(await searchedIds(jar, type, patient, base)));
			expect(entries.map((e) => `${e.resource.resourceType}/${e.resource.id}`).sort()).toEqual(searched.sort());
			expect(JSON.stringify(entries).includes(other), `${other} in ${patient}'s part`).toBe(false);
		}
		const outcomes = bundle.entry
			.filter((e) => e.resource.resourceType === "OperationOutcome")
			.map((e) => issueOf(e.resource));
		expect(outcomes.map((o) => o?.details.text.replace(/:.*/, ""))).toEqual([
			"Export of Jake Medlock at practice 80000 complete",
			"Export of Lily Medlock at practice 80000 complete",
			"Export complete",
		]);
		expect(outcomes.at(-1)?.details.text).toBe("Export complete: 2 of 2 records.");
		expect(bundle.entry.length).toBe(under("/fhir/r4").length + under(lilyBase).length + 3);
	});

	it("exports every record of a session idle past its tokens' hour: one refresh each, within the session's limit", async () => {
		const browser = await signInKeepingAthena(PATIENTS.jane);
		for (const record of [PATIENTS.dependent, PATIENTS.janeElsewhere]) {
			expect((await connectRecord(browser, record)).status).toBe(302);
		}
		const { stub } = await storedSession(browser.jar);
		await sandbox("expire-access-tokens", {});
		const refreshes = async () =>
			(await sandbox<{ tokenCalls: Array<{ grantType: string | null }> }>("received")).tokenCalls.filter(
				(t) => t.grantType === "refresh_token",
			).length;
		const before = await refreshes();
		// One refresh a minute configured: a session of three records may still refresh each once (1 + 2).
		const bundle = await withSessionEnv(stub, { SESSION_REFRESHES_PER_MINUTE: "1" }, async () => {
			return (await (await browserFetch(browser.jar, "/export")).json()) as Bundle;
		});
		const patients = bundle.entry.filter((e) => e.resource.resourceType === "Patient").map((e) => e.resource.id);
		expect(patients).toEqual([PATIENTS.jane.id, PATIENTS.dependent.id, PATIENTS.janeElsewhere.id]);
		expect(issueOf(bundle.entry.at(-1)?.resource)?.details.text).toBe("Export complete: 3 of 3 records.");
		expect((await refreshes()) - before).toBe(3);
	});

	it("names a record revoked at athena and exports the other whole", async () => {
		const { jar, lilyBase } = await jakeAndLily();
		await sandbox("revoke", { patient: PATIENTS.dependent.id });
		const bundle = (await (await browserFetch(jar, "/export")).json()) as Bundle;
		const resources = bundle.entry.map((e) => e.resource);
		expect(resources.filter((r) => r.resourceType === "Patient").map((r) => r.id)).toEqual([PATIENTS.jane.id]);
		expect(bundle.entry.some((e) => e.fullUrl.includes(lilyBase))).toBe(false);
		const last = issueOf(resources.at(-1));
		expect(last?.severity).toBe("information");
		expect(last?.details.text).toBe(
			`Export complete: 1 of 2 records. Not exported, access revoked: patient ${PATIENTS.dependent.id} at practice 80000.`,
		);
	});
});

describe("GET /export: what reaches the logs", () => {
	it("writes one line for the whole export, when it ends: counts by type and reads, no name, token or id", async () => {
		const { jar } = await signIn(PATIENTS.jane);
		const lines: string[] = [];
		for (const method of ["log", "info", "warn", "error"] as const) {
			vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
				lines.push(args.map((a) => (typeof a === "string" ? a : JSON.stringify(a))).join(" "));
			});
		}
		const text = await (await browserFetch(jar, "/export")).text();
		const records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
		const exportLines = records.filter((r) => r.route === "/export");
		expect(exportLines).toHaveLength(1);
		const [line] = exportLines;
		const resources = (JSON.parse(text) as Bundle).entry.filter((e) => e.resource.id);
		expect(line).toMatchObject({ msg: "request", status: 200, format: "bundle", ended: "complete", refused: [] });
		expect(Object.values(line?.resources as Record<string, number>).reduce((a, b) => a + b)).toBe(resources.length);
		expect(line?.reads).toBeGreaterThan(LOCAL_SCOPE_TYPES.length);
		// No per-read FHIR audit lines: the export is one request, with one line.
		expect(records.filter((r) => r.msg === "fhir")).toEqual([]);
		const { opened } = await storedSession(jar);
		const all = lines.join("\n");
		for (const secret of [opened?.accessToken, jar.cookies.get("__Host-athena_session"), "Medlock", PATIENTS.jane.id]) {
			expect(secret && all.includes(secret), secret).toBeFalsy();
		}
	});
});

describe("export file name", () => {
	it("keeps ASCII letters and digits of the name, and falls back when there are none", () => {
		expect(exportFileName("Jake Medlock", "2026-12-03", "bundle")).toBe("jake-medlock-2026-12-03.fhir.json");
		expect(exportFileName("Zoë O'Brien-Núñez", "2026-12-03", "ndjson")).toBe("zoe-o-brien-nunez-2026-12-03.ndjson");
		expect(exportFileName('"; rm -rf', "2026-12-03", "bundle")).toBe("rm-rf-2026-12-03.fhir.json");
		expect(exportFileName("李小龍", "2026-12-03", "bundle")).toBe("health-record-2026-12-03.fhir.json");
		expect(exportFileName(undefined, "2026-12-03", "bundle")).toBe("health-record-2026-12-03.fhir.json");
	});
});
