import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { patientRecord } from "../../sandbox/src/data";
import type { UpstreamRead } from "../../src/fhir/upstream-read";
import { type FhirTarget, readRecord } from "../../src/pages/read-record";
import { browserFetch, CookieJar, PATIENTS, sandbox, signIn } from "./support/sign-in";

const html = { headers: { Accept: "text/html" } };

/** The newest value of an Observation series in the sandbox's own data, as the page rounds it. */
function latestValue(patient: string, loinc: string): number {
	const observations = patientRecord(patient)?.byType.get("Observation") ?? [];
	const matching = observations.filter((o) =>
		(o.code as { coding: Array<{ code: string }> }).coding.some((c) => c.code === loinc),
	);
	const newest = matching.sort((a, b) => String(b.effectiveDateTime).localeCompare(String(a.effectiveDateTime)))[0];
	const value = (newest?.valueQuantity as { value: number } | undefined)?.value;
	if (value === undefined) throw new Error(`no ${loinc} in the sandbox data`);
	return Math.round(value * 10) / 10;
}

async function recordPage(jar: CookieJar): Promise<{ status: number; headers: Headers; text: string }> {
	const response = await browserFetch(jar, "/record", html);
	return { status: response.status, headers: response.headers, text: await response.text() };
}

async function clearFaults(): Promise<void> {
	const response = await env.SANDBOX.fetch("http://localhost:3001/_sandbox/faults", { method: "DELETE" });
	if (!response.ok) throw new Error(`clearing faults: ${response.status}`);
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("the connected page", () => {
	it("shows the signed-in patient's name, birth date, practice and record from the sandbox", async () => {
		const { jar } = await signIn();
		const page = await recordPage(jar);
		expect(page.status).toBe(200);
		expect(page.text).toContain("<h1>Jane Testpatient</h1>");
		expect(page.text).toContain('<time datetime="1968-04-12">Apr 12, 1968</time>');
		expect(page.text).toContain("Sandbox Practice 80000 (80000)");
		for (const entry of [
			"Allergy to penicillin",
			"Hives",
			"Type 2 diabetes mellitus",
			"lisinopril 10 MG Oral Tablet",
			"Take 1 tablet by mouth daily",
			"influenza, injectable, quadrivalent",
			"Encounter for check up",
			"Progress note",
			"not released to the portal",
		]) {
			expect(page.text).toContain(entry);
		}
		// Charts and their tables carry the newest weight and HbA1c the sandbox holds.
		expect(page.text).toContain(`<td class="num">${latestValue(PATIENTS.jane.id, "29463-7")}</td>`);
		expect(page.text).toContain(`<td class="num">${latestValue(PATIENTS.jane.id, "4548-4")}</td>`);
		expect(page.text).toMatch(/<svg[^>]*role="img"[^>]*>\s*<title[^>]*>Blood pressure over time<\/title>/);
		expect(page.text).toMatch(/<polyline points="[\d., ]+"/);
		expect(page.text).not.toMatch(/eyJ|access_token|refresh_token|code_verifier|Bearer /);
	});

	it("shows each browser only its own patient's record", async () => {
		const jane = await signIn(PATIENTS.jane);
		const rowan = await signIn(PATIENTS.second);
		const janePage = (await recordPage(jane.jar)).text;
		const rowanPage = (await recordPage(rowan.jar)).text;
		expect(rowanPage).toContain("<h1>Rowan Fixturepatient</h1>");
		expect(rowanPage).toContain("Sandbox Practice 195900");
		expect(rowanPage).not.toContain("Testpatient");
		expect(janePage).not.toContain("Fixturepatient");
		expect(janePage).not.toContain("195900");
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

	it("offers sign-out as a same-origin POST form that ends the session and athena's browser session, then lands on the home page", async () => {
		const { jar } = await signIn();
		expect((await recordPage(jar)).text).toMatch(/<form class="inline" method="post" action="\/logout">/);
		const out = await browserFetch(jar, "/logout", {
			method: "POST",
			headers: { Accept: "text/html", Origin: "http://localhost:3000" },
		});
		expect(out.status).toBe(303);
		expect(out.headers.get("Referrer-Policy")).toBe("no-referrer");
		// athena's end-session endpoint, with the id_token hint, back to our home page.
		const athena = new URL(out.headers.get("Location") ?? "");
		expect(`${athena.origin}${athena.pathname}`).toBe("http://localhost:3001/oauth2/v1/logout");
		expect(athena.searchParams.get("post_logout_redirect_uri")).toBe("http://localhost:3000/");
		expect(athena.searchParams.get("id_token_hint")).toMatch(/^eyJ/);
		const home = await browserFetch(jar, "/", html);
		expect(home.status).toBe(200);
		expect(await home.text()).not.toContain("Your session has ended");
	});
});

describe("session states on the connected page", () => {
	it("shows revocation at athena as 'revoked by you or your practice' with a one-click reconnect", async () => {
		const { jar } = await signIn(PATIENTS.second);
		expect((await recordPage(jar)).status).toBe(200);
		await sandbox("revoke", { patient: PATIENTS.second.id });
		const page = await recordPage(jar);
		expect(page.status).toBe(200);
		expect(page.text).toContain("<h1>Access was revoked</h1>");
		expect(page.text).toContain("revoked by you or your practice");
		expect(page.text).toContain('<form method="get" action="/launch"');
		expect(page.text).not.toContain('name="practice"');
		expect(page.text).toContain('<input type="hidden" name="return_to" value="/record"');
		expect(page.text).toContain("Reconnect with athenahealth");
		expect(page.text).not.toContain("Fixturepatient");
		// The session now says revoked itself, so / leads to the same state.
		const home = await browserFetch(jar, "/", html);
		expect(home.headers.get("Location")).toBe("/record");
		expect((await recordPage(jar)).text).toContain("Access was revoked");
	});

	it("shows athena's rate limiting as 'busy' with when to retry, keeping the session", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", status: 429 });
		const page = await recordPage(jar);
		expect(page.status).toBe(503);
		expect(page.headers.get("Retry-After")).toBe("60");
		expect(page.text).toContain("<h1>athenahealth is busy</h1>");
		expect(page.text).toContain("Try again in about 60 seconds");
		expect(page.text).toContain('href="/record"');
		await clearFaults();
		expect((await recordPage(jar)).text).toContain("<h1>Jane Testpatient</h1>");
	});

	it("shows athena failing as 'not answering' with a retry time", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", status: 500 });
		const page = await recordPage(jar);
		expect(page.status).toBe(503);
		expect(Number(page.headers.get("Retry-After"))).toBeGreaterThan(0);
		expect(page.text).toContain("<h1>athenahealth is not answering</h1>");
		expect(page.text).toContain("You are still connected");
	});
});

describe("how the page reads athena", () => {
	const FHIR_BASE = "http://localhost:3001/fhir/r4";

	afterEach(() => {
		vi.restoreAllMocks();
	});

	it("reads with the proxy's upstream reader, not through the proxy route: one audit record per read, under the page", async () => {
		const { jar } = await signIn();
		const lines: Array<Record<string, unknown>> = [];
		for (const method of ["log", "warn", "error"] as const) {
			vi.spyOn(console, method).mockImplementation((line: unknown) => {
				lines.push(JSON.parse(String(line)) as Record<string, unknown>);
			});
		}
		expect((await recordPage(jar)).status).toBe(200);
		const [page] = lines.filter((l) => l.msg === "request" && l.route === "/record");
		const audits = lines.filter((l) => l.msg === "fhir");
		expect(page?.requestId).toEqual(expect.any(String));
		expect(audits.length).toBeGreaterThanOrEqual(10);
		for (const audit of audits) {
			expect(audit).toMatchObject({ route: "/record", requestId: page?.requestId, upstreamStatus: 200 });
			expect(audit.outcome).toMatch(/^(complete|no-body)$/);
		}
		expect(audits.map((a) => a.resourceType)).toEqual(expect.arrayContaining(["Patient", "Organization", "Condition"]));
	});

	it("follows athena's next links on the FHIR base, and no link anywhere else", async () => {
		const asked: FhirTarget[] = [];
		const bundle = (type: string, next?: string) => ({
			resourceType: "Bundle",
			entry: [{ resource: { resourceType: type, code: { text: `${type} ${asked.length}` } } }],
			link: next ? [{ relation: "next", url: next }] : [],
		});
		const answer = (target: FhirTarget): unknown => {
			if (target.path.startsWith("/Patient/")) return { resourceType: "Patient", name: [{ text: "Jane Testpatient" }] };
			if (target.path === "/Condition" && !target.query.includes("cursor")) {
				return bundle("Condition", `${FHIR_BASE}/Condition?_count=100&patient=a-80000.E-14545&cursor=c2`);
			}
			if (target.path === "/AllergyIntolerance") {
				return bundle("AllergyIntolerance", "https://elsewhere.example/fhir/r4/AllergyIntolerance?cursor=a2");
			}
			return bundle(target.path.slice(1));
		};
		const reader = async (target: FhirTarget): Promise<UpstreamRead> => {
			asked.push(target);
			return {
				kind: "response",
				response: Response.json(answer(target)),
				outbound: { url: `${FHIR_BASE}${target.path}`, interaction: "search-type", resourceType: undefined },
			};
		};
		const outcome = await readRecord(reader, { patient: "a-80000.E-14545", practice: "80000", fhirBaseUrl: FHIR_BASE });
		expect(outcome.state).toBe("record");
		expect(asked).toContainEqual({ path: "/Condition", query: "_count=100&patient=a-80000.E-14545&cursor=c2" });
		expect(asked.filter((t) => t.path === "/AllergyIntolerance")).toEqual([
			{ path: "/AllergyIntolerance", query: "_count=100" },
		]);
		if (outcome.state === "record") {
			expect(outcome.record.conditions).toMatchObject({ ok: true, more: false });
			expect(outcome.record.conditions.ok && outcome.record.conditions.items).toHaveLength(2);
		}
	});
});
