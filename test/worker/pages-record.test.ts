import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { type FhirResource, patientRecord } from "../../sandbox/src/data";
import type { UpstreamRead } from "../../src/fhir/upstream-read";
import { type FhirTarget, readRecord } from "../../src/pages/read-record";
import { recordPage } from "../../src/pages/record";
import { browserFetch, CookieJar, PATIENTS, sandbox, signIn } from "./support/sign-in";

const html = { headers: { Accept: "text/html" } };
const JAKE = PATIENTS.jane;

async function recordPageOf(jar: CookieJar): Promise<{ status: number; headers: Headers; text: string }> {
	const response = await browserFetch(jar, "/record", html);
	return { status: response.status, headers: response.headers, text: await response.text() };
}

async function clearFaults(): Promise<void> {
	const response = await env.SANDBOX.fetch("http://localhost:3001/_sandbox/faults", { method: "DELETE" });
	if (!response.ok) throw new Error(`clearing faults: ${response.status}`);
}

/** One card of the page, by its heading's id. */
function card(page: string, id: string): string {
	const match = new RegExp(`<section class="card[^"]*" aria-labelledby="${id}">([\\s\\S]*?)</section>`).exec(page);
	if (!match?.[1]) throw new Error(`no ${id} card`);
	return match[1];
}

/** The visible text of each list entry or table row in some markup. */
function entries(markup: string, tag: "li" | "tr"): string[] {
	return [...markup.matchAll(new RegExp(`<${tag}>([\\s\\S]*?)</${tag}>`, "g"))].map((m) =>
		(m[1] ?? "")
			.replace(/<[^>]+>/g, " ")
			.replace(/\s+/g, " ")
			.trim(),
	);
}

function chart(patient: string, type: string): FhirResource[] {
	return patientRecord(patient)?.byType.get(type) ?? [];
}

