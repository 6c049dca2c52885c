import { beforeAll, describe, expect, it } from "vitest";
import { signInAtSandbox } from "../sign-in-script";
import { compartment, type FhirResource, type PatientRecord, patientIds, patientRecord } from "../src/data";
import { resourceFilter, searchPage } from "../src/fhir-search";
import { AVERY, JAKE, LARGE_RECORD, LARGE_RECORD_RESOURCES } from "../src/users";
import {
	authorizeUrl,
	call,
	challengeFor,
	exchangeCode,
	FHIR_BASE,
	fhirGet,
	freshSandbox,
	login,
	newVerifier,
	ORIGIN,
	type TestClientKey,
	type TokenBody,
} from "./helpers";

/*
 * The large record (users.ts LARGE_RECORD): over 100,000 resources, almost
 * all Observations made by index on demand, read through the sandbox's
 * ordinary searches: cursor paging, `_count` up to 100, no total. The walks
 * go through real requests to the sandbox in this isolate.
 */

interface Bundle {
	resourceType: string;
	type: string;
	total?: number;
	link: Array<{ relation: string; url: string }>;
	entry?: Array<{ fullUrl: string; resource: FhirResource }>;
}

const PATIENT = LARGE_RECORD.patient;
const SEARCH_TYPES = Object.keys(LARGE_RECORD.searchCounts) as Array<keyof typeof LARGE_RECORD.searchCounts>;
/** Reads of every type an export searches, plus the Patient. */
const SCOPE = `openid fhirUser launch/patient patient/Patient.read ${SEARCH_TYPES.map((t) => `patient/${t}.read`).join(" ")}`;
const ALL_INTENTS = "proposal,plan,order,original-order,reflex-order,filler-order,instance-order,option";

interface Walk {
	ids: string[];
	resources: number;
	pages: number;
	bytes: number;
	cursors: string[];
}

/**
 * Follows `next` links from `first` to the last page (or `maxPages`), checking each page
 * is a searchset with no total, at most 100 entries, and a next link whose
 * cursor is the next page's first id (unless that page's first were unlisted).
 */
async function walk(
	token: string,
	first: string,
	check?: (resource: FhirResource) => void,
	maxPages = Number.POSITIVE_INFINITY,
): Promise<Walk> {
	const result: Walk = { ids: [], resources: 0, pages: 0, bytes: 0, cursors: [] };
	for (let url: string | undefined = first; url && result.pages < maxPages; ) {
		const response = await fhirGet(url, token);
		const text = await response.text();
		if (response.status !== 200) throw new Error(`${url} answered ${response.status}: ${text}`);
		result.bytes += text.length;
		result.pages++;
		const page = JSON.parse(text) as Bundle;
		if (page.type !== "searchset" || page.total !== undefined || (page.entry?.length ?? 0) > 100) {
			throw new Error(`page ${result.pages} is not an athena searchset page`);
		}
		for (const entry of page.entry ?? []) {
			result.ids.push(entry.resource.id);
			check?.(entry.resource);
		}
		url = page.link.find((l) => l.relation === "next")?.url;
		const cursor = url === undefined ? undefined : new URL(url).searchParams.get("cursor");
		if (cursor) result.cursors.push(cursor);
	}
	result.resources = result.ids.length;
	return result;
}

/** Every page of the record's Observation search with this filter, 100 a page, made in this isolate. */
function localPages(record: PatientRecord, matches: (resource: FhirResource) => boolean): FhirResource[][] {
	const pages: FhirResource[][] = [];
	let cursor: string | undefined;
	do {
		const page = searchPage(compartment(record, "Observation"), {
			count: 100,
			cursor,
			unlisted: record.unlisted,
			matches,
		});
		if (!page.ok) throw new Error(`cursor ${cursor} refused`);
		pages.push(page.resources);
		cursor = page.nextCursor;
	} while (cursor !== undefined);
	return pages;
}

const categoryOf = (resource: FhirResource) =>
	(resource.category as Array<{ coding: Array<{ code: string }> }> | undefined)?.[0]?.coding[0]?.code;

