import { beforeEach, describe, expect, it } from "vitest";
import {
	call,
	control,
	exchangeCode,
	fhirGet,
	freshSandbox,
	JANE,
	login,
	ROWAN,
	SCOPE,
	signAssertion,
	signIn,
	type TestClientKey,
	type TokenBody,
	tokenRequest,
} from "./helpers";

describe("/_sandbox controls", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	const refresh = async (refreshToken: string | undefined) =>
		tokenRequest(
			{ grant_type: "refresh_token", refresh_token: refreshToken ?? "", scope: SCOPE },
			await signAssertion(key),
		);

	it("revoking a patient's grant gives invalid_grant on refresh and 401 on FHIR, other patients untouched", async () => {
		const jane = await login(key);
		const rowan = await login(key, ROWAN);
		const revoked = await control("revoke", { patient: JANE.id });
		expect(await revoked.json()).toEqual({ patient: JANE.id, revokedGrants: 1 });
		const refused = await refresh(jane.refresh_token);
		expect(refused.status).toBe(400);
		expect(((await refused.json()) as TokenBody).error).toBe("invalid_grant");
		expect((await fhirGet(`/Patient/${JANE.id}`, jane.access_token)).status).toBe(401);
		expect((await fhirGet(`/Patient/${ROWAN.id}`, rowan.access_token)).status).toBe(200);
	});

	it("expires every access token now while refresh keeps working", async () => {
		const jane = await login(key);
		expect(await (await control("expire-access-tokens")).json()).toEqual({ expired: 1 });
		const expired = await fhirGet(`/Patient/${JANE.id}`, jane.access_token);
		expect(expired.status).toBe(401);
		expect(expired.headers.get("WWW-Authenticate")).toContain("invalid_token");
		const renewed = (await (await refresh(jane.refresh_token)).json()) as TokenBody;
		expect((await fhirGet(`/Patient/${JANE.id}`, renewed.access_token)).status).toBe(200);
	});

	it("injects token endpoint statuses for the next N calls only", async () => {
		await control("faults", { target: "token", status: 503, times: 1 });
		const jane = await login(key).catch((error: Error) => error);
		expect(String(jane)).toMatch(/token answered 503/);
		const { location, verifier } = await signIn();
		const ok = await exchangeCode(key, location.searchParams.get("code") ?? "", verifier);
		expect(ok.status).toBe(200);
		await control("faults", { target: "token", status: 429, times: 1 });
		const limited = await refresh(((await ok.json()) as TokenBody).refresh_token);
		expect(limited.status).toBe(429);
		expect(limited.headers.get("Retry-After")).toBeTruthy();
	});

	it("answers the token endpoint with HTML or without patient/access_token on request", async () => {
		const jane = await login(key);
		await control("faults", { target: "token", response: "html", status: 502, times: 1 });
		const html = await refresh(jane.refresh_token);
		expect(html.status).toBe(502);
		expect(html.headers.get("Content-Type")).toMatch(/text\/html/);
		await control("faults", { target: "token", response: "missing_patient", times: 1 });
		const noPatient = (await (await refresh(jane.refresh_token)).json()) as TokenBody;
		expect(noPatient.access_token).toBeTruthy();
		expect(noPatient.patient).toBeUndefined();
		await control("faults", { target: "token", response: "missing_access_token", times: 1 });
		const noAccess = (await (await refresh(noPatient.refresh_token)).json()) as TokenBody;
		expect(noAccess.access_token).toBeUndefined();
		expect(noAccess.patient).toBe(JANE.id);
	});

	it("delays the token endpoint by the requested time", async () => {
		const jane = await login(key);
		await control("faults", { target: "token", delayMs: 400, times: 1 });
		const started = Date.now();
		expect((await refresh(jane.refresh_token)).status).toBe(200);
		expect(Date.now() - started).toBeGreaterThanOrEqual(390);
	});

	it("injects FHIR 5xx and cuts a FHIR stream mid-body", async () => {
		const jane = await login(key);
		await control("faults", { target: "fhir", status: 500, times: 2 });
		expect((await fhirGet(`/Patient/${JANE.id}`, jane.access_token)).status).toBe(500);
		expect((await fhirGet(`/Patient/${JANE.id}`, jane.access_token)).status).toBe(500);
		expect((await fhirGet(`/Patient/${JANE.id}`, jane.access_token)).status).toBe(200);

		await control("faults", { target: "fhir", cutAfterBytes: 1000, times: 1 });
		const cut = await fhirGet(
			`/Observation?patient=${JANE.id}&ah-practice=${JANE.practice}&_sandbox_bytes=1000000`,
			jane.access_token,
		);
		expect(cut.status).toBe(200);
		const reader = cut.body?.getReader();
		if (!reader) throw new Error("no body");
		let bytes = 0;
		const failure = await (async () => {
			for (;;) {
				const { done, value } = await reader.read();
				if (done) return null;
				bytes += value.byteLength;
			}
		})().catch((error: unknown) => error);
		expect(failure).toBeInstanceOf(Error);
		expect(bytes).toBe(1000);
	});

	it("applies runtime config overrides and refuses invalid ones", async () => {
		const updated = await call("/_sandbox/config", {
			method: "PUT",
			headers: { "Content-Type": "application/json" },
			body: JSON.stringify({ accessTokenTtl: 60, tokenRateLimit: 2 }),
		});
		expect(await updated.json()).toMatchObject({ accessTokenTtl: 60, tokenRateLimit: 2 });
		expect((await control("config", { accessTokenTtl: -1 })).status).toBe(400);
		expect((await control("config", { issuer: "not a url" })).status).toBe(400);
		expect((await control("config", { postLogoutRedirectUris: ["http://localhost:3000/?next=x"] })).status).toBe(400);
		expect((await control("faults", { target: "fhir", response: "html" })).status).toBe(400);
	});

	it("received keeps the last 500 token calls in arrival order and counts every call", async () => {
		const badBody = (n: number) =>
			call("/oauth2/v1/token", { method: "POST", headers: { "Content-Type": "text/plain" }, body: String(n) });
		for (let n = 0; n < 505; n += 25) {
			await Promise.all(Array.from({ length: Math.min(25, 505 - n) }, (_, i) => badBody(n + i)));
		}
		const received = (await (await call("/_sandbox/received")).json()) as {
			tokenCalls: Array<{ at: number; grantType: string | null; status: number }>;
			counts: Record<string, number>;
		};
		expect(received.counts.token).toBe(505);
		expect(received.tokenCalls).toHaveLength(500);
		expect(received.tokenCalls.every((t) => t.status === 400 && t.grantType === null)).toBe(true);
		const times = received.tokenCalls.map((t) => t.at);
		expect(times).toEqual([...times].sort((a, b) => a - b));
		// One more call drops the oldest entry and appends itself last.
		await badBody(505);
		const after = (await (await call("/_sandbox/received")).json()) as typeof received;
		expect(after.tokenCalls).toHaveLength(500);
		expect(after.tokenCalls.slice(0, 499)).toEqual(received.tokenCalls.slice(1));
		expect(after.counts.token).toBe(506);
	});

	it("reset forgets tokens, faults and overrides but keeps the id_token signing key", async () => {
		const keysBefore = await (await call("/oauth2/v1/keys?client_id=local-dev-client")).text();
		const jane = await login(key);
		await control("faults", { target: "fhir", status: 503 });
		await control("reset");
		expect((await fhirGet(`/Patient/${JANE.id}`, jane.access_token)).status).toBe(401);
		expect(await (await call("/_sandbox/faults")).json()).toEqual({});
		expect(((await (await call("/_sandbox/config")).json()) as { tokenRateLimit: number }).tokenRateLimit).toBe(5);
		expect(await (await call("/oauth2/v1/keys?client_id=local-dev-client")).text()).toBe(keysBefore);
		// Only the one FHIR call made after the reset is left in the log.
		expect(await (await call("/_sandbox/received")).json()).toEqual({
			assertions: [],
			tokenCalls: [],
			logouts: [],
			counts: { fhir: 1 },
		});
	});
});
