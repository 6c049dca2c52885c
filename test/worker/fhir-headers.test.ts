import { describe, expect, it } from "vitest";
import { clientResponseHeaders, isJsonBody, upstreamRequestHeaders } from "../../src/fhir/headers";
import { AccessTokenCache, type ConnectedAccess } from "../../src/fhir/token-cache";

describe("upstreamRequestHeaders", () => {
	const browser = new Headers({
		Accept: "application/fhir+json;q=1, application/json;q=0.5",
		"If-None-Match": 'W/"3"',
		"If-Modified-Since": "Tue, 01 Oct 2024 00:00:00 GMT",
		Prefer: "handling=strict",
		Cookie: "__Host-athena_session=secret",
		Authorization: "Bearer browser-token",
		"X-Forwarded-For": "203.0.113.9",
		Origin: "https://evil.example",
		"Accept-Encoding": "gzip",
	});

	it("forwards Accept, If-None-Match, If-Modified-Since and Prefer, and the session's token only", () => {
		const headers = upstreamRequestHeaders(browser, "session-token");
		expect(Object.fromEntries(headers)).toEqual({
			accept: "application/fhir+json;q=1, application/json;q=0.5",
			"if-none-match": 'W/"3"',
			"if-modified-since": "Tue, 01 Oct 2024 00:00:00 GMT",
			prefer: "handling=strict",
			authorization: "Bearer session-token",
		});
	});

	it("asks for FHIR JSON when the client sent no Accept", () => {
		expect(upstreamRequestHeaders(new Headers(), "t").get("Accept")).toBe("application/fhir+json");
	});
});

describe("clientResponseHeaders", () => {
	const athena = new Headers({
		"Content-Type": "application/fhir+json; charset=utf-8",
		"Content-Length": "1234",
		ETag: 'W/"7"',
		"Last-Modified": "Tue, 01 Oct 2024 00:00:00 GMT",
		"Retry-After": "60",
		"Set-Cookie": "AWSALB=abc; Path=/",
		Connection: "keep-alive",
		"Keep-Alive": "timeout=5",
		"Transfer-Encoding": "chunked",
		"Cache-Control": "public, max-age=3600",
		"WWW-Authenticate": 'Bearer realm="fhir"',
		Location: "https://api.platform.athenahealth.com/fhir/r4/Patient/1",
		"X-Amzn-Trace-Id": "Root=1-abc",
	});

	it("drops Set-Cookie, hop-by-hop and unknown headers and marks the response private, no-store", () => {
		const headers = clientResponseHeaders(athena, "req-1", { bodyUnchanged: false });
		expect(Object.fromEntries(headers)).toEqual({
			"content-type": "application/fhir+json; charset=utf-8",
			etag: 'W/"7"',
			"last-modified": "Tue, 01 Oct 2024 00:00:00 GMT",
			"retry-after": "60",
			"cache-control": "private, no-store",
			"content-security-policy": "default-src 'none'; sandbox",
			"x-content-type-options": "nosniff",
			"x-request-id": "req-1",
		});
	});

	it("keeps Content-Length only for a body that passes through unchanged and uncompressed", () => {
		expect(clientResponseHeaders(athena, "r", { bodyUnchanged: true }).get("Content-Length")).toBe("1234");
		expect(clientResponseHeaders(athena, "r", { bodyUnchanged: false }).get("Content-Length")).toBeNull();
		const gzipped = new Headers(athena);
		gzipped.set("Content-Encoding", "gzip");
		expect(clientResponseHeaders(gzipped, "r", { bodyUnchanged: true }).get("Content-Length")).toBeNull();
	});
});

describe("isJsonBody", () => {
	it("treats FHIR JSON, JSON and +json types as JSON, and binary types as not", () => {
		expect(isJsonBody("application/fhir+json; charset=utf-8")).toBe(true);
		expect(isJsonBody("application/json")).toBe(true);
		expect(isJsonBody("application/pdf")).toBe(false);
		expect(isJsonBody("image/png")).toBe(false);
		expect(isJsonBody(null)).toBe(false);
	});
});

describe("AccessTokenCache", () => {
	const access = (expiresAt: number, token = "t1"): ConnectedAccess => ({
		status: "connected",
		accessToken: token,
		expiresAt,
		patient: "a-80000.E-14545",
		practice: "80000",
		fhirBaseUrl: "http://localhost:3001/fhir/r4",
	});

	it("serves a token for at most maxAgeMs", () => {
		let now = 1_000_000;
		const cache = new AccessTokenCache({ maxAgeMs: 15_000, now: () => now });
		cache.set("h1", access(now + 3_600_000));
		now += 14_999;
		expect(cache.get("h1")?.accessToken).toBe("t1");
		now += 1;
		expect(cache.get("h1")).toBeUndefined();
	});

	it("never serves a token within a minute of its expiry, so the session refreshes it first", () => {
		let now = 1_000_000;
		const cache = new AccessTokenCache({ maxAgeMs: 30_000, now: () => now });
		cache.set("h1", access(now + 70_000));
		now += 9_999;
		expect(cache.get("h1")).toBeDefined();
		now += 1;
		expect(cache.get("h1")).toBeUndefined();
		cache.set("h2", access(now + 60_000));
		expect(cache.get("h2")).toBeUndefined();
	});

	it("forgets a session's token on request and keeps sessions apart", () => {
		const cache = new AccessTokenCache({ now: () => 0 });
		cache.set("h1", access(3_600_000, "t1"));
		cache.set("h2", access(3_600_000, "t2"));
		cache.forget("h1");
		expect(cache.get("h1")).toBeUndefined();
		expect(cache.get("h2")?.accessToken).toBe("t2");
	});

	it("holds at most maxEntries sessions, dropping the oldest", () => {
		const cache = new AccessTokenCache({ maxEntries: 2, now: () => 0 });
		for (const id of ["a", "b", "c"]) cache.set(id, access(3_600_000, id));
		expect(cache.get("a")).toBeUndefined();
		expect(cache.get("b")?.accessToken).toBe("b");
		expect(cache.get("c")?.accessToken).toBe("c");
	});
});
