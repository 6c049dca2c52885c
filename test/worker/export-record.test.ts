import { describe, expect, it } from "vitest";
import { type ExportPage, exportBody } from "../../src/export/export-body";
import type { ExportClock } from "../../src/export/pacing";
import { type ExportTally, type Json, recordExport } from "../../src/export/record-export";
import { EXPORT_TYPES, exportPlan } from "../../src/export/searches";
import type { ReadState, UpstreamRead } from "../../src/fhir/upstream-read";
import type { FhirTarget } from "../../src/pages/read-record";
import { testClock } from "./support/export-clock";

/*
 * The export's own decisions with athena answered in-process: paging, each
 * resource once, refusals recorded and passed over, athena's rate limits
 * waited out on a controlled clock, and the ways an export ends early. The
 * same export against the sandbox and real sessions is in export.test.ts.
 */

const FHIR_BASE = "https://api.athena.test/fhir/r4";
const PROXY_BASE = "https://app.example/fhir/r4";
const PATIENT = "a-80000.E-14545";
const T0 = Date.UTC(2026, 11, 3, 12, 0, 0);

const resource = (type: string, n: number, patient = PATIENT): Json => ({
	resourceType: type,
	id: `a-80000.${type.toLowerCase()}-${n}`,
	subject: { reference: `Patient/${patient}` },
});

function json(body: unknown, status = 200, headers: Record<string, string> = {}): Response {
	return new Response(JSON.stringify(body), {
		status,
		headers: { "Content-Type": "application/fhir+json; charset=utf-8", ...headers },
	});
}

/** A searchset page as athena pages: links `self` and `next` only, absolute on its host, no total. */
function searchset(resources: Json[], next?: string): Response {
	const link = [{ relation: "self", url: `${FHIR_BASE}/x` }];
	if (next) link.push({ relation: "next", url: next });
	return json({
		resourceType: "Bundle",
		type: "searchset",
		link,
		...(resources.length ? { entry: resources.map((r) => ({ resource: r, search: { mode: "match" } })) } : {}),
	});
}

const athenaOutcome = (text: string) => ({
	resourceType: "OperationOutcome",
	issue: [{ severity: "fatal", code: "forbidden", details: { text }, expression: ["X"] }],
});

/**
 * athena, scripted per search type: each type's list of answers, one per
 * request in order (a page's `next` link is `{type}?cursor={index}`). Types
 * without a script answer one empty page. Records every target and the most
 * reads in flight at once; `settled` waits for every read asked for.
 */
type Answer = Response | ReadState;

function scriptedAthena(script: Record<string, Array<(signal?: AbortSignal) => Answer | Promise<Answer>>>) {
	const targets: FhirTarget[] = [];
	const calls = new Map<string, number>();
	let inFlight = 0;
	let maxInFlight = 0;
	const reads: Array<Promise<UpstreamRead>> = [];
	function read(target: FhirTarget, signal?: AbortSignal): Promise<UpstreamRead> {
		const reading = answer(target, signal);
		reads.push(reading);
		return reading;
	}
	async function answer(target: FhirTarget, signal?: AbortSignal): Promise<UpstreamRead> {
		targets.push(target);
		inFlight++;
		maxInFlight = Math.max(maxInFlight, inFlight);
		// Let other searches start before this one answers, as the network would.
		await new Promise((resolve) => setTimeout(resolve, 1));
		inFlight--;
		const type = target.path.slice(1);
		const n = calls.get(type) ?? 0;
		calls.set(type, n + 1);
		const answer = (await script[type]?.[n]?.(signal)) ?? searchset([]);
		const outbound = {
			url: `${FHIR_BASE}${target.path}?${target.query}`,
			interaction: "search-type" as const,
			resourceType: type,
		};
		if (answer instanceof Response) return { kind: "response", response: answer, outbound, fhirBaseUrl: FHIR_BASE };
		return { kind: "state", state: answer, outbound };
	}
	return { read, targets, maxInFlight: () => maxInFlight, settled: () => Promise.all(reads) };
}

/** Pages of resources as the file writes them: read from athena's base, written under the proxy's. */
async function* onProxy(pages: AsyncGenerator<Json[]>): AsyncGenerator<ExportPage> {
	for await (const resources of pages) yield { resources, fhirBaseUrl: FHIR_BASE, proxyBaseUrl: PROXY_BASE };
}

const next = (type: string, cursor: number) => `${FHIR_BASE}/${type}?patient=${PATIENT}&_count=100&cursor=${cursor}`;