describe("the large record", () => {
	let key: TestClientKey;
	let avery: string;
	let jake: string;
	/** The whole Observation search, walked once and shared by the tests that compare against it. */
	let observations: Walk;

	beforeAll(async () => {
		key = await freshSandbox();
		avery = (await login(key, AVERY, SCOPE)).access_token ?? "";
		jake = (await login(key, JAKE, SCOPE)).access_token ?? "";
		const started = performance.now();
		observations = await walk(avery, `${FHIR_BASE}/Observation?patient=${PATIENT}&_count=100`, (resource) => {
			if ((resource.subject as { reference?: string }).reference !== `Patient/${PATIENT}`) {
				throw new Error(`${resource.id} is not the patient's`);
			}
		});
		console.log(
			`large record: ${observations.resources} Observations in ${observations.pages} pages, ` +
				`${observations.bytes} bytes, ${Math.round(performance.now() - started)} ms`,
		);
	}, 120_000);

	it("holds over 100,000 resources, exported from users.ts", () => {
		expect(LARGE_RECORD_RESOURCES).toBeGreaterThanOrEqual(100_000);
		expect(LARGE_RECORD.searchCounts.Observation).toBeGreaterThan(LARGE_RECORD.generatedObservations);
		expect(patientIds()).toContain(PATIENT);
	});

	it("pages through exactly its Observations, 100 a page, each once and each the patient's, with no total", () => {
		expect(observations.resources).toBe(LARGE_RECORD.searchCounts.Observation);
		expect(new Set(observations.ids).size).toBe(observations.resources);
		expect(observations.pages).toBe(Math.ceil((observations.resources + 50) / 100));
		for (const cursor of observations.cursors) expect(cursor).toMatch(/^a-80000\.(vitals|resultamb)-\d+$/);
	});

	it("answers every search of the record with exactly LARGE_RECORD's counts", async () => {
		const counts: Record<string, number> = { Observation: observations.resources };
		for (const type of SEARCH_TYPES.filter((t) => t !== "Observation")) {
			const intent = type === "MedicationRequest" ? `&intent=${ALL_INTENTS}` : "";
			counts[type] = (await walk(avery, `${FHIR_BASE}/${type}?patient=${PATIENT}${intent}&_count=100`)).resources;
		}
		expect(counts).toEqual(LARGE_RECORD.searchCounts);
		expect((await fhirGet(`/Patient/${PATIENT}`, avery)).status).toBe(200);
	});

	it("splits its Observations exactly by category", async () => {
		// The split is walked in this isolate through the pieces the search route puts together (a
		// walk over requests costs a second per hundred pages); the route's own pages are compared below.
		const record = patientRecord(PATIENT);
		if (!record) throw new Error("no large chart");
		const split: Record<string, number> = {};
		const ids = new Set<string>();
		for (const category of Object.keys(LARGE_RECORD.observationCategories)) {
			const matches = resourceFilter("Observation", [["category", category]]);
			const pages = localPages(record, matches);
			const found = pages.flat();
			expect(found.filter((resource) => categoryOf(resource) !== category)).toEqual([]);
			for (const resource of found) ids.add(resource.id);
			split[category] = found.length;
		}
		expect(split).toEqual(LARGE_RECORD.observationCategories);
		expect(ids).toEqual(new Set(observations.ids));

		const vitals = localPages(record, resourceFilter("Observation", [["category", "vital-signs"]]));
		const served = await walk(
			avery,
			`${FHIR_BASE}/Observation?patient=${PATIENT}&category=vital-signs&_count=100`,
			undefined,
			3,
		);
		expect(served.ids).toEqual(vitals.slice(0, 3).flatMap((page) => page.map((r) => r.id)));
		const lastCursor = vitals.at(-1)?.[0]?.id;
		const last = await walk(
			avery,
			`${FHIR_BASE}/Observation?patient=${PATIENT}&category=vital-signs&_count=100&cursor=${lastCursor}`,
		);
		expect(last.ids).toEqual(vitals.at(-1)?.map((r) => r.id));
	});

	it("filters the generated Observations by code, status and date as it filters any chart", async () => {
		const record = patientRecord(PATIENT);
		if (!record) throw new Error("no large chart");
		const all = compartment(record, "Observation");
		for (const query of [
			"code=http://loinc.org|8867-4&status=final",
			"date=ge2024-06-01&date=lt2024-06-15",
			"status=entered-in-error&category=laboratory",
		]) {
			const params = [...new URLSearchParams(query)];
			const matches = resourceFilter("Observation", params);
			const expected: string[] = [];
			for (let i = 0; i < all.length; i++) {
				const resource = all.at(i);
				if (resource && matches(resource) && !record.unlisted.has(resource.id)) expected.push(resource.id);
			}
			expect(expected.length, query).toBeGreaterThan(100);
			const found = await walk(avery, `${FHIR_BASE}/Observation?patient=${PATIENT}&${query}&_count=100`);
			expect(found.ids, query).toEqual(expected);
		}
	});

	it("reads a generated Observation by id and finds it by _id, the same as its search returned", async () => {
		const [first, , third] = observations.ids.slice(-3);
		const read = await fhirGet(`/Observation/${first}`, avery);
		expect(read.status).toBe(200);
		expect(read.headers.get("Location")).toBe(`${FHIR_BASE}/Observation/${first}`);
		const resource = (await read.json()) as FhirResource;
		expect(resource).toMatchObject({ id: first, subject: { reference: `Patient/${PATIENT}` } });
		const byId = (await (
			await fhirGet(`/Observation?patient=${PATIENT}&_id=${third},${first}`, avery)
		).json()) as Bundle;
		expect(byId.entry?.map((e) => e.resource.id)).toEqual([first, third]);
		expect(byId.entry?.[0]?.resource).toEqual(resource);
		expect((await fhirGet("/Observation/a-80000.vitals-9999999", avery)).status).toBe(404);
	});

	it("refuses a cursor from another patient's search, one it never handed out, and one outside the filter", async () => {
		const jakeFirst = (await (await fhirGet(`/Observation?patient=${JAKE.id}&_count=100`, jake)).json()) as Bundle;
		const jakeCursor = new URL(jakeFirst.link.find((l) => l.relation === "next")?.url ?? "").searchParams.get("cursor");
		const averyCursor = observations.cursors.at(-1);
		const vitalCursor = observations.cursors.find((c) => c.includes(".vitals-"));
		const refused = [
			fhirGet(`/Observation?patient=${PATIENT}&cursor=${jakeCursor}`, avery),
			fhirGet(`/Observation?patient=${JAKE.id}&cursor=${averyCursor}`, jake),
			fhirGet(`/Observation?patient=${PATIENT}&cursor=a-80000.vitals-1110000`, avery),
			fhirGet(`/Observation?patient=${PATIENT}&cursor=a-80000.resultamb-1000000`, avery),
			fhirGet(`/Observation?patient=${PATIENT}&cursor=a-80000.vitals-01000000`, avery),
			fhirGet(`/Observation?patient=${PATIENT}&category=laboratory&cursor=${vitalCursor}`, avery),
		];
		for (const response of await Promise.all(refused)) expect(response.status).toBe(400);
		// Another patient may neither read a generated Observation nor search the record.
		expect((await fhirGet(`/Observation/${averyCursor}`, jake)).status).toBe(403);
		expect((await fhirGet(`/Observation?patient=${PATIENT}`, jake)).status).toBe(403);
	});

	it("leaves another patient's searches as they were: Jake's Observations are his chart's, every one", async () => {
		const chart = patientRecord(JAKE.id);
		expect(chart?.generatedObservations).toBeUndefined();
		const listed = (chart?.byType.get("Observation") ?? []).filter((r) => !chart?.unlisted.has(r.id)).map((r) => r.id);
		const found = await walk(jake, `${FHIR_BASE}/Observation?patient=${JAKE.id}&_count=100`);
		expect(found.resources).toBe(491);
		expect(found.ids).toEqual(listed);
	});

	it("makes each generated Observation the same every time, athena-shaped, with ids no other chart uses", () => {
		const generated = patientRecord(PATIENT)?.generatedObservations;
		if (!generated) throw new Error("no generated Observations");
		expect(generated.length).toBe(LARGE_RECORD.generatedObservations);
		for (const index of [0, 6, 7, 19, 20, 54_321, generated.length - 1]) {
			const resource = generated.at(index);
			expect(generated.at(index)).toEqual(resource);
			expect(resource?.id).toMatch(/^a-80000\.(vitals|resultamb)-\d+$/);
			expect(generated.indexOf(resource?.id ?? "")).toBe(index);
			expect(resource?.extension).toEqual([
				{
					url: "https://fhir.athena.io/StructureDefinition/ah-practice",
					valueReference: { reference: "Organization/a-1.Practice-80000" },
				},
				{
					url: "https://fhir.athena.io/StructureDefinition/ah-chart-sharing-group",
					valueReference: { reference: "Organization/a-80000.CSG-2" },
				},
			]);
		}
		expect(generated.at(generated.length)).toBeUndefined();
		for (const patient of patientIds()) {
			for (const list of patientRecord(patient)?.byType.values() ?? []) {
				for (const resource of list) expect(generated.indexOf(resource.id), resource.id).toBe(-1);
			}
		}
	});

	it("signs in through the scripted sign-in the worker's tests, bench and load run use, picking its one record", async () => {
		const verifier = newVerifier();
		const callback = await signInAtSandbox({
			authorizeUrl: new URL(await authorizeUrl({ code_challenge: await challengeFor(verifier) }), ORIGIN),
			login: AVERY,
			record: AVERY.id,
			fetch: (url, init) => call(url, init),
		});
		const tokens = (await (
			await exchangeCode(key, callback.searchParams.get("code") ?? "", verifier)
		).json()) as TokenBody;
		expect(tokens.patient).toBe(PATIENT);
	});
});