const hasCode = (resource: FhirResource, code: string) =>
	((resource.code as { coding?: Array<{ code: string }> }).coding ?? []).some((c) => c.code === code);

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("the record page for athena's test patient (the sandbox's athena-shaped chart)", () => {
	it("names the patient by the current official name, with birth date and practice", async () => {
		const { jar } = await signIn();
		const page = await recordPageOf(jar);
		expect(page.status).toBe(200);
		expect(page.text).toContain("<h1>Jake Medlock</h1>");
		expect(page.text).not.toContain("John");
		expect(page.text).toContain('<time datetime="1952-01-28">Jan 28, 1952</time>');
		expect(page.text).toContain("Sandbox Practice 80000 (80000)");
		expect(page.text).not.toMatch(/eyJ|access_token|refresh_token|code_verifier|Bearer /);
		expect(page.text).not.toContain("<script");
	});

	it("lists each active problem once, and no past visit diagnosis, resolved or entered-in-error condition", async () => {
		const { jar } = await signIn();
		const problems = entries(card((await recordPageOf(jar)).text, "problems"), "li");
		expect(problems.map((p) => p.split(" · ")[0])).toEqual([
			"Essential (primary) hypertension",
			"Hyperlipidemia, unspecified",
			"Osteoarthritis of knee, unspecified",
			"Type 2 diabetes mellitus without complications",
			"Obesity, unspecified",
			"Personal history of nicotine dependence",
		]);
		// The chart holds 43 conditions: 35 visit diagnoses (hypertension at every visit), a resolved bronchitis, an asthma entered in error.
		expect(chart(JAKE.id, "Condition")).toHaveLength(43);
		for (const absent of ["Low back pain", "Vitamin D", "Acute bronchitis", "asthma", "respiratory"]) {
			expect(problems.join("\n")).not.toContain(absent);
		}
	});

	it("shows each lab test once with its latest value, never a result entered in error or cancelled", async () => {
		const { jar } = await signIn();
		const labs = card((await recordPageOf(jar)).text, "labs");
		expect(labs).toMatch(/<summary>Show all \d+ tests<\/summary>/);
		// What the page may show: lab results with a value, neither entered in error, cancelled nor pending.
		const name = (o: FhirResource) => {
			const code = o.code as { text?: string; coding?: Array<{ display?: string }> };
			return (code.text ?? code.coding?.[0]?.display ?? "").replace(/\s*\[[^\]]*\]/g, "");
		};
		const observations = chart(JAKE.id, "Observation").filter((o) => JSON.stringify(o.category).includes("laboratory"));
		const valid = observations.filter(
			(o) => ["final", "unknown"].includes(String(o.status)) && (o.valueQuantity || o.valueString),
		);
		expect(observations.filter((o) => o.status === "entered-in-error")).toHaveLength(89);
		const rows = [...labs.matchAll(/<th scope="row">([^<]+)[\s\S]*?<time datetime="([\d-]+)"/g)].map((m) => ({
			name: m[1] ?? "",
			day: m[2] ?? "",
		}));
		// One row per test, each test in the chart once.
		expect(rows.map((r) => r.name).sort()).toEqual([...new Set(valid.map(name))].sort());
		for (const row of rows) {
			const days = valid.filter((o) => name(o) === row.name).map((o) => String(o.effectiveDateTime).slice(0, 10));
			// The date shown is that of the newest result the page may show: an erroneous newer one never wins.
			expect(row.day, row.name).toBe(days.sort().at(-1));
		}
	});

	it("shows results as a patient reads them: weight in lb with kg (never grams), strings and text ranges as given", async () => {
		const { jar } = await signIn();
		const page = (await recordPageOf(jar)).text;
		const vitals = card(page, "vitals");
		const weights = chart(JAKE.id, "Observation")
			.filter((o) => hasCode(o, "29463-7") && o.valueQuantity)
			.sort((a, b) => String(b.effectiveDateTime).localeCompare(String(a.effectiveDateTime)));
		const newest = weights[0]?.valueQuantity as { value: number; unit: string } | undefined;
		expect(newest?.unit).toBe("g");
		const grams = newest?.value ?? Number.NaN;
		const pounds = grams / 453.59237;
		const kilograms = pounds / 2.20462262;
		expect(vitals).toContain(`<b>${Math.round(pounds * 10) / 10} lb (${Math.round(kilograms * 10) / 10} kg)</b>`);
		expect(page).not.toMatch(/<b>[\d.]+ g<\/b>/);
		expect(vitals).toMatch(/<b>\d+\/\d+ mmHg<\/b>/);
		expect(vitals).toMatch(/<b>[\d.]+ °F<\/b>/);
		const labs = card(page, "labs");
		expect(labs).toContain("<small>Range &gt;60 mL/min/1.73m2</small></th><td><b>&gt;60</b>");
		expect(labs).toMatch(/<b>(Negative|Trace|Positive)<\/b>/);
		for (const title of ["Blood pressure over time", "Weight over time", "Heart rate over time"]) {
			expect(vitals).toMatch(new RegExp(`<svg[^>]*role="img"[^>]*><title[^>]*>${title}</title>`));
		}
		expect(vitals).toMatch(/<polyline points="[\d., ]+"/);
	});

	it("links the released notes, says once how many are withheld, and shows no reaction as a bare code", async () => {
		const { jar } = await signIn();
		const page = (await recordPageOf(jar)).text;
		const notes = card(page, "notes");
		expect(notes.match(/href="\/record\/documents\/[^"]+"/g)).toHaveLength(8);
		expect(notes.match(/not released to the portal/g)).toEqual(["not released to the portal"]);
		expect(notes).toContain("14 notes are not released to the portal by your practice.");
		// Codeine's reaction is coded without a display or text in the chart.
		const bare = chart(JAKE.id, "AllergyIntolerance").flatMap((a) =>
			((a.reaction as Array<{ manifestation: Array<{ coding: Array<{ code: string; display?: string }> }> }>) ?? [])
				.flatMap((r) => r.manifestation.flatMap((m) => m.coding))
				.filter((c) => !c.display),
		);
		expect(bare.length).toBeGreaterThan(0);
		for (const code of bare) expect(page).not.toContain(code.code);
		expect(entries(card(page, "allergies"), "li")).toContain("Codeine");
	});

	it("shows each browser only its own patient's record", async () => {
		const jake = await signIn(JAKE);
		const rowan = await signIn(PATIENTS.second);
		const jakePage = (await recordPageOf(jake.jar)).text;
		const rowanPage = (await recordPageOf(rowan.jar)).text;
		expect(rowanPage).toContain("<h1>Rowan Fixturepatient</h1>");
		expect(rowanPage).toContain("Sandbox Practice 195900");
		expect(rowanPage).not.toContain("Medlock");
		expect(jakePage).not.toContain("Fixturepatient");
		expect(jakePage).not.toContain("195900");
	});

	it("sends a connected browser from / to the record, and a signed-out one from the record to /", async () => {
		const { jar } = await signIn();
		const home = await browserFetch(jar, "/", html);
		expect(home.status).toBe(302);
		expect(home.headers.get("Location")).toBe("/record");
		const stranger = await browserFetch(new CookieJar(), "/record", html);
		expect(stranger.status).toBe(302);
		expect(stranger.headers.get("Location")).toBe("/");
	});

	it("offers sign-out as a same-origin POST form that ends the session and athena's browser session", async () => {
		const { jar } = await signIn();
		expect((await recordPageOf(jar)).text).toMatch(/<form class="inline" method="post" action="\/logout">/);
		const out = await browserFetch(jar, "/logout", {
			method: "POST",
			headers: { Accept: "text/html", Origin: "http://localhost:3000" },
		});
		expect(out.status).toBe(303);
		const athena = new URL(out.headers.get("Location") ?? "");
		expect(`${athena.origin}${athena.pathname}`).toBe("http://localhost:3001/oauth2/v1/logout");
		expect((await browserFetch(jar, "/record", html)).headers.get("Location")).toBe("/");
	});
});

