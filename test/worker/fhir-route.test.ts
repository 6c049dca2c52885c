import { env } from "cloudflare:workers";
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { AppEnv } from "../../src/app-env";
import { AppError } from "../../src/errors";
import type { ReadSessionApi } from "../../src/fhir/upstream-read";
import { requestLog } from "../../src/middleware/request-log";
import { type FhirRouteOptions, fhirProxyRoutes } from "../../src/routes/fhir";
import type { AccessResult } from "../../src/session/contract";

/*
 * The route's own decisions, with the session and athena answered in-process
 * (both are injected, as the route's options allow). The same behaviours
 * against the real sandbox and sessions are in fhir-proxy.test.ts; these
 * cover what the sandbox cannot be made to do (a Durable Object that throws,
 * athena redirecting or refusing a fresh token, an unreachable host).
 */

const FHIR_BASE = "http://localhost:3001/fhir/r4";
const PROXY = "http://localhost:3000/fhir/r4";

function connected(token: string, expiresInMs = 3_600_000): AccessResult {
	return {
		status: "connected",
		accessToken: token,
		expiresAt: Date.now() + expiresInMs,
		patient: "a-80000.E-14545",
		practice: "80000",
		fhirBaseUrl: FHIR_BASE,
	};
}

/** A session whose answers the test scripts, counting how often it is asked. */
class ScriptedSession implements ReadSessionApi {
	accessCalls = 0;
	refreshCalls: string[] = [];
	constructor(
		private readonly onAccess: () => Promise<AccessResult>,
		private readonly onRefresh: (stale: string) => Promise<AccessResult> = onAccess,
	) {}
	accessToken(): Promise<AccessResult> {
		this.accessCalls++;
		return this.onAccess();
	}
	refreshAfterUnauthorized(stale: string): Promise<AccessResult> {
		this.refreshCalls.push(stale);
		return this.onRefresh(stale);
	}
}

interface Upstream {
	requests: Request[];
	fetch: typeof fetch;
}

/** athena, as a function of the request it receives. */
function athena(answer: (request: Request, attempt: number) => Response | Promise<Response>): Upstream {
	const requests: Request[] = [];
	return {
		requests,
		fetch: async (input, init) => {
			const request = new Request(input, init);
			requests.push(request);
			return answer(request, requests.length);
		},
	};
}

function proxyWith(session: ReadSessionApi | undefined, upstream: Upstream, options: FhirRouteOptions = {}) {
	const app = new Hono<AppEnv>()
		.use(requestId({ headerName: "X-Request-Id" }))
		.use(requestLog())
		.route(
			"/",
			fhirProxyRoutes({
				sessionFor: async () => (session ? { idHash: "h".repeat(43), api: session } : undefined),
				fetch: upstream.fetch,
				...options,
			}),
		);
	return (path: string, init?: RequestInit) => app.request(`${PROXY}${path}`, init, env);
}

const patientJson = () =>
	new Response(JSON.stringify({ resourceType: "Patient", id: "a-80000.E-14545" }), {
		headers: { "Content-Type": "application/fhir+json" },
	});