async function run(
	athena: ReturnType<typeof scriptedAthena>,
	options: {
		scopes?: string[];
		clock?: ExportClock;
		timeLimitMs?: number;
		patient?: Json | undefined;
		serverName?: string;
	} = {},
) {
	const clock = options.clock ?? testClock(T0);
	const tally: ExportTally = { counts: new Map(), refused: [], stopped: undefined };
	const pages = recordExport(
		{
			read: athena.read,
			patient: PATIENT,
			patientResource: "patient" in options ? options.patient : { resourceType: "Patient", id: PATIENT },
			plan: exportPlan(PATIENT, options.scopes ?? ["patient/*.read"]),
			fhirBaseUrl: FHIR_BASE,
			clock,
			deadline: clock.now() + (options.timeLimitMs ?? 15 * 60_000),
			...(options.serverName ? { serverName: options.serverName } : {}),
		},
		tally,
	);
	const text = await new Response(
		exportBody(onProxy(pages), {
			format: "bundle",
			timestamp: new Date(T0).toISOString(),
			requestId: "req-1",
		}),
	).text();
	const bundle = JSON.parse(text) as { entry: Array<{ fullUrl: string; resource: Json }> };
	const resources = bundle.entry.map((e) => e.resource);
	const outcomes = resources.filter((r) => r.resourceType === "OperationOutcome");
	const issue = (r: Json) =>
		(r.issue as Array<{ severity: string; code: string; details: { text: string }; expression?: string[] }>)[0] ?? {
			severity: "",
			code: "",
			details: { text: "" },
		};
	return { text, bundle, resources, outcomes, issue, tally, last: issue(resources.at(-1) ?? {}) };
}

describe("export plan", () => {
	it("searches the granted types, names every MedicationRequest intent, and lists what is not shared", () => {
		const plan = exportPlan(PATIENT, [
			"openid",
			"patient/Condition.rs",
			"patient/MedicationRequest.read",
			"patient/Patient.r",
		]);
		expect(plan.readsPatient).toBe(true);
		expect(plan.searches.map((s) => s.type)).toEqual(["Condition", "MedicationRequest"]);
		expect(plan.searches[1]?.query).toBe(
			`patient=${PATIENT}&intent=proposal,plan,order,original-order,reflex-order,filler-order,instance-order,option&_count=100`,
		);
		expect(plan.notShared).toHaveLength(EXPORT_TYPES.length - 2);
	});

	it("asks for every type under a wildcard scope, v1 or v2, or when the scopes are unknown", () => {
		for (const scopes of [["patient/*.read"], ["patient/*.rs"], undefined]) {
			expect(exportPlan(PATIENT, scopes).searches).toHaveLength(EXPORT_TYPES.length);
		}
		expect(exportPlan(PATIENT, ["patient/Observation.r"]).searches).toEqual([]);
	});
});

