import { describe, expect, it, vi } from "vitest";
import { AccessTokenCache } from "../../src/fhir/token-cache";
import { type ReadSessionApi, type UpstreamReadRequest, upstreamReader } from "../../src/fhir/upstream-read";
import type { AccessResult } from "../../src/session/contract";

/*
 * The upstream reader on its own: plain inputs (a session, the FHIR base, a
 * fetch, a timeout) and a typed result, as both the proxy route and the
 * record page use it. The route's mapping of these results to HTTP is in
 * fhir-route.test.ts.
 */

const FHIR_BASE = "http://localhost:3001/fhir/r4";
const ID_HASH = "h".repeat(43);

function connected(token: string): AccessResult {
	return {
		status: "connected",
		accessToken: token,
		expiresAt: Date.now() + 3_600_000,
		patient: "a-80000.E-14545",
		practice: "80000",
		fhirBaseUrl: FHIR_BASE,
	};
}

function readerWith(
	api: ReadSessionApi,
	answer: (request: Request) => Response | Promise<Response>,
	tokenCache = new AccessTokenCache(),
) {
	const sent: Request[] = [];
	const read = upstreamReader({
		session: { idHash: ID_HASH, api },
		fhirBaseUrl: FHIR_BASE,
		completeSearches: true,
		tokenCache,
		fetch: async (input, init) => {
			const request = new Request(input, init);
			sent.push(request);
			return answer(request);
		},
		timeoutMs: 20,
		requestId: "req-test",
	});
	return { read, sent, tokenCache };
}

const PATIENT_READ: UpstreamReadRequest = {
	path: "/Patient/a-80000.E-14545",
	query: "",
	method: "GET",
	headers: new Headers(),
};

describe("upstream reader", () => {
	it("gives the session's state, and sends nothing to athena, when the session is not connected", async () => {
		const { read, sent } = readerWith(
			{
				accessToken: async () => ({ status: "revoked" }),
				refreshAfterUnauthorized: async () => ({ status: "revoked" }),
			},
			() => new Response("{}"),
		);
		expect(await read(PATIENT_READ)).toEqual({ kind: "state", state: { status: "revoked" }, outbound: undefined });
		expect(sent).toHaveLength(0);
	});

	it("gives athena's answer with the outbound request it made, completed with the session's practice and patient", async () => {
		const { read, sent } = readerWith(
			{ accessToken: async () => connected("t"), refreshAfterUnauthorized: async () => connected("t") },
			() => new Response('{"resourceType":"Bundle"}', { status: 200 }),
		);
		const result = await read({ ...PATIENT_READ, path: "/Condition", query: "_count=5" });
		expect(result.kind).toBe("response");
		expect(result.outbound).toMatchObject({ resourceType: "Condition", interaction: "search-type" });
		expect(sent[0]?.url).toBe(
			`${FHIR_BASE}/Condition?_count=5&ah-practice=Organization/a-1.Practice-80000&patient=a-80000.E-14545`,
		);
		expect(sent[0]?.headers.get("Authorization")).toBe("Bearer t");
	});

	it("gives a timeout state, naming what it tried to read, when athena sends no headers in time", async () => {
		const { read } = readerWith(
			{ accessToken: async () => connected("t"), refreshAfterUnauthorized: async () => connected("t") },
			(request) =>
				new Promise<Response>((_, reject) =>
					request.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
				),
		);
		const result = await read(PATIENT_READ);
		expect(result).toMatchObject({
			kind: "state",
			state: { status: "timeout" },
			outbound: { resourceType: "Patient" },
		});
	});

	it("after athena refuses two refreshed tokens, gives athena's 401 and keeps no token for the session", async () => {
		let n = 0;
		const { read, sent, tokenCache } = readerWith(
			{ accessToken: async () => connected("t-0"), refreshAfterUnauthorized: async () => connected(`t-${++n}`) },
			() => new Response(null, { status: 401 }),
		);
		const result = await read(PATIENT_READ);
		expect(result.kind === "response" && result.response.status).toBe(401);
		expect(sent.map((r) => r.headers.get("Authorization"))).toEqual(["Bearer t-0", "Bearer t-1", "Bearer t-2"]);
		expect(tokenCache.get(ID_HASH)).toBeUndefined();
	});

	it("keeps the refreshed token for the session's next read once athena accepts it", async () => {
		const { read, tokenCache } = readerWith(
			{ accessToken: async () => connected("stale"), refreshAfterUnauthorized: async () => connected("fresh") },
			(request) => new Response(null, { status: request.headers.get("Authorization") === "Bearer fresh" ? 200 : 401 }),
		);
		const result = await read(PATIENT_READ);
		expect(result.kind === "response" && result.response.status).toBe(200);
		expect(tokenCache.get(ID_HASH)).toMatchObject({ accessToken: "fresh" });
	});
	it("gives up a read nobody wants any more: no request once it is aborted, no refresh after athena's 401, nothing logged", async () => {
		let refreshed = 0;
		const api: ReadSessionApi = {
			accessToken: async () => connected("stale"),
			refreshAfterUnauthorized: async () => {
				refreshed++;
				return connected("fresh");
			},
		};
		const unwanted = new AbortController();
		// athena answers 401 just as the export ends.
		const { read, sent } = readerWith(api, () => {
			unwanted.abort();
			return new Response(null, { status: 401 });
		});
		expect(await read({ ...PATIENT_READ, signal: unwanted.signal })).toMatchObject({
			kind: "state",
			state: { status: "unreachable" },
		});
		expect(refreshed).toBe(0);
		expect(sent).toHaveLength(1);

		const lines: string[] = [];
		const spies = (["log", "warn", "error"] as const).map((level) =>
			vi.spyOn(console, level).mockImplementation((line) => lines.push(String(line))),
		);
		expect(await read({ ...PATIENT_READ, signal: unwanted.signal })).toMatchObject({
			state: { status: "unreachable" },
		});
		for (const spy of spies) spy.mockRestore();
		expect(sent).toHaveLength(1);
		expect(lines).toEqual([]);
	});

	it("stops waiting for athena's headers when the read is given up", async () => {
		const unwanted = new AbortController();
		const { read } = readerWith(
			{ accessToken: async () => connected("t"), refreshAfterUnauthorized: async () => connected("t") },
			(request) => {
				queueMicrotask(() => unwanted.abort());
				return new Promise<Response>((_, reject) =>
					request.signal.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))),
				);
			},
		);
		expect(await read({ ...PATIENT_READ, signal: unwanted.signal })).toMatchObject({
			kind: "state",
			state: { status: "unreachable" },
		});
	});
});