describe("FHIR proxy route: session answers", () => {
	it("answers 503 with Retry-After when the session says athena or the budget cannot serve now", async () => {
		const session = new ScriptedSession(async () => ({
			status: "unavailable",
			code: "token_budget_spent",
			message: "Try again shortly",
			retryAfterSeconds: 42,
		}));
		const upstream = athena(patientJson);
		const response = await proxyWith(session, upstream)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(503);
		expect(response.headers.get("Retry-After")).toBe("42");
		expect(await response.json()).toMatchObject({ status: "unavailable", error: "token_budget_spent" });
		expect(upstream.requests).toHaveLength(0);
	});

	it("answers 503, not 500, when the session's Durable Object throws", async () => {
		const session = new ScriptedSession(() => Promise.reject(new Error("Durable Object reset")));
		const response = await proxyWith(session, athena(patientJson))("/Patient/a-80000.E-14545");
		expect(response.status).toBe(503);
		expect(response.headers.get("Retry-After")).toBe("5");
		expect(await response.json()).toMatchObject({ status: "unavailable", error: "session_unavailable" });
	});

	it("asks the session once for a burst of reads, then serves the token from the isolate's cache", async () => {
		const session = new ScriptedSession(async () => connected("t1"));
		const upstream = athena(patientJson);
		const get = proxyWith(session, upstream);
		for (let i = 0; i < 3; i++) expect((await get("/Patient/a-80000.E-14545")).status).toBe(200);
		expect(session.accessCalls).toBe(1);
		expect(upstream.requests.map((r) => r.headers.get("Authorization"))).toEqual([
			"Bearer t1",
			"Bearer t1",
			"Bearer t1",
		]);
	});

	it("does not cache a token inside its refresh margin: the session is asked every time", async () => {
		const session = new ScriptedSession(async () => connected("t1", 50_000));
		const get = proxyWith(session, athena(patientJson));
		await get("/Patient/a-80000.E-14545");
		await get("/Patient/a-80000.E-14545");
		expect(session.accessCalls).toBe(2);
	});

	it("never sends the token when the session's FHIR base is not the configured one", async () => {
		const session = new ScriptedSession(async () => ({
			...(connected("t1") as Extract<AccessResult, { status: "connected" }>),
			fhirBaseUrl: "https://evil.example/fhir/r4",
		}));
		const upstream = athena(patientJson);
		const response = await proxyWith(session, upstream)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(401);
		expect(upstream.requests).toHaveLength(0);
	});
});

