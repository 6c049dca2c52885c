import { beforeEach, describe, expect, it } from "vitest";
import { patientRecord } from "../src/data";
import { largeSearchsetEntries } from "../src/stream";
import * as USERS from "../src/users";
import { call, FHIR_BASE, fhirGet, freshSandbox, JANE, LILY, login, ROWAN, SCOPE, type TestClientKey } from "./helpers";

/*
 * The sandbox's FHIR API against athena's recorded preview behaviour
 * (shared/athena-observed.md "FHIR R4, as recorded"). JANE is the preview
 * login's own record: Jake Medlock, a-80000.E-14545.
 */

interface Resource {
	resourceType: string;
	id: string;
	[field: string]: unknown;
}

interface Bundle {
	resourceType: string;
	type: string;
	timestamp?: string;
	total?: number;
	link: Array<{ relation: string; url: string }>;
	entry?: Array<{ fullUrl: string; resource: Resource }>;
}

interface Outcome {
	resourceType: "OperationOutcome";
	issue: Array<{
		severity: string;
		code: string;
		details?: { text?: string };
		expression?: string[];
		diagnostics?: string;
	}>;
}

const FHIR_JSON = "application/fhir+json; charset=utf-8";
/** Every type the charts hold, in SMART v1 form: the tests that need more than SCOPE use this. */
const WIDE_SCOPE = `${SCOPE} ${[
	"Encounter",
	"DiagnosticReport",
	"Immunization",
	"Procedure",
	"Goal",
	"Device",
	"CarePlan",
	"CareTeam",
	"Organization",
	"Practitioner",
	"Location",
]
	.map((type) => `patient/${type}.read`)
	.join(" ")}`;
const JAKE_SECOND_PRACTICE = USERS.JAKE_SECOND_PRACTICE;

async function bundle(response: Response): Promise<Bundle> {
	expect(response.status).toBe(200);
	expect(response.headers.get("Content-Type")).toBe(FHIR_JSON);
	return (await response.json()) as Bundle;
}

const resources = (b: Bundle) => (b.entry ?? []).map((e) => e.resource);

/** Every page of a search, following `next` links only. */
async function allPages(token: string, first: string): Promise<Bundle[]> {
	const pages: Bundle[] = [];
	for (let url: string | undefined = first; url; ) {
		const page = await bundle(await fhirGet(url, token));
		pages.push(page);
		url = page.link.find((l) => l.relation === "next")?.url;
		expect(pages.length).toBeLessThan(200);
	}
	return pages;
}

