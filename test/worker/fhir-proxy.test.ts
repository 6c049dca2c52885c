import { env, exports } from "cloudflare:workers";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { beforeEach, describe, expect, it } from "vitest";
import { patientRecord } from "../../sandbox/src/data";
import type { AppEnv } from "../../src/app-env";
import { requestLog } from "../../src/middleware/request-log";
import { fhirProxyRoutes } from "../../src/routes/fhir";
import { accessTokenNearlyExpired, storedSession } from "./support/faults";
import { browserFetch, CookieJar, PATIENTS, sandbox, signIn, WORKER_ORIGIN } from "./support/sign-in";

interface Bundle {
	resourceType: "Bundle";
	total?: number;
	link?: Array<{ relation: string; url: string }>;
	entry?: Array<{ fullUrl: string; resource: { resourceType: string; id: string } & Record<string, unknown> }>;
}

interface Received {
	counts: Record<string, number>;
	tokenCalls: Array<{ grantType: string | null; status: number }>;
}

const JANE = PATIENTS.jane;
const PRACTICE_PARAM = "ah-practice=Organization/a-1.Practice-80000";

async function fhirRequestsSeen(): Promise<number> {
	return (await sandbox<Received>("received")).counts.fhir ?? 0;
}

async function refreshCalls(): Promise<number> {
	return (await sandbox<Received>("received")).tokenCalls.filter((t) => t.grantType === "refresh_token").length;
}