describe("FHIR proxy route: athena's answers", () => {
	it("sends the stale token to the session after a 401 and retries once with the new one", async () => {
		const session = new ScriptedSession(
			async () => connected("stale"),
			async () => connected("fresh"),
		);
		const upstream = athena((request) =>
			request.headers.get("Authorization") === "Bearer fresh" ? patientJson() : new Response(null, { status: 401 }),
		);
		const response = await proxyWith(session, upstream)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(200);
		expect(session.refreshCalls).toEqual(["stale"]);
		expect(upstream.requests).toHaveLength(2);
	});

	it("gives up after one retry when the session has no newer token than the one athena refused", async () => {
		const session = new ScriptedSession(async () => connected("t"));
		const upstream = athena(() => new Response(null, { status: 401 }));
		const response = await proxyWith(session, upstream)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(502);
		expect(upstream.requests).toHaveLength(2);
		expect(session.refreshCalls).toHaveLength(1);
	});

	it("refreshes a second time when athena refuses the freshly refreshed token too (expired again), then answers", async () => {
		const renewals = ["fresh-1", "fresh-2"];
		const session = new ScriptedSession(
			async () => connected("stale"),
			async () => connected(renewals.shift() ?? "spare"),
		);
		const upstream = athena((request) =>
			request.headers.get("Authorization") === "Bearer fresh-2" ? patientJson() : new Response(null, { status: 401 }),
		);
		const response = await proxyWith(session, upstream)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(200);
		expect(await response.json()).toMatchObject({ id: "a-80000.E-14545" });
		expect(session.refreshCalls).toEqual(["stale", "fresh-1"]);
		expect(upstream.requests.map((r) => r.headers.get("Authorization"))).toEqual([
			"Bearer stale",
			"Bearer fresh-1",
			"Bearer fresh-2",
		]);
	});

	it("stops after two refreshes when athena refuses every new token: 502, no loop", async () => {
		let n = 0;
		const session = new ScriptedSession(
			async () => connected("t-0"),
			async () => connected(`t-${++n}`),
		);
		const upstream = athena(() => new Response(null, { status: 401 }));
		const response = await proxyWith(session, upstream)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(502);
		expect(await response.text()).toContain("athena refused the refreshed access token");
		expect(session.refreshCalls).toEqual(["t-0", "t-1"]);
		expect(upstream.requests).toHaveLength(3);
	});

	it("answers 401 revoked when the second refresh finds the grant revoked", async () => {
		const answers: AccessResult[] = [connected("fresh"), { status: "revoked" }];
		const session = new ScriptedSession(
			async () => connected("stale"),
			async () => answers.shift() ?? { status: "revoked" },
		);
		const upstream = athena(() => new Response(null, { status: 401 }));
		const response = await proxyWith(session, upstream)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(401);
		expect(await response.json()).toEqual({ status: "revoked" });
		expect(session.refreshCalls).toEqual(["stale", "fresh"]);
		expect(upstream.requests).toHaveLength(2);
	});

	it("answers 401 revoked when the refresh after athena's 401 finds the grant revoked", async () => {
		const session = new ScriptedSession(
			async () => connected("t"),
			async () => ({ status: "revoked" }),
		);
		const response = await proxyWith(
			session,
			athena(() => new Response(null, { status: 401 })),
		)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(401);
		expect(await response.json()).toEqual({ status: "revoked" });
	});

	it("never follows a redirect from athena with the token", async () => {
		const upstream = athena(
			() => new Response(null, { status: 302, headers: { Location: "https://evil.example/steal" } }),
		);
		const response = await proxyWith(
			new ScriptedSession(async () => connected("t")),
			upstream,
		)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(502);
		expect(upstream.requests).toHaveLength(1);
		expect(upstream.requests[0]?.redirect).toBe("manual");
	});

	it("answers 502 when athena cannot be reached", async () => {
		const upstream = athena(() => {
			throw new TypeError("Network connection lost.");
		});
		const response = await proxyWith(
			new ScriptedSession(async () => connected("t")),
			upstream,
		)("/Patient/a-80000.E-14545");
		expect(response.status).toBe(502);
		expect(await response.json()).toMatchObject({ resourceType: "OperationOutcome" });
	});

	it("passes 304 Not Modified through with its validators and no body", async () => {
		const upstream = athena(() => new Response(null, { status: 304, headers: { ETag: 'W/"2"' } }));
		const response = await proxyWith(new ScriptedSession(async () => connected("t")), upstream)(
			"/Patient/a-80000.E-14545",
			{ headers: { "If-None-Match": 'W/"2"' } },
		);
		expect(response.status).toBe(304);
		expect(response.headers.get("ETag")).toBe('W/"2"');
		expect(upstream.requests[0]?.headers.get("If-None-Match")).toBe('W/"2"');
	});

	it("uses FHIR_TIMEOUT_MS when the route was given no timeout", async () => {
		const upstream = athena(
			(request) =>
				new Promise<Response>((_, reject) =>
					request.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
				),
		);
		const app = new Hono<AppEnv>()
			.use(requestId())
			.use(requestLog())
			.route(
				"/",
				fhirProxyRoutes({
					sessionFor: async () => ({ idHash: "h".repeat(43), api: new ScriptedSession(async () => connected("t")) }),
					fetch: upstream.fetch,
				}),
			);
		const response = await app.request(`${PROXY}/Patient/a-80000.E-14545`, {}, { ...env, FHIR_TIMEOUT_MS: "50" });
		expect(response.status).toBe(504);
	});

	it("stops reading athena when the client stops reading", async () => {
		let cancelled = false;
		let pulls = 0;
		const endless = new ReadableStream<Uint8Array>({
			pull(controller) {
				pulls++;
				controller.enqueue(new TextEncoder().encode(`{"fullUrl":"${FHIR_BASE}/Observation/${pulls}"},`));
			},
			cancel() {
				cancelled = true;
			},
		});
		const upstream = athena(() => new Response(endless, { headers: { "Content-Type": "application/fhir+json" } }));
		const response = await proxyWith(new ScriptedSession(async () => connected("t")), upstream)("/Observation");
		const reader = (response.body as ReadableStream<Uint8Array>).getReader();
		const first = await reader.read();
		expect(new TextDecoder().decode(first.value)).toContain(PROXY);
		await reader.cancel();
		expect(cancelled).toBe(true);
		expect(pulls).toBeLessThan(10);
	});
});