describe("a clinical note", () => {
	function notesOf(patient: string): { hostile: FhirResource; withheld: FhirResource } {
		const notes = chart(patient, "DocumentReference");
		const data = (n: FhirResource) => (n.content as Array<{ attachment: { data?: string } }>)[0]?.attachment.data;
		const hostile = notes.find((n) => atob(data(n) ?? "").includes("<script"));
		const withheld = notes.find((n) => data(n) === undefined);
		if (!hostile || !withheld) throw new Error("no hostile or withheld note in the sandbox chart");
		return { hostile, withheld };
	}

	it("is served as athena sent it, under a CSP sandbox: no script, no remote loads, no framing, no sniffing", async () => {
		const { jar } = await signIn();
		const { hostile } = notesOf(JAKE.id);
		const response = await browserFetch(jar, `/record/documents/${hostile.id}`, html);
		expect(response.status).toBe(200);
		expect(response.headers.get("Content-Type")).toBe("text/html; charset=utf-8");
		expect(response.headers.get("Content-Security-Policy")).toBe(
			"default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; sandbox",
		);
		expect(response.headers.get("X-Content-Type-Options")).toBe("nosniff");
		expect(response.headers.get("Cache-Control")).toBe("no-store");
		const body = await response.text();
		const original = atob((hostile.content as Array<{ attachment: { data: string } }>)[0]?.attachment.data ?? "");
		expect(body.endsWith(original)).toBe(true);
		expect(body).toContain('<a href="/record#notes">&larr; Back to your record</a>');
		expect(body).not.toMatch(/eyJ|access_token|refresh_token|Bearer /);
	});

	it("withheld, another patient's, or not an id: a page saying it is not available, never content", async () => {
		const { jar } = await signIn();
		const rowanNote = notesOf(PATIENTS.second.id).hostile;
		for (const id of [notesOf(JAKE.id).withheld.id, rowanNote.id, "a-80000.nope-1", "..%2F..%2FPatient"]) {
			const response = await browserFetch(jar, `/record/documents/${id}`, html);
			expect(response.status, id).toBe(404);
			expect(response.headers.get("Content-Security-Policy")).toContain("style-src 'self'");
			const page = await response.text();
			expect(page).toContain("<h1>This note is not available</h1>");
			expect(page).not.toContain("Synthetic sandbox note");
		}
	});

	it("follows the session: signed out goes home, revoked says so", async () => {
		const { hostile } = notesOf(PATIENTS.second.id);
		expect((await browserFetch(new CookieJar(), `/record/documents/${hostile.id}`, html)).headers.get("Location")).toBe(
			"/",
		);
		const { jar } = await signIn(PATIENTS.second);
		await sandbox("revoke", { patient: PATIENTS.second.id });
		const page = await (await browserFetch(jar, `/record/documents/${hostile.id}`, html)).text();
		expect(page).toContain("<h1>Access was revoked</h1>");
		expect(page).not.toContain("Synthetic sandbox note");
	});
});