/** Every page of a search, following only the `next` links the proxy handed back. */
async function followAllPages(jar: CookieJar, firstPath: string): Promise<Bundle[]> {
	const pages: Bundle[] = [];
	let path: string | undefined = firstPath;
	while (path) {
		const response = await browserFetch(jar, path);
		expect(response.status).toBe(200);
		const page = (await response.json()) as Bundle;
		pages.push(page);
		const next = page.link?.find((l) => l.relation === "next")?.url;
		if (next) expect(next.startsWith(`${WORKER_ORIGIN}/fhir/r4/`)).toBe(true);
		path = next ? next.slice(WORKER_ORIGIN.length) : undefined;
		expect(pages.length).toBeLessThan(50);
	}
	return pages;
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("FHIR proxy: sessions", () => {
	it("answers 401 signed_out without a session and never calls athena", async () => {
		const response = await browserFetch(new CookieJar(), "/fhir/r4/Patient/a-80000.E-14545");
		expect(response.status).toBe(401);
		expect(await response.json()).toEqual({ status: "signed_out" });
		expect(response.headers.get("Cache-Control")).toBe("private, no-store");
		expect(await fhirRequestsSeen()).toBe(0);
	});

	it("answers 401 signed_out for a well-formed cookie naming no session", async () => {
		const jar = new CookieJar();
		jar.cookies.set("__Host-athena_session", "A".repeat(43));
		const response = await browserFetch(jar, "/fhir/r4/Patient/a-80000.E-14545");
		expect(response.status).toBe(401);
		expect(await response.json()).toEqual({ status: "signed_out" });
	});

	it("answers 401 revoked once the patient revoked the app at athena", async () => {
		const { jar } = await signIn();
		expect((await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`)).status).toBe(200);
		await sandbox("revoke", { patient: JANE.id });
		const response = await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`);
		expect(response.status).toBe(401);
		expect(await response.json()).toEqual({ status: "revoked" });
	});

	it("refreshes a token that is about to expire before calling athena", async () => {
		const { jar } = await signIn();
		await accessTokenNearlyExpired((await storedSession(jar)).stub);
		expect(await refreshCalls()).toBe(0);
		const response = await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`);
		expect(response.status).toBe(200);
		expect(await refreshCalls()).toBe(1);
	});

	it("refreshes once and retries once when athena answers 401 to a token it expired early", async () => {
		const { jar } = await signIn();
		expect((await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`)).status).toBe(200);
		const before = await fhirRequestsSeen();
		await sandbox("expire-access-tokens", {});
		const response = await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`);
		expect(response.status).toBe(200);
		expect(((await response.json()) as { id: string }).id).toBe(JANE.id);
		expect(await refreshCalls()).toBe(1);
		expect((await fhirRequestsSeen()) - before).toBe(2);
	});
});

describe("FHIR proxy: reads and searches", () => {
	it("reads the patient with private, no-store caching, the request id and no cookies from athena", async () => {
		const { jar } = await signIn();
		const response = await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`);
		expect(response.status).toBe(200);
		expect(response.headers.get("Content-Type")).toContain("application/fhir+json");
		expect(response.headers.get("Cache-Control")).toBe("private, no-store");
		expect(response.headers.get("X-Request-Id")).toMatch(/.+/);
		expect(response.headers.getSetCookie()).toEqual([]);
		expect(await response.json()).toMatchObject({ resourceType: "Patient", id: JANE.id });
	});

	it("answers HEAD with the read's status and headers and no body", async () => {
		const { jar } = await signIn();
		const response = await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`, { method: "HEAD" });
		expect(response.status).toBe(200);
		expect(response.headers.get("Cache-Control")).toBe("private, no-store");
		expect(await response.text()).toBe("");
	});

	it("follows a search's pages entirely through the proxy's rewritten next links", async () => {
		const { jar } = await signIn();
		const pages = await followAllPages(jar, "/fhir/r4/Condition?_count=5");
		expect(pages.length).toBeGreaterThan(2);
		const ids = pages.flatMap((p) => p.entry?.map((e) => e.resource.id) ?? []);
		// athena's searchsets carry no total: the pages together are the one-page answer.
		const onePage = (await (await browserFetch(jar, "/fhir/r4/Condition?_count=100")).json()) as Bundle;
		expect(ids).toEqual(onePage.entry?.map((e) => e.resource.id));
		expect(new Set(ids).size).toBe(ids.length);
		for (const page of pages) {
			const text = JSON.stringify(page);
			expect(text).not.toContain("localhost:3001");
			for (const entry of page.entry ?? []) {
				expect(entry.fullUrl).toBe(`${WORKER_ORIGIN}/fhir/r4/Condition/${entry.resource.id}`);
			}
		}
	});

	it("adds ah-practice and the session's patient, so a bare compartment search just works", async () => {
		const { jar } = await signIn();
		const response = await browserFetch(jar, "/fhir/r4/Observation?category=laboratory");
		expect(response.status).toBe(200);
		const bundle = (await response.json()) as Bundle;
		const self = bundle.link?.find((l) => l.relation === "self")?.url ?? "";
		expect(self).toContain(PRACTICE_PARAM);
		expect(self).toContain(`patient=${JANE.id}`);
		expect(bundle.entry?.length).toBeGreaterThan(0);
		for (const entry of bundle.entry ?? []) {
			expect(entry.resource.subject).toEqual({ reference: `Patient/${JANE.id}` });
		}
	});

	it("makes AllergyIntolerance, which athena refuses without patient, searchable without naming one", async () => {
		const { jar } = await signIn();
		const response = await browserFetch(jar, "/fhir/r4/AllergyIntolerance");
		expect(response.status).toBe(200);
		expect(((await response.json()) as Bundle).resourceType).toBe("Bundle");
	});

	it("passes a search for another patient through for athena to refuse", async () => {
		const { jar } = await signIn();
		const response = await browserFetch(jar, `/fhir/r4/Condition?patient=${PATIENTS.second.id}`);
		expect(response.status).toBe(403);
		expect(await response.json()).toMatchObject({ resourceType: "OperationOutcome" });
	});

	it("passes a Binary through byte for byte, identical to the base64 athena gives as FHIR JSON", async () => {
		const { jar } = await signIn();
		// athena's notes arrive inline; the sandbox keeps one Binary per chart that no document points at.
		const [binaryId] = patientRecord(JANE.id)?.binaries.keys() ?? [];
		const binaryUrl = `Binary/${binaryId}`;
		expect(binaryId).toBeDefined();

		const raw = await browserFetch(jar, `/fhir/r4/${binaryUrl}`, { headers: { Accept: "application/pdf" } });
		expect(raw.status).toBe(200);
		expect(raw.headers.get("Content-Type")).toBe("application/pdf");
		// athena's bytes never run as a page of our origin.
		expect(raw.headers.get("Content-Security-Policy")).toBe("default-src 'none'; sandbox");
		expect(raw.headers.get("X-Content-Type-Options")).toBe("nosniff");
		const bytes = new Uint8Array(await raw.arrayBuffer());
		expect(new TextDecoder().decode(bytes.subarray(0, 5))).toBe("%PDF-");

		const asJson = await browserFetch(jar, `/fhir/r4/${binaryUrl}`);
		const { data } = (await asJson.json()) as { data: string };
		expect(bytes).toEqual(Uint8Array.from(atob(data), (c) => c.charCodeAt(0)));
	});
});

describe("FHIR proxy: refusals before any request to athena", () => {
	// Sent as raw strings: some forms the URL parser normalizes before the worker sees them
	// (then no /fhir/r4 route matches: 404); the rest reach the proxy, which refuses them (400).
	const refusedTargets = [
		"/fhir/r4/../../oauth2/v1/token",
		"/fhir/r4/%2e%2e/%2e%2e/oauth2/v1/token",
		"/fhir/r4/%2E./oauth2/v1/token",
		"/fhir/r4/%252e%252e/oauth2/v1/token",
		"/fhir/r4/Patient%2f..%2f..%2foauth2%2fv1%2ftoken",
		"/fhir/r4/Patient%5c..%5coauth2",
		"/fhir/r4/Patient\\..\\..\\oauth2",
		"/fhir/r4/https://evil.example/fhir/r4/Patient",
		"/fhir/r4//evil.example/Patient",
		"/fhir/r4/Patient@evil.example/1",
		"/fhir/r4/Patient/a%00b",
		"/fhir/r4/Patient/a%0d%0aHost:evil.example",
		"/fhir/r4/oauth2/v1/token",
		"/fhir/r4/.well-known/smart-configuration",
		"/fhir/r4/Patient/1/$everything",
		"/fhir/r4/Patient?name=a%00b",
	];

	for (const target of refusedTargets) {
		it(`refuses ${target} without calling athena`, async () => {
			const { jar } = await signIn();
			const before = await fhirRequestsSeen();
			const url = `${WORKER_ORIGIN}${target}`;
			const response = await exports.default.fetch(url, { headers: { Cookie: jar.header() } });
			const reachesProxy = new URL(url).pathname.startsWith("/fhir/r4/");
			expect(response.status).toBe(reachesProxy ? 400 : 404);
			expect(await fhirRequestsSeen()).toBe(before);
		});
	}

	for (const method of ["POST", "PUT", "PATCH", "DELETE", "OPTIONS"]) {
		it(`answers ${method} with 405 and Allow: GET, HEAD`, async () => {
			const { jar } = await signIn();
			const response = await browserFetch(jar, "/fhir/r4/Observation/_search", {
				method,
				headers: { Origin: WORKER_ORIGIN, "Content-Type": "application/x-www-form-urlencoded" },
				body: method === "POST" || method === "PUT" || method === "PATCH" ? "category=laboratory" : undefined,
			});
			expect(response.status).toBe(405);
			expect(response.headers.get("Allow")).toBe("GET, HEAD");
			expect(await response.json()).toMatchObject({ resourceType: "OperationOutcome" });
			expect(await fhirRequestsSeen()).toBe(0);
		});
	}
});

describe("FHIR proxy: athena in trouble", () => {
	it("passes athena's 429 through with its Retry-After", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", status: 429, times: 1 });
		const response = await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`);
		expect(response.status).toBe(429);
		expect(response.headers.get("Retry-After")).toBe("60");
	});

	it("turns athena's 5xx into a 502 OperationOutcome", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", status: 503, times: 1 });
		const response = await browserFetch(jar, `/fhir/r4/Patient/${JANE.id}`);
		expect(response.status).toBe(502);
		expect(response.headers.get("Cache-Control")).toBe("private, no-store");
		expect(await response.json()).toMatchObject({
			resourceType: "OperationOutcome",
			issue: [{ severity: "error", code: "transient" }],
		});
	});

	it("answers 504 when athena sends no headers within the timeout", async () => {
		const { jar } = await signIn();
		// The same routes with a short timeout, behind the same middleware the worker uses.
		const proxy = new Hono<AppEnv>()
			.use(requestId({ headerName: "X-Request-Id" }))
			.use(requestLog())
			.route("/", fhirProxyRoutes({ timeoutMs: 300 }));
		await sandbox("faults", { target: "fhir", delayMs: 3_000, times: 1 });
		const response = await proxy.request(
			`${WORKER_ORIGIN}/fhir/r4/Patient/${JANE.id}`,
			{ headers: { Cookie: jar.header() } },
			env,
		);
		expect(response.status).toBe(504);
		expect(await response.json()).toMatchObject({ resourceType: "OperationOutcome", issue: [{ code: "timeout" }] });
	});

	it("errors the client's body when athena's stream is cut mid-body, never ending it as complete", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", cutAfterBytes: 200, times: 1 });
		const response = await browserFetch(jar, "/fhir/r4/Observation?_count=50");
		expect(response.status).toBe(200);
		await expect(response.text()).rejects.toThrow();
	});

	it("errors the client's body when a body passed through untouched is cut mid-body", async () => {
		const { jar } = await signIn();
		await sandbox("faults", { target: "fhir", cutAfterBytes: 100_000, times: 1 });
		const response = await browserFetch(
			jar,
			"/fhir/r4/Observation?_sandbox_bytes=1000000&_sandbox_content_type=application/octet-stream",
		);
		expect(response.status).toBe(200);
		expect(response.headers.get("Content-Type")).toBe("application/octet-stream");
		await expect(response.arrayBuffer()).rejects.toThrow();
	});

	it("passes a large non-JSON body through byte for byte without rewriting", async () => {
		const { jar } = await signIn();
		const path = "/fhir/r4/Observation?_sandbox_bytes=300000&_sandbox_content_type=application/octet-stream";
		const body = new Uint8Array(await (await browserFetch(jar, path)).arrayBuffer());
		expect(body.byteLength).toBe(300_000);
		const text = new TextDecoder().decode(body);
		// Not JSON to the proxy: athena's own base stays as athena wrote it.
		expect(text).toContain("http://localhost:3001/fhir/r4/");
		expect(text).not.toContain("http://localhost:3000/fhir/r4/");
	});
});
