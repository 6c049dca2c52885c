import { decodeJwt } from "jose";
import { beforeEach, describe, expect, it } from "vitest";
import {
	advanceClock,
	authorizeUrl,
	type ClockReading,
	call,
	control,
	exchangeCode,
	fhirGet,
	form,
	freezeClock,
	freshSandbox,
	JANE,
	jwksFetches,
	login,
	requestIdFrom,
	signAssertion,
	signIn,
	startOfThisMinute,
	type TestClientKey,
	type TokenBody,
	tokenRequest,
} from "./helpers";

/** Any fixed instant; the controls tests need none near the real time. */
const INSTANT = Date.UTC(2031, 0, 15, 9, 30, 0);

async function readClock(): Promise<ClockReading> {
	return (await (await call("/_sandbox/clock")).json()) as ClockReading;
}

describe("/_sandbox/clock", () => {
	let key: TestClientKey;
	beforeEach(async () => {
		key = await freshSandbox();
	});

	it("runs on the real time until frozen, then stands still and moves only when advanced", async () => {
		expect((await readClock()).frozen).toBe(false);
		expect(await freezeClock(INSTANT)).toEqual({ now: INSTANT, frozen: true });
		expect(await readClock()).toEqual({ now: INSTANT, frozen: true });
		expect(await advanceClock(1500)).toEqual({ now: INSTANT + 1500, frozen: true });
		expect(await advanceClock(0)).toEqual({ now: INSTANT + 1500, frozen: true });
		const released = await call("/_sandbox/clock", { method: "DELETE" });
		expect(((await released.json()) as ClockReading).frozen).toBe(false);
		expect((await readClock()).frozen).toBe(false);
	});

	it("refuses to advance a clock that is not frozen, and malformed bodies", async () => {
		const notFrozen = await control("clock", { advanceMs: 1000 });
		expect(notFrozen.status).toBe(409);
		expect(await notFrozen.json()).toMatchObject({ error: "clock_not_frozen" });
		for (const bad of [
			{},
			{ now: INSTANT, advanceMs: 1 },
			{ now: -1 },
			{ now: 1.5 },
			{ now: "1" },
			{ advanceMs: -1 },
		]) {
			expect((await control("clock", bad)).status).toBe(400);
		}
		expect((await readClock()).frozen).toBe(false);
	});

	it("is released by reset", async () => {
		await freezeClock(INSTANT);
		await control("reset");
		expect((await readClock()).frozen).toBe(false);
	});

	it("stamps the received log with the sandbox's time", async () => {
		await freezeClock(INSTANT);
		await call("/oauth2/v1/token", { method: "POST", headers: { "Content-Type": "text/plain" }, body: "x" });
		const received = (await (await call("/_sandbox/received")).json()) as { tokenCalls: Array<{ at: number }> };
		expect(received.tokenCalls).toEqual([expect.objectContaining({ at: INSTANT })]);
	});

	// From here on the sandbox issues tokens, so the frozen time stays near the
	// real time the helpers sign client assertions with (see startOfThisMinute).

	it("expires an access token at its lifetime by the sandbox's clock", async () => {
		const frozenAt = startOfThisMinute();
		await freezeClock(frozenAt);
		await control("config", { accessTokenTtl: 60 });
		const tokens = await login(key);
		const introspected = (await (
			await tokenRequest({ token: tokens.access_token ?? "" }, await signAssertion(key), "/oauth2/v1/introspect")
		).json()) as { iat: number; exp: number };
		expect(introspected).toMatchObject({ iat: frozenAt / 1000, exp: frozenAt / 1000 + 60 });
		await advanceClock(59_999);
		expect((await fhirGet(`/Patient/${JANE.id}`, tokens.access_token)).status).toBe(200);
		await advanceClock(1);
		expect((await fhirGet(`/Patient/${JANE.id}`, tokens.access_token)).status).toBe(401);
	});

	it("signs the id_token with the sandbox's time", async () => {
		const frozenAt = startOfThisMinute();
		await freezeClock(frozenAt);
		const claims = decodeJwt((await login(key)).id_token ?? "");
		expect(claims).toMatchObject({ iat: frozenAt / 1000, exp: frozenAt / 1000 + 3600, auth_time: frozenAt / 1000 });
	});

	it("expires an authorization code 90 s after it was issued", async () => {
		await freezeClock(startOfThisMinute());
		const first = await signIn();
		const second = await signIn();
		await advanceClock(89_999);
		const exchanged = await exchangeCode(key, first.location.searchParams.get("code") ?? "", first.verifier);
		expect(exchanged.status).toBe(200);
		await advanceClock(1);
		const late = await exchangeCode(key, second.location.searchParams.get("code") ?? "", second.verifier);
		expect(late.status).toBe(400);
		expect(((await late.json()) as TokenBody).error_description).toMatch(/unknown or expired/);
	});

	it("forgets a pending sign-in after 10 minutes", async () => {
		await freezeClock(startOfThisMinute());
		const request = requestIdFrom(await (await call(await authorizeUrl())).text());
		await advanceClock(600_000);
		const late = await call(
			"/oauth2/v1/authorize/signin",
			form({ request, username: JANE.username, password: JANE.password }),
		);
		expect(late.status).toBe(400);
		expect(await late.text()).toMatch(/expired/);
	});

	it("keeps the client's JWKS for exactly its max-age", async () => {
		const { now } = await freezeClock(startOfThisMinute());
		const present = async (at: number) =>
			tokenRequest(
				{ grant_type: "refresh_token", refresh_token: "unknown", scope: "openid" },
				await signAssertion(key, { at }),
			);
		expect((await present(now)).status).toBe(400);
		await advanceClock(299_999);
		expect((await present(now + 299_999)).status).toBe(400);
		expect(await jwksFetches()).toBe(1);
		await advanceClock(1);
		expect((await present(now + 300_000)).status).toBe(400);
		expect(await jwksFetches()).toBe(2);
	});
});