describe("session states on the connected page", () => {
	it("shows revocation at athena as 'revoked by you or your practice' with a one-click reconnect", async () => {
		const { jar } = await signIn(PATIENTS.second);
		expect((await recordPageOf(jar)).status).toBe(200);
		await sandbox("revoke", { patient: PATIENTS.second.id });
		const page = await recordPageOf(jar);
		expect(page.status).toBe(200);
		expect(page.text).toContain("<h1>Access was revoked</h1>");
		expect(page.text).toContain("revoked by you or your practice");
		expect(page.text).toContain('<form method="get" action="/launch"');
		expect(page.text).toContain('<input type="hidden" name="return_to" value="/record"');
		expect(page.text).toContain("Reconnect with athenahealth");
		expect(page.text).not.toContain("Fixturepatient");
		const home = await browserFetch(jar, "/", html);
		expect(home.headers.get("Location")).toBe("/record");
		expect((await recordPageOf(jar)).text).toContain("Access was revoked");
	});

	it("shows athena's rate limiting as 'busy' with when to retry, keeping the session", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", status: 429 });
		const page = await recordPageOf(jar);
		expect(page.status).toBe(503);
		expect(page.headers.get("Retry-After")).toBe("60");
		expect(page.text).toContain("<h1>athenahealth is busy</h1>");
		expect(page.text).toContain("Try again in about 60 seconds");
		expect(page.text).toContain('href="/record"');
		await clearFaults();
		expect((await recordPageOf(jar)).text).toContain("<h1>Jake Medlock</h1>");
	});

	it("shows athena failing as 'not answering' with a retry time", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", status: 500 });
		const page = await recordPageOf(jar);
		expect(page.status).toBe(503);
		expect(Number(page.headers.get("Retry-After"))).toBeGreaterThan(0);
		expect(page.text).toContain("<h1>athenahealth is not answering</h1>");
		expect(page.text).toContain("You are still connected");
	});
});