describe("FHIR R4 as athena's preview answers", () => {
	let key: TestClientKey;
	let jake: string;
	beforeEach(async () => {
		key = await freshSandbox();
		jake = (await login(key, JANE, WIDE_SCOPE)).access_token ?? "";
	});

	describe("authentication, ah-practice and errors", () => {
		it("answers 401 with WWW-Authenticate without a token or with a made-up one", async () => {
			const none = await fhirGet(`/Patient/${JANE.id}`, undefined);
			expect(none.status).toBe(401);
			expect(none.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
			const bad = await fhirGet(`/Patient/${JANE.id}`, "made-up");
			expect(bad.status).toBe(401);
			expect(bad.headers.get("WWW-Authenticate")).toContain('error="invalid_token"');
		});

		it("serves metadata without auth", async () => {
			const metadata = await call("/fhir/r4/metadata");
			expect(metadata.status).toBe(200);
			expect(((await metadata.json()) as { resourceType: string }).resourceType).toBe("CapabilityStatement");
		});

		it("answers searches without ah-practice, and refuses one naming another practice", async () => {
			const without = await bundle(await fhirGet(`/Condition?patient=${JANE.id}`, jake));
			expect(resources(without).length).toBeGreaterThan(0);
			const own = await bundle(await fhirGet(`/Condition?patient=${JANE.id}&ah-practice=${JANE.practice}`, jake));
			expect(resources(own)).toEqual(resources(without));
			const other = await fhirGet(`/Condition?patient=${JANE.id}&ah-practice=${ROWAN.practice}`, jake);
			expect(other.status).toBe(400);
			expect(((await other.json()) as Outcome).issue[0]).toMatchObject({
				severity: "fatal",
				expression: ["ah-practice"],
			});
		});

		it("refuses MedicationRequest without intent with athena's exact 403, and answers intent=order,plan", async () => {
			const response = await fhirGet(`/MedicationRequest?patient=${JANE.id}`, jake);
			expect(response.status).toBe(403);
			expect(response.headers.get("Content-Type")).toBe(FHIR_JSON);
			expect(response.headers.get("X-Athena-Request-Id")).toMatch(/.+/);
			expect(response.headers.get("X-Athenanet-Practice-Id")).toBe("80000");
			expect(await response.json()).toEqual({
				resourceType: "OperationOutcome",
				issue: [
					{
						severity: "fatal",
						code: "forbidden",
						details: {
							text: "The search query could not be performed because one of the required parameter combinations [[patient,intent],[_id]] was not provided.",
						},
						expression: ["MedicationRequest"],
					},
				],
			});
			const both = resources(
				await bundle(await fhirGet(`/MedicationRequest?patient=${JANE.id}&intent=order,plan`, jake)),
			);
			expect(new Set(both.map((r) => r.intent))).toEqual(new Set(["order", "plan"]));
			const byId = await fhirGet(`/MedicationRequest?_id=${both[0]?.id}`, jake);
			expect(resources(await bundle(byId)).map((r) => r.id)).toEqual([both[0]?.id]);
		});

		it("refuses athena's other missing parameter combinations in the same shape", async () => {
			const cases: Array<[string, string]> = [
				["/AllergyIntolerance", "[[patient]]"],
				["/Patient?gender=male", "[[_id],[identifier],[name],[family,birthdate]]"],
				["/Patient?family=Medlock", "[[_id],[identifier],[name],[family,birthdate]]"],
				["/Provenance", "[[target]]"],
				["/Observation?category=laboratory", "[[patient],[subject],[_id]]"],
			];
			for (const [path, combinations] of cases) {
				const response = await fhirGet(path, jake);
				expect(response.status, path).toBe(403);
				const body = (await response.json()) as Outcome;
				expect(body.issue).toEqual([
					{
						severity: "fatal",
						code: "forbidden",
						details: {
							text: `The search query could not be performed because one of the required parameter combinations ${combinations} was not provided.`,
						},
						expression: [path.slice(1).split("?")[0]],
					},
				]);
			}
			const allowed = [
				`/AllergyIntolerance?patient=${JANE.id}`,
				"/Patient?family=Medlock&birthdate=1952-01-28",
				"/Patient?identifier=http://hl7.org/fhir/sid/us-ssn|999-52-0128",
				"/Patient?name=jake",
				`/Provenance?target=Patient/${JANE.id}`,
			];
			for (const path of allowed) {
				const found = resources(await bundle(await fhirGet(path, jake)));
				expect(found.length, path).toBeGreaterThan(0);
			}
		});

		it("refuses a type outside the token's scopes with athena's Invalid Token Scope, for reads and searches", async () => {
			const narrow = (await login(key, JANE, SCOPE)).access_token ?? "";
			const serviceRequest = patientRecord(JANE.id)?.byType.get("ServiceRequest")?.[0]?.id;
			const read = await fhirGet(`/ServiceRequest/${serviceRequest}`, narrow);
			expect(read.status).toBe(403);
			expect(read.headers.get("X-Athenanet-Practice-Id")).toBe("80000");
			expect(await read.json()).toEqual({
				resourceType: "OperationOutcome",
				issue: [
					{
						severity: "fatal",
						code: "forbidden",
						details: { text: "Invalid Token Scope" },
						expression: ["ServiceRequest"],
					},
				],
			});
			const search = await fhirGet(`/Encounter?patient=${JANE.id}`, narrow);
			expect(search.status).toBe(403);
			expect(((await search.json()) as Outcome).issue[0]).toMatchObject({
				details: { text: "Invalid Token Scope" },
				expression: ["Encounter"],
			});
			// SCOPE grants Observation in the v2 form (.rs) and Condition in the v1 form (.read).
			expect((await fhirGet(`/Observation?patient=${JANE.id}&_count=1`, narrow)).status).toBe(200);
			expect((await fhirGet(`/Condition?patient=${JANE.id}&_count=1`, narrow)).status).toBe(200);
		});

		it("never returns another patient's data to a token", async () => {
			const rowan = (await login(key, ROWAN)).access_token ?? "";
			expect((await fhirGet(`/Patient/${ROWAN.id}`, jake)).status).toBe(403);
			expect((await fhirGet(`/Patient/${JANE.id}`, rowan)).status).toBe(403);
			expect((await fhirGet(`/Observation?patient=${ROWAN.id}`, jake)).status).toBe(403);
			const rowanObs = resources(await bundle(await fhirGet(`/Observation?patient=${ROWAN.id}&_count=1`, rowan)));
			expect(rowanObs[0]?.id).toMatch(/^a-195900\./);
			expect((await fhirGet(`/Observation/${rowanObs[0]?.id}`, jake)).status).toBe(403);
			// Jake's own record at the other practice is another patient to this token too.
			expect((await fhirGet(`/Patient/${JAKE_SECOND_PRACTICE.id}`, jake)).status).toBe(403);
			expect(resources(await bundle(await fhirGet(`/Patient?_id=${ROWAN.id}`, jake)))).toHaveLength(0);
		});
	});

	describe("headers", () => {
		const athenaHeaders = (response: Response) => {
			expect(response.headers.get("Cache-Control")).toBe("no-cache, no-store, must-revalidate");
			expect(response.headers.get("Pragma")).toBe("no-cache");
			expect(response.headers.get("Expires")).toBe("0");
			expect(response.headers.get("Strict-Transport-Security")).toMatch(/^max-age=\d+/);
			expect(response.headers.get("X-Request-Id")).toMatch(/^rrt-[0-9a-f]+/);
			expect(response.headers.get("Ratelimit-Limit")).toBe("500");
			expect(Number(response.headers.get("Ratelimit-Remaining"))).toBeLessThan(500);
			expect(response.headers.get("Ratelimit-Reset")).toBe("1");
			expect(response.headers.get("X-Ratelimit-Limit")).toBe("500");
			expect(response.headers.get("X-Ratelimit-Remaining")).toMatch(/^\d+$/);
		};

		it("puts athena's headers on reads, searches and errors, Location on reads and searches", async () => {
			const read = await fhirGet(`/Patient/${JANE.id}`, jake);
			expect(read.status).toBe(200);
			athenaHeaders(read);
			expect(read.headers.get("Location")).toBe(`${FHIR_BASE}/Patient/${JANE.id}`);
			expect(read.headers.get("X-Athena-Request-Id")).toBeNull();

			const search = await fhirGet(`/Condition?patient=${JANE.id}`, jake);
			athenaHeaders(search);
			expect(search.headers.get("Location")).toBe(`${FHIR_BASE}/Condition`);

			const again = await fhirGet(`/Patient/${JANE.id}`, jake);
			expect(again.headers.get("X-Request-Id")).not.toBe(read.headers.get("X-Request-Id"));

			const missing = await fhirGet("/Condition/a-80000.problem-1", jake);
			expect(missing.status).toBe(404);
			athenaHeaders(missing);
			expect(missing.headers.get("X-Athena-Request-Id")).toMatch(/.+/);
			expect(missing.headers.get("X-Athenanet-Practice-Id")).toBe("80000");

			const unauthenticated = await fhirGet(`/Patient/${JANE.id}`, undefined);
			athenaHeaders(unauthenticated);
			expect(unauthenticated.headers.get("X-Athena-Request-Id")).toMatch(/.+/);
		});
	});

	describe("paging", () => {
		it("pages by cursor: timestamp, no total, only self and next, next repeating the query with the next page's first id", async () => {
			const raw = patientRecord(JANE.id)?.byType.get("Observation") ?? [];
			const first = `${FHIR_BASE}/Observation?patient=${JANE.id}&_count=50`;
			const pages = await allPages(jake, first);
			const seen = pages.flatMap((p) => resources(p).map((r) => r.id));
			expect(seen).toHaveLength(491);
			expect(new Set(seen).size).toBe(491);
			// 541 matches (491 listed, 50 awaiting results) at 50 a page.
			expect(pages).toHaveLength(11);
			pages.forEach((page, i) => {
				expect(page).toMatchObject({ resourceType: "Bundle", type: "searchset" });
				expect(page.total).toBeUndefined();
				expect(page.timestamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
				const next = page.link.find((l) => l.relation === "next");
				expect(page.link.map((l) => l.relation)).toEqual(i < pages.length - 1 ? ["self", "next"] : ["self"]);
				if (next) {
					expect(next.url).toBe(`${first}&cursor=${raw[(i + 1) * 50]?.id}`);
				}
				for (const entry of page.entry ?? []) {
					expect(entry.fullUrl).toBe(`${FHIR_BASE}/Observation/${entry.resource.id}`);
				}
			});
		});

		it("answers an empty page that still has a next link where a page holds only results not yet in", async () => {
			// The main chart's Observations 201-250 are lab orders awaiting results (status registered):
			// counted toward their page and left out of it, as athena's empty pages with a next link.
			const pages = await allPages(jake, `${FHIR_BASE}/Observation?patient=${JANE.id}&_count=50`);
			expect(pages[4]?.entry).toBeUndefined();
			expect(pages[4]?.link.find((l) => l.relation === "next")).toBeDefined();
			expect(pages.filter((p) => p.entry === undefined)).toHaveLength(1);

			const byTwenty = await allPages(jake, `${FHIR_BASE}/Observation?patient=${JANE.id}`);
			expect(byTwenty.map((p) => resources(p).length).slice(9, 13)).toEqual([20, 0, 0, 10]);
			expect(byTwenty.flatMap(resources)).toHaveLength(491);
		});

		it("defaults to 20 a page, honours _count up to 100, and refuses a cursor it did not hand out", async () => {
			const byDefault = await bundle(await fhirGet(`/Observation?patient=${JANE.id}&category=laboratory`, jake));
			expect(resources(byDefault)).toHaveLength(20);
			const next = byDefault.link.find((l) => l.relation === "next")?.url ?? "";
			expect(next).not.toContain("_count");
			expect(next).toMatch(/&cursor=a-80000\.resultamb-\d+$/);
			const capped = await bundle(
				await fhirGet(`/Observation?patient=${JANE.id}&category=laboratory&_count=500`, jake),
			);
			expect(resources(capped)).toHaveLength(100);
			const forged = await fhirGet(`/Observation?patient=${JANE.id}&cursor=a-80000.resultamb-1`, jake);
			expect(forged.status).toBe(400);
			expect(((await forged.json()) as Outcome).issue[0]?.expression).toEqual(["cursor"]);
		});

		it("filters by category, code and date before paging", async () => {
			const labs = resources(
				await bundle(
					await fhirGet(`/Observation?patient=${JANE.id}&category=laboratory&date=ge2024-01-01&_count=100`, jake),
				),
			);
			expect(labs.length).toBeGreaterThan(0);
			for (const lab of labs) {
				expect(JSON.stringify(lab.category)).toContain('"laboratory"');
				expect(String(lab.effectiveDateTime) >= "2024-01-01").toBe(true);
			}
			const weights = resources(
				await bundle(await fhirGet(`/Observation?patient=${JANE.id}&code=http://loinc.org|29463-7`, jake)),
			);
			expect(weights).toHaveLength(10);
		});
	});

	describe("encounters", () => {
		it("leaves cancelled and entered-in-error encounters out of searches, yet reads them directly", async () => {
			const listed = resources(await bundle(await fhirGet(`/Encounter?patient=${JANE.id}&_count=50`, jake)));
			expect(listed).toHaveLength(12);
			expect(new Set(listed.map((e) => e.status))).toEqual(new Set(["finished"]));
			const hidden = (patientRecord(JANE.id)?.byType.get("Encounter") ?? []).filter((e) => e.status !== "finished");
			expect(hidden.map((e) => e.status).sort()).toEqual(["cancelled", "entered-in-error"]);
			for (const encounter of hidden) {
				const read = await fhirGet(`/Encounter/${encounter.id}`, jake);
				expect(read.status).toBe(200);
				expect(((await read.json()) as Resource).status).toBe(encounter.status);
			}
		});
	});

	describe("Binary and large responses", () => {
		it("reads a Binary raw and as FHIR JSON", async () => {
			const [binaryId] = [...(patientRecord(JANE.id)?.binaries.keys() ?? [])];
			const raw = await fhirGet(`/Binary/${binaryId}`, jake);
			expect(raw.headers.get("Content-Type")).toBe("application/pdf");
			expect(raw.headers.get("Location")).toBe(`${FHIR_BASE}/Binary/${binaryId}`);
			expect(new TextDecoder().decode((await raw.arrayBuffer()).slice(0, 5))).toBe("%PDF-");
			const asFhir = await fhirGet(`/Binary/${binaryId}`, jake, { Accept: "application/fhir+json" });
			const binary = (await asFhir.json()) as { resourceType: string; contentType: string; data: string };
			expect(binary).toMatchObject({ resourceType: "Binary", contentType: "application/pdf" });
			expect(atob(binary.data).startsWith("%PDF-")).toBe(true);
			const rowan = (await login(key, ROWAN)).access_token ?? "";
			expect((await fhirGet(`/Binary/${binaryId}`, rowan)).status).toBe(403);
		});

		it("streams a valid searchset of exactly the requested size on its own base, whose next link continues it", async () => {
			const size = 3_000_000;
			const response = await fhirGet(`/Observation?patient=${JANE.id}&_sandbox_bytes=${size}`, jake);
			expect(response.status).toBe(200);
			const reader = response.body?.getReader();
			if (!reader) throw new Error("no body");
			const chunks: Uint8Array[] = [];
			for (let read = await reader.read(); !read.done; read = await reader.read()) chunks.push(read.value);
			expect(chunks.length).toBeGreaterThan(10);
			const bytes = new Uint8Array(await new Blob(chunks).arrayBuffer());
			expect(bytes.byteLength).toBe(size);
			const page = JSON.parse(new TextDecoder().decode(bytes)) as Bundle;
			expect(page.type).toBe("searchset");
			expect(page.timestamp).toMatch(/Z$/);
			const entries = page.entry ?? [];
			expect(entries.length).toBeGreaterThan(1000);
			expect(entries.every((e) => e.fullUrl === `${FHIR_BASE}/Observation/${e.resource.id}`)).toBe(true);
			expect(JSON.stringify(entries[0]?.resource.extension)).toContain("Organization/a-1.Practice-80000");
			const next = page.link.find((l) => l.relation === "next")?.url ?? "";
			const after = Number(entries.at(-1)?.resource.id.split("-").pop()) + 1;
			expect(next).toBe(
				`${FHIR_BASE}/Observation?patient=${JANE.id}&_sandbox_bytes=${size}&cursor=a-80000.bulkvitals-${String(after).padStart(10, "0")}`,
			);
			const following = await fhirGet(next.replace(String(size), "100000"), jake);
			const continued = JSON.parse(await following.text()) as Bundle;
			expect(continued.entry?.[0]?.resource.id).toBe(`a-80000.bulkvitals-${String(after).padStart(10, "0")}`);
		});

		it("carries over 100,000 resources in a 100 MiB page: the large patient benchmarks read", () => {
			const totalBytes = 100 * 1024 * 1024;
			const search = `${FHIR_BASE}/Observation?patient=${JANE.id}&_sandbox_bytes=${totalBytes}`;
			const entries = largeSearchsetEntries({
				fhirBase: FHIR_BASE,
				patientId: JANE.id,
				practiceId: JANE.practiceId,
				totalBytes,
				selfUrl: search,
				nextUrl: (cursor) => `${search}&cursor=${cursor}`,
				timestamp: new Date(0).toISOString(),
				first: 0,
			});
			expect(entries).toBeGreaterThanOrEqual(100_000);
		});

		it("counts a very large stream without holding it", async () => {
			const size = 64 * 1024 * 1024;
			const response = await fhirGet(`/Observation?patient=${JANE.id}&_sandbox_bytes=${size}`, jake);
			const reader = response.body?.getReader();
			if (!reader) throw new Error("no body");
			let bytes = 0;
			let last = new Uint8Array(0);
			for (let read = await reader.read(); !read.done; read = await reader.read()) {
				bytes += read.value.byteLength;
				last = read.value;
			}
			expect(bytes).toBe(size);
			expect(new TextDecoder().decode(last.slice(-2))).toBe("]}");
		}, 60_000);

		it("labels the large stream application/octet-stream when asked, and nothing else", async () => {
			const query = `/Observation?patient=${JANE.id}&_sandbox_bytes=100000`;
			const raw = await fhirGet(`${query}&_sandbox_content_type=application/octet-stream`, jake);
			expect(raw.status).toBe(200);
			expect(raw.headers.get("Content-Type")).toBe("application/octet-stream");
			expect((await raw.arrayBuffer()).byteLength).toBe(100000);
			const other = await fhirGet(`${query}&_sandbox_content_type=text/html`, jake);
			expect(other.status).toBe(400);
			await other.body?.cancel();
		});
	});

	describe("every record a login can open", () => {
		it("serves each record its own chart of the same shape", async () => {
			const records = [
				{ user: JAKE_SECOND_PRACTICE, given: "Jake", birthDate: "1952-01-28" },
				{ user: LILY, given: "Lily", birthDate: "2017-03-14" },
				{ user: ROWAN, given: "Rowan", birthDate: "1979-11-03" },
			];
			for (const { user, given, birthDate } of records) {
				const token = (await login(key, user, WIDE_SCOPE)).access_token ?? "";
				const patient = (await (await fhirGet(`/Patient/${user.id}`, token)).json()) as Resource;
				expect(patient).toMatchObject({ id: user.id, birthDate });
				expect(JSON.stringify(patient.name)).toContain(given);
				for (const type of ["Condition", "Observation", "Encounter", "DocumentReference", "Immunization"]) {
					const found = resources(await bundle(await fhirGet(`/${type}?patient=${user.id}&_count=5`, token)));
					expect(found.length, `${user.id} ${type}`).toBeGreaterThan(0);
					for (const resource of found) {
						expect(resource.id.startsWith(`a-${user.practiceId}.`)).toBe(true);
						expect(JSON.stringify(resource.extension)).toContain(`Organization/a-1.Practice-${user.practiceId}`);
					}
				}
			}
		});
	});
});