describe("FHIR proxy route: the audit record", () => {
	const lines: Array<Record<string, unknown>> = [];

	function captureLogs(): void {
		for (const method of ["log", "warn", "error"] as const) {
			vi.spyOn(console, method).mockImplementation((line: unknown) => {
				lines.push(JSON.parse(String(line)) as Record<string, unknown>);
			});
		}
	}

	afterEach(() => {
		vi.restoreAllMocks();
		lines.length = 0;
	});

	/** The proxy behind a middleware that notes a field for the request's log line, as sessionFor and others do. */
	function notingProxy(upstream: Upstream, options: FhirRouteOptions = {}) {
		const app = new Hono<AppEnv>();
		// As src/app.ts does: an AppError answers with its status, after the route has logged.
		app.onError((error, c) => c.json({ error: "refused" }, error instanceof AppError ? (error.status as 400) : 500));
		app
			.use(requestId({ headerName: "X-Request-Id" }))
			.use(requestLog())
			.use(async (c, next) => {
				c.get("logFields").client = "noted-before-the-route";
				await next();
			})
			.route(
				"/",
				fhirProxyRoutes({
					sessionFor: async () => ({ idHash: "h".repeat(43), api: new ScriptedSession(async () => connected("t")) }),
					fetch: upstream.fetch,
					...options,
				}),
			);
		return (path: string) => app.request(`${PROXY}${path}`, {}, env);
	}

	function requestLines(): Array<Record<string, unknown>> {
		return lines.filter((line) => line.msg === "fhir" || line.msg === "request");
	}

	it("carries what the request noted for its log line, as the one line of the request", async () => {
		captureLogs();
		const response = await notingProxy(athena(patientJson))("/Patient/a-80000.E-14545");
		await response.arrayBuffer();
		expect(requestLines()).toEqual([
			expect.objectContaining({
				msg: "fhir",
				client: "noted-before-the-route",
				resourceType: "Patient",
				interaction: "read",
				status: 200,
				upstreamStatus: 200,
				outcome: "complete",
			}),
		]);
	});

	it("says athena timed out when it sent no headers in time", async () => {
		captureLogs();
		const silent = athena(
			(request) =>
				new Promise<Response>((_, reject) =>
					request.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
				),
		);
		const response = await notingProxy(silent, { timeoutMs: 20 })("/Patient/a-80000.E-14545");
		expect(response.status).toBe(504);
		expect(requestLines()).toEqual([
			expect.objectContaining({
				msg: "fhir",
				client: "noted-before-the-route",
				resourceType: "Patient",
				status: 504,
				upstream: "timeout",
				outcome: "no-body",
			}),
		]);
	});

	it("says athena was unreachable when the network failed", async () => {
		captureLogs();
		const down = athena(() => {
			throw new TypeError("Network connection lost.");
		});
		expect((await notingProxy(down)("/Patient/a-80000.E-14545")).status).toBe(502);
		expect(requestLines()).toEqual([expect.objectContaining({ msg: "fhir", status: 502, upstream: "unreachable" })]);
	});

	it("names the refusal's error code for a path the proxy will not forward", async () => {
		captureLogs();
		const upstream = athena(patientJson);
		expect((await notingProxy(upstream)("/Patient/a%00b")).status).toBe(400);
		expect(upstream.requests).toHaveLength(0);
		expect(requestLines()).toEqual([
			expect.objectContaining({ msg: "fhir", status: 400, error: "fhir_path_refused", outcome: "no-body" }),
		]);
	});
});