describe("how the page reads athena", () => {
	const FHIR_BASE = "http://localhost:3001/fhir/r4";
	const SESSION = { patient: "a-80000.E-14545", practice: "80000", fhirBaseUrl: FHIR_BASE, today: "2026-05-20" };

	afterEach(() => {
		vi.restoreAllMocks();
	});

	/** A reader answering from `answer`, recording what was asked. */
	function fakeAthena(answer: (target: FhirTarget) => unknown) {
		const asked: FhirTarget[] = [];
		const reader = async (target: FhirTarget): Promise<UpstreamRead> => {
			asked.push(target);
			return {
				kind: "response",
				response: Response.json(answer(target)),
				outbound: { url: `${FHIR_BASE}${target.path}`, interaction: "search-type", resourceType: undefined },
				fhirBaseUrl: FHIR_BASE,
			};
		};
		return { asked, reader };
	}

	it("reads with the proxy's upstream reader: one audit record per read, a bounded number of them", async () => {
		const { jar } = await signIn();
		const lines: Array<Record<string, unknown>> = [];
		for (const method of ["log", "warn", "error"] as const) {
			vi.spyOn(console, method).mockImplementation((line: unknown) => {
				lines.push(JSON.parse(String(line)) as Record<string, unknown>);
			});
		}
		expect((await recordPageOf(jar)).status).toBe(200);
		const [page] = lines.filter((l) => l.msg === "request" && l.route === "/record");
		const audits = lines.filter((l) => l.msg === "fhir");
		for (const audit of audits) {
			expect(audit).toMatchObject({ route: "/record", requestId: page?.requestId, upstreamStatus: 200 });
		}
		const types = audits.map((a) => a.resourceType);
		expect(types).toEqual(expect.arrayContaining(["Patient", "Organization", "Condition", "MedicationRequest"]));
		// 491 observations, 469 of them lab results (50 still pending): five pages of 100, not one read per result.
		expect(types.filter((t) => t === "Observation")).toHaveLength(6);
		expect(audits.length).toBeLessThanOrEqual(16);
		// DiagnosticReport is granted (wrangler.toml SCOPES): its 46 reports are one read.
		expect(types.filter((t) => t === "DiagnosticReport")).toHaveLength(1);
	});

	it("asks for the patient's searches with _count, MedicationRequest with intent, and follows next links within a cap", async () => {
		const { asked, reader } = fakeAthena((target) =>
			target.path.startsWith("/Patient/")
				? { resourceType: "Patient", name: [{ use: "official", given: ["Ada"], family: "Example" }] }
				: {
						resourceType: "Bundle",
						entry: [],
						// athena can send empty pages with a next link: a search that never ends must still stop.
						link: [
							{
								relation: "next",
								url: `${FHIR_BASE}${target.path}?${target.query.split("&cursor")[0]}&cursor=c${asked.length}`,
							},
						],
					},
		);
		const outcome = await readRecord(reader, SESSION);
		expect(outcome.state).toBe("record");
		const searches = asked.filter((t) => !/^\/(Patient|Organization)\//.test(t.path));
		for (const search of searches) expect(search.query).toMatch(/^patient=a-80000\.E-14545&.*_count=100/);
		const count = (path: string, query = "") =>
			searches.filter((t) => t.path === path && t.query.includes(query)).length;
		expect(count("/MedicationRequest", "intent=order,plan")).toBe(3);
		expect(count("/MedicationRequest")).toBe(3);
		expect(count("/Observation", "category=laboratory")).toBe(10);
		expect(count("/Observation", "category=vital-signs")).toBe(3);
		expect(count("/Condition")).toBe(3);
		if (outcome.state === "record") expect(outcome.record.problems).toMatchObject({ ok: true, items: [], more: true });
		expect(searches.length).toBeLessThanOrEqual(8 * 3 + 10);
	});

	it("follows next links only on the FHIR base, and asks only for the types the patient granted", async () => {
		const { asked, reader } = fakeAthena((target) => {
			if (target.path.startsWith("/Patient/")) return { resourceType: "Patient", name: [{ text: "Ada Example" }] };
			const elsewhere =
				target.path === "/AllergyIntolerance"
					? "https://elsewhere.example/fhir/r4/AllergyIntolerance?cursor=a2"
					: undefined;
			return { resourceType: "Bundle", entry: [], link: elsewhere ? [{ relation: "next", url: elsewhere }] : [] };
		});
		const outcome = await readRecord(reader, {
			...SESSION,
			scopes: ["patient/Patient.read", "patient/AllergyIntolerance.rs"],
		});
		expect(asked.map((t) => t.path)).toEqual([
			"/Patient/a-80000.E-14545",
			"/Organization/a-1.Practice-80000",
			"/AllergyIntolerance",
		]);
		if (outcome.state !== "record") throw new Error(outcome.state);
		expect(outcome.record.allergies).toEqual({ ok: true, items: [], more: false });
		expect(outcome.record.labs).toMatchObject({ ok: false, notGranted: true });
		const page = String(await recordPage(outcome.record));
		expect(page).toContain('aria-labelledby="allergies"');
		expect(page).not.toContain('aria-labelledby="labs"');
		expect(page).not.toContain('href="#labs"');
	});

	it("never shows a result or report athena marks entered in error or cancelled, read end to end", async () => {
		const observation = (status: string, value: number, at: string) => ({
			resourceType: "Observation",
			status,
			code: { coding: [{ system: "http://loinc.org", code: "2345-7", display: "Glucose" }] },
			effectiveDateTime: at,
			valueQuantity: { value, unit: "mg/dL" },
		});
		const report = (status: string, name: string) => ({
			resourceType: "DiagnosticReport",
			status,
			category: [{ coding: [{ code: "LP29684-5", display: "Radiology" }] }],
			code: { text: name },
			effectiveDateTime: "2025-01-01",
		});
		const { reader } = fakeAthena((target) => {
			if (target.path.startsWith("/Patient/")) return { resourceType: "Patient", name: [{ text: "Ada Example" }] };
			const resources =
				target.path === "/Observation" && target.query.includes("laboratory")
					? [
							observation("final", 91, "2025-01-01"),
							observation("entered-in-error", 912, "2026-01-01"),
							observation("cancelled", 913, "2026-02-01"),
						]
					: target.path === "/DiagnosticReport"
						? [
								report("final", "XR Chest 2 Views"),
								report("entered-in-error", "XR Wrong Patient"),
								report("cancelled", "XR Never Done"),
							]
						: [];
			return { resourceType: "Bundle", entry: resources.map((resource) => ({ resource })), link: [] };
		});
		const outcome = await readRecord(reader, SESSION);
		if (outcome.state !== "record") throw new Error(outcome.state);
		const page = String(await recordPage(outcome.record));
		expect(card(page, "labs")).toContain("<b>91 mg/dL</b>");
		expect(page).not.toMatch(/91[23]/);
		expect(card(page, "reports")).toContain("XR Chest 2 Views");
		expect(page).not.toContain("XR Wrong Patient");
		expect(page).not.toContain("XR Never Done");
	});
});