describe("record export", () => {
	it("writes the Patient, then every page of every search, each resource once, with fullUrls on the proxy", async () => {
		const athena = scriptedAthena({
			Condition: [
				() => searchset([resource("Condition", 1), resource("Condition", 2)], next("Condition", 2)),
				// athena pages can come back empty yet have a next page.
				() => searchset([], next("Condition", 3)),
				() => searchset([resource("Condition", 2), resource("Condition", 3)]),
			],
			Observation: [
				() => searchset([{ ...resource("Observation", 1), hasMember: [{ reference: `${FHIR_BASE}/Observation/x` }] }]),
			],
		});
		const { bundle, resources, last, tally } = await run(athena);
		expect(resources.map((r) => r.id)).toEqual([
			PATIENT,
			"a-80000.condition-1",
			"a-80000.condition-2",
			"a-80000.condition-3",
			"a-80000.observation-1",
			undefined,
		]);
		expect(bundle.entry[1]?.fullUrl).toBe(`${PROXY_BASE}/Condition/a-80000.condition-1`);
		expect(bundle.entry.at(-1)?.fullUrl).toMatch(/^urn:uuid:[0-9a-f-]{36}$/);
		// athena's absolute URLs point at the proxy, as in the proxy's own answers.
		expect(JSON.stringify(resources[4])).toContain(`${PROXY_BASE}/Observation/x`);
		expect(JSON.stringify(bundle)).not.toContain(FHIR_BASE);
		expect(last).toMatchObject({ severity: "information", code: "informational" });
		expect(last.details.text).toBe("Export complete: 5 resources (Patient 1, Condition 3, Observation 1).");
		expect(tally.stopped).toBeUndefined();
		// Each page's cursor came from athena's next link, through the FHIR base's path.
		expect(athena.targets.filter((t) => t.path === "/Condition").map((t) => t.query)).toEqual([
			`patient=${PATIENT}&_count=100`,
			`patient=${PATIENT}&_count=100&cursor=2`,
			`patient=${PATIENT}&_count=100&cursor=3`,
		]);
	});

	it("records a refused type as an OperationOutcome naming it and athena's reason, and goes on", async () => {
		const athena = scriptedAthena({
			CarePlan: [() => json(athenaOutcome("Invalid Token Scope"), 403)],
			MedicationRequest: [
				() =>
					json(
						athenaOutcome(
							"The search query could not be performed because one of the required parameter combinations [[patient,intent],[_id]] was not provided.",
						),
						403,
					),
			],
			Observation: [() => searchset([resource("Observation", 1)])],
		});
		const { outcomes, issue, resources, last } = await run(athena);
		const refusals = outcomes.slice(0, -1).map(issue);
		expect(refusals.map((i) => i.expression)).toEqual([["CarePlan"], ["MedicationRequest"]]);
		expect(refusals[0]).toMatchObject({ severity: "error", code: "forbidden" });
		expect(refusals[0]?.details.text).toBe(
			"athenahealth refused the CarePlan search (status 403): Invalid Token Scope",
		);
		expect(refusals[1]?.details.text).toContain("[[patient,intent],[_id]]");
		expect(resources.some((r) => r.id === "a-80000.observation-1")).toBe(true);
		expect(last.severity).toBe("information");
		expect(last.details.text).toContain("athenahealth refused: CarePlan, MedicationRequest.");
	});

	it("leaves out what names another patient, and athena's own outcome entries", async () => {
		const athena = scriptedAthena({
			Condition: [
				() =>
					searchset([
						resource("Condition", 1),
						resource("Condition", 2, "a-80000.E-99999"),
						{ resourceType: "OperationOutcome", id: "warn-1" },
					]),
			],
		});
		const { resources } = await run(athena);
		expect(resources.filter((r) => r.resourceType === "Condition").map((r) => r.id)).toEqual(["a-80000.condition-1"]);
		expect(JSON.stringify(resources)).not.toContain("a-80000.E-99999");
		expect(resources.filter((r) => r.id === "warn-1")).toEqual([]);
	});

	it("reads at most three searches at once", async () => {
		const script = Object.fromEntries(
			EXPORT_TYPES.map((type) => [
				type,
				[() => searchset([resource(type, 1)], next(type, 2)), () => searchset([resource(type, 2)])],
			]),
		);
		const athena = scriptedAthena(script);
		const { tally } = await run(athena);
		expect([...tally.counts.values()].reduce((a, b) => a + b)).toBe(1 + 2 * EXPORT_TYPES.length);
		expect(athena.maxInFlight()).toBe(3);
	});

	it("waits out athena's 429 and Retry-After, and Ratelimit-Remaining 0 until the reset, then continues", async () => {
		const clock = testClock(T0);
		const athena = scriptedAthena({
			Condition: [
				() => json(athenaOutcome("Too many requests"), 429, { "Retry-After": "7" }),
				() =>
					new Response(searchset([resource("Condition", 1)], next("Condition", 2)).body, {
						headers: { "Content-Type": "application/fhir+json", "Ratelimit-Remaining": "0", "Ratelimit-Reset": "2" },
					}),
				() => searchset([resource("Condition", 2)]),
			],
		});
		const { last, tally } = await run(athena, { clock, scopes: ["patient/Condition.read"] });
		expect(clock.sleeps).toEqual([7_000, 2_000]);
		expect(tally.counts.get("Condition")).toBe(2);
		expect(last.severity).toBe("information");
	});

	it("ends with a fatal last entry when athena's waits would pass the time limit, keeping what was read", async () => {
		const clock = testClock(T0);
		const athena = scriptedAthena({
			Condition: [
				() => searchset([resource("Condition", 1)], next("Condition", 2)),
				() => json(athenaOutcome("Too many requests"), 429, { "Retry-After": "120" }),
			],
		});
		const { last, tally, resources } = await run(athena, {
			clock,
			timeLimitMs: 60_000,
			scopes: ["patient/Condition.read"],
		});
		expect(clock.sleeps).toEqual([]);
		expect(last).toMatchObject({ severity: "fatal", code: "throttled" });
		expect(last.details.text).toBe(
			"Export incomplete: The export ran out of time waiting for athenahealth. This file holds only what was read before: 2 resources (Patient 1, Condition 1).",
		);
		expect(tally.stopped?.code).toBe("throttled");
		expect(resources.filter((r) => r.resourceType === "Condition")).toHaveLength(1);
	});

	it("names a listed server, not athenahealth, in a record of that server's outcomes", async () => {
		const clock = testClock(T0);
		const down = () => json(athenaOutcome("Service Unavailable"), 503);
		const athena = scriptedAthena({
			CarePlan: [() => json(athenaOutcome("Invalid Token Scope"), 403)],
			Condition: [() => searchset([resource("Condition", 1)], next("Condition", 2)), down, down, down],
		});
		const scopes = ["patient/CarePlan.read", "patient/Condition.read"];
		const { outcomes, issue, text } = await run(athena, { clock, scopes, serverName: "Example Health" });
		expect(outcomes.map((o) => issue(o).details.text)).toEqual([
			"Example Health refused the CarePlan search (status 403): Invalid Token Scope",
			expect.stringContaining("Example Health answered 503; the export stopped."),
		]);
		expect(text).not.toContain("athenahealth");
	});

	it("retries athena's failure twice, then ends the export saying so", async () => {
		const clock = testClock(T0);
		const down = () => json(athenaOutcome("Service Unavailable"), 503);
		const athena = scriptedAthena({
			Condition: [() => searchset([resource("Condition", 1)], next("Condition", 2)), down, down, down],
			Observation: [() => searchset([resource("Observation", 1)])],
		});
		const { last } = await run(athena, { clock, scopes: ["patient/Condition.read", "patient/Observation.read"] });
		expect(clock.sleeps).toEqual([1_000, 2_000]);
		expect(last).toMatchObject({ severity: "fatal", code: "transient" });
		expect(last.details.text).toContain("athenahealth answered 503; the export stopped.");
		expect(athena.targets.filter((t) => t.path === "/Condition")).toHaveLength(4);
	});

	it("recovers when athena answers again within the retries", async () => {
		const athena = scriptedAthena({
			Condition: [() => ({ status: "timeout" }), () => searchset([resource("Condition", 1)])],
		});
		const { last, tally } = await run(athena, { scopes: ["patient/Condition.read"] });
		expect(tally.counts.get("Condition")).toBe(1);
		expect(last.severity).toBe("information");
	});

	it("asks again for a page whose body broke off or was not JSON", async () => {
		const clock = testClock(T0);
		const broken = () =>
			new Response('{"resourceType":"Bundle","entry":[{"resou', {
				headers: { "Content-Type": "application/fhir+json" },
			});
		const athena = scriptedAthena({ Condition: [broken, () => searchset([resource("Condition", 1)])] });
		const { last, tally } = await run(athena, { clock, scopes: ["patient/Condition.read"] });
		expect(clock.sleeps).toEqual([1_000]);
		expect(tally.counts.get("Condition")).toBe(1);
		expect(last.severity).toBe("information");
	});

	it("ends at once when access is revoked mid-way, the last entry saying so", async () => {
		const athena = scriptedAthena({
			Condition: [() => searchset([resource("Condition", 1)], next("Condition", 2)), () => ({ status: "revoked" })],
			Observation: [() => searchset([resource("Observation", 1)])],
		});
		const { last, tally } = await run(athena, { scopes: ["patient/Condition.read", "patient/Observation.read"] });
		expect(last).toMatchObject({ severity: "fatal", code: "security" });
		expect(last.details.text).toContain("Access to the record was revoked during the export.");
		expect(tally.counts.get("Observation")).toBeUndefined();
	});

	it("gives up the reads still under way when the export ends", async () => {
		let givenUp = false;
		let observationPage2Asked: () => void = () => {};
		const asked = new Promise<void>((resolve) => {
			observationPage2Asked = resolve;
		});
		const athena = scriptedAthena({
			// Condition's access ends the export only once Observation's next page is being read.
			Condition: [
				() => searchset([resource("Condition", 1)], next("Condition", 2)),
				async () => {
					await asked;
					return { status: "revoked" };
				},
			],
			Observation: [
				() => searchset([resource("Observation", 1)], next("Observation", 2)),
				(signal) =>
					new Promise<Answer>((resolve) => {
						observationPage2Asked();
						signal?.addEventListener("abort", () => {
							givenUp = true;
							resolve({ status: "unreachable" });
						});
					}),
			],
		});
		const { last } = await run(athena, { scopes: ["patient/Condition.read", "patient/Observation.read"] });
		expect(last).toMatchObject({ severity: "fatal", code: "security" });
		// Observation's read answers only once given up: without the abort this waits until the test times out.
		await athena.settled();
		expect(givenUp).toBe(true);
	});

	it("waits while our token budget is spent, as athena's session says, then continues", async () => {
		const clock = testClock(T0);
		const athena = scriptedAthena({
			Condition: [
				() => ({ status: "unavailable", code: "token_budget_spent", message: "busy", retryAfterSeconds: 30 }),
				() => searchset([resource("Condition", 1)]),
			],
		});
		const { tally } = await run(athena, { clock, scopes: ["patient/Condition.read"] });
		expect(clock.sleeps).toEqual([30_000]);
		expect(tally.counts.get("Condition")).toBe(1);
	});

	it("stops following a next link that repeats the page, or leaves athena's FHIR base", async () => {
		const athena = scriptedAthena({
			Condition: [
				() => searchset([resource("Condition", 1)], next("Condition", 2)),
				() => searchset([resource("Condition", 2)], next("Condition", 2)),
			],
			Observation: [
				() => searchset([resource("Observation", 1)], "https://elsewhere.example/fhir/r4/Observation?cursor=2"),
			],
		});
		const { outcomes, issue, tally } = await run(athena, {
			scopes: ["patient/Condition.read", "patient/Observation.read"],
		});
		expect(outcomes.slice(0, -1).map((o) => issue(o).expression)).toEqual([["Condition"], ["Observation"]]);
		expect(tally.counts.get("Condition")).toBe(2);
		expect(athena.targets.filter((t) => t.path === "/Condition")).toHaveLength(2);
		expect(athena.targets.some((t) => t.query.includes("elsewhere"))).toBe(false);
	});

	it("follows a page whose links come after its entries once it has arrived", async () => {
		const entriesFirst = (n: number, following?: string) =>
			json({
				resourceType: "Bundle",
				type: "searchset",
				entry: [{ resource: resource("Condition", n) }],
				link: following ? [{ relation: "next", url: following }] : [],
			});
		const athena = scriptedAthena({
			Condition: [() => entriesFirst(1, next("Condition", 2)), () => entriesFirst(2)],
		});
		const { tally, last } = await run(athena, { scopes: ["patient/Condition.read"] });
		expect(tally.counts.get("Condition")).toBe(2);
		expect(last.severity).toBe("information");
	});

	it("says when the Patient could not be read, and still exports the rest", async () => {
		const athena = scriptedAthena({ Condition: [() => searchset([resource("Condition", 1)])] });
		const { resources, issue } = await run(athena, {
			patient: undefined,
			scopes: ["patient/Patient.read", "patient/Condition.read"],
		});
		expect(issue(resources[0] as Json)).toMatchObject({ expression: ["Patient"], severity: "error" });
		expect(resources[1]?.id).toBe("a-80000.condition-1");
	});
});

describe("export body", () => {
	async function* pagesOf(...pages: Json[][]) {
		yield* pages;
	}

	it("writes NDJSON: one resource a line, athena's URLs rewritten", async () => {
		const body = exportBody(
			onProxy(
				pagesOf(
					[{ resourceType: "Patient", id: "p" }],
					[{ resourceType: "Condition", id: "c", url: `${FHIR_BASE}/Binary/b` }],
				),
			),
			{
				format: "ndjson",
				timestamp: new Date(T0).toISOString(),
				requestId: "r",
			},
		);
		const lines = (await new Response(body).text()).split("\n");
		expect(lines).toEqual([
			'{"resourceType":"Patient","id":"p"}',
			`{"resourceType":"Condition","id":"c","url":"${PROXY_BASE}/Binary/b"}`,
			"",
		]);
	});

	it("errors the stream on a failure nobody planned for, so the download fails rather than looking whole", async () => {
		async function* failing(): AsyncGenerator<Json[]> {
			yield [{ resourceType: "Patient", id: "p" }];
			throw new Error("boom");
		}
		const body = exportBody(onProxy(failing()), {
			format: "bundle",
			timestamp: new Date(T0).toISOString(),
			requestId: "r",
		});
		await expect(new Response(body).text()).rejects.toThrow("boom");
	});

	it("stops reading when the client goes away", async () => {
		let finished = false;
		async function* endless(): AsyncGenerator<Json[]> {
			try {
				for (let i = 0; ; i++) yield [{ resourceType: "Observation", id: `o${i}` }];
			} finally {
				finished = true;
			}
		}
		const reader = exportBody(onProxy(endless()), {
			format: "bundle",
			timestamp: new Date(T0).toISOString(),
			requestId: "r",
		}).getReader();
		await reader.read();
		await reader.read();
		await reader.cancel();
		expect(finished).toBe(true);
	});
});
