import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { settings } from "../../src/config";
import { TokenBudget, tokenBudgetName } from "../../src/durable/token-budget";
import { readServers } from "../../src/fhir/read-servers";
import { AccessTokenCache } from "../../src/fhir/token-cache";
import { upstreamReader } from "../../src/fhir/upstream-read";
import { type ConnectionPart, groupByPerson } from "../../src/pages/people";
import { peoplePage } from "../../src/pages/record";
import type { AccessResult, SessionView } from "../../src/session/contract";
import { accessTokenNearlyExpired, storedSession } from "./support/faults";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	launch,
	PATIENTS,
	type PatientBrowser,
	sandbox,
	signInKeepingAthena,
} from "./support/sign-in";

/*
 * SMART_SERVERS in test/worker/vitest.config.ts lists one more server,
 * "sandbox-twin": the local sandbox itself under another id, name and token
 * budget, as it is the only SMART server this pool can reach. Its profile is
 * "athena" because the sandbox's JWKS wants `?client_id=` as athena's does,
 * so id_tokens could not be checked under the "smart" profile; a server with
 * the smart profile is run for real by the `smart` project (test/smart/).
 */
const TWIN = "sandbox-twin";
/** A minute's start, so every call of a test falls in the same budget window whatever second it runs. */
const PINNED_MINUTE = Date.UTC(2026, 11, 3, 14, 0, 0);

function budgetStub(serverId: string) {
	return env.TOKEN_BUDGET.get(env.TOKEN_BUDGET.idFromName(tokenBudgetName(serverId)));
}

/** A fresh budget object for `serverId`, its clock pinned to PINNED_MINUTE. */
async function freshBudget(serverId: string): Promise<void> {
	await runInDurableObject(budgetStub(serverId), async (instance: TokenBudget, state) => {
		await state.storage.deleteAll();
		const fresh = new TokenBudget(state, env);
		for (const field of ["window", "failures", "refreshes"]) Reflect.set(instance, field, Reflect.get(fresh, field));
		Reflect.set(instance, "clock", () => PINNED_MINUTE + 1000);
	});
}

/** How many token calls `serverId`'s budget has counted in the pinned minute. */
async function budgetUsed(serverId: string): Promise<number> {
	return runInDurableObject(budgetStub(serverId), async (_instance: TokenBudget, state) => {
		const window = await state.storage.get<{ minute: number; used: number }>("window");
		return window?.minute === Math.floor(PINNED_MINUTE / 60_000) ? window.used : 0;
	});
}

async function sessionView(jar: CookieJar): Promise<SessionView> {
	return (await (await browserFetch(jar, "/session")).json()) as SessionView;
}

/** "Connect another record" at the twin server: `/launch?connect=1&server=…`, the sandbox's picker, the callback. */
async function connectAtTwin(browser: PatientBrowser, record: { id: string }): Promise<Response> {
	const authorize = await launch(browser.jar, `connect=1&server=${TWIN}`);
	const noPassword = { ...PATIENTS.jane, password: "athena-must-not-ask" };
	const callbackUrl = await authorizeAtSandbox(authorize.toString(), noPassword, "allow", record.id, browser.athena);
	return browserFetch(browser.jar, `${callbackUrl.pathname}${callbackUrl.search}`);
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
	await freshBudget("athena");
	await freshBudget(TWIN);
});

describe("other SMART servers", () => {
	it("keeps athena's budget object under its name from before servers, and names each server's apart", () => {
		expect(tokenBudgetName("athena")).toBe("athena-token-endpoint");
		expect(tokenBudgetName(TWIN)).toBe("server:sandbox-twin:token-endpoint");
	});

	it("launches at the named server: its FHIR base as aud, its client id, and the state keeps its id", async () => {
		const authorize = await launch(new CookieJar(), `server=${TWIN}`);
		expect(authorize.origin).toBe("http://localhost:3001");
		expect(authorize.searchParams.get("aud")).toBe("http://localhost:3001/fhir/r4");
		expect(authorize.searchParams.get("client_id")).toBe("local-dev-client");
	});

	it("refuses an unknown server with 400, as a page for people and JSON for programs", async () => {
		const jar = new CookieJar();
		const page = await browserFetch(jar, "/launch?server=nowhere", { headers: { Accept: "text/html" } });
		expect(page.status).toBe(400);
		expect(await page.text()).toContain("This app does not know that record server.");
		const json = await browserFetch(jar, "/launch?server=nowhere", { headers: { Accept: "application/json" } });
		expect(json.status).toBe(400);
		expect(await json.json()).toMatchObject({ error: "server_unknown" });
		expect(page.headers.get("Location")).toBeNull();
	});

	it("connects athena and a listed server in one session, each read at its own base, each budget counted apart", async () => {
		const browser = await signInKeepingAthena();
		expect(await budgetUsed("athena")).toBe(1);
		expect(await budgetUsed(TWIN)).toBe(0);

		// The same patient at the twin server is a record of its own, not athena's connected again.
		const connected = await connectAtTwin(browser, PATIENTS.jane);
		expect(connected.status).toBe(302);
		expect(await budgetUsed("athena")).toBe(1);
		expect(await budgetUsed(TWIN)).toBe(1);

		const view = await sessionView(browser.jar);
		expect(view.connections?.map((c) => [c.patient, c.server, c.serverId, c.status])).toEqual([
			[PATIENTS.jane.id, "athenahealth", undefined, "connected"],
			[PATIENTS.jane.id, "Sandbox Twin Clinic", TWIN, "connected"],
		]);
		const [athenaId, twinId] = view.connections?.map((c) => c.id) ?? [];
		const twin = await storedSession(browser.jar, twinId);
		expect(twin.meta).toMatchObject({
			serverId: TWIN,
			fhirBaseUrl: "http://localhost:3001/fhir/r4",
			server: { tokenUrl: "http://localhost:3001/oauth2/v1/token", clientId: "local-dev-client" },
		});
		expect((await storedSession(browser.jar, athenaId)).meta?.serverId).toBeUndefined();

		for (const id of [athenaId, twinId]) {
			const read = await browserFetch(browser.jar, `/fhir/${id}/r4/AllergyIntolerance?patient=${PATIENTS.jane.id}`);
			expect(read.status).toBe(200);
			const body = await read.text();
			// Links come back under the mount read through, never naming the server's base.
			expect(body).not.toContain("localhost:3001");
			expect(body).toContain(`/fhir/${id}/r4/`);
		}

		// A refresh of the twin's connection spends the twin's budget only.
		await accessTokenNearlyExpired(twin.stub, twinId);
		const refreshed = await twin.stub.accessToken(twinId);
		expect(refreshed).toMatchObject({ status: "connected", serverId: TWIN });
		expect(refreshed.status === "connected" && refreshed.accessToken).not.toBe(twin.opened?.accessToken);
		expect(await budgetUsed(TWIN)).toBe(2);
		expect(await budgetUsed("athena")).toBe(1);
	});

	it("offers each listed server on the home page and under Connect another record, by name", async () => {
		const home = await (await browserFetch(new CookieJar(), "/")).text();
		expect(home).toContain('<button type="submit">Connect with athenahealth</button>');
		expect(home).toMatch(
			/<input type="hidden" name="server" value="sandbox-twin"\/><div class="actions"><button type="submit">Connect with Sandbox Twin Clinic<\/button>/,
		);
		const browser = await signInKeepingAthena();
		const record = await (await browserFetch(browser.jar, "/record")).text();
		expect(record).toMatch(
			/name="connect" value="1"\/><input type="hidden" name="server" value="sandbox-twin"\/>.*Connect a record at Sandbox Twin Clinic<\/button>/,
		);
	});
});

describe("the record page with listed servers", () => {
	/** athena's record and the twin server's, both in `outcome`, on one people page. */
	async function pageOf(outcome: ConnectionPart["outcome"]): Promise<string> {
		const part = (connectionId: string, server: string, serverId?: string): ConnectionPart => ({
			connectionId,
			patient: `p-${connectionId}`,
			practice: undefined,
			server,
			...(serverId ? { serverId } : {}),
			outcome,
		});
		const parts = [part("aaaaaaaa", "athenahealth"), part("bbbbbbbb", "Sandbox Twin Clinic", TWIN)];
		return String(await peoplePage(groupByPerson(parts), [{ id: TWIN, name: "Sandbox Twin Clinic" }]));
	}

	it("connects a revoked record of a listed server again at that server, and athena's at athena", async () => {
		const page = await pageOf({ state: "revoked" });
		const again = [...page.matchAll(/<form [^>]*>((?:(?!<\/form>).)*)Connect this record again<\/button>/g)];
		expect(again.map((m) => /name="server" value="([^"]+)"/.exec(m[1] ?? "")?.[1])).toEqual([undefined, TWIN]);
	});

	it("names the server that could not provide a record, athena's as athenahealth", async () => {
		const page = await pageOf({ state: "unavailable", reason: "down", retryAfterSeconds: 30 });
		expect(
			[...page.matchAll(/<p class="notice" role="status">([^<]+) could not provide this record/g)].map((m) => m[1]),
		).toEqual(["athenahealth", "Sandbox Twin Clinic"]);
	});
});

describe("the upstream reader with listed servers", () => {
	const elsewhere = "https://fhir.elsewhere.example/r4";
	function access(serverId: string | undefined, fhirBaseUrl: string): AccessResult {
		const practice = serverId ? undefined : "80000";
		return {
			status: "connected",
			accessToken: "tok",
			expiresAt: Date.now() + 3_600_000,
			patient: "p1",
			practice,
			fhirBaseUrl,
			...(serverId ? { serverId } : {}),
		};
	}
	function reader(answer: AccessResult) {
		const sent: string[] = [];
		const config = {
			...settings(env),
			smartServers: [
				{
					id: "elsewhere",
					name: "Elsewhere",
					fhirBaseUrl: elsewhere,
					clientId: "c",
					profile: "smart" as const,
					tokenRequestsPerMinute: 5,
				},
			],
		};
		const read = upstreamReader({
			session: {
				idHash: "h".repeat(43),
				api: { accessToken: async () => answer, refreshAfterUnauthorized: async () => answer },
			},
			...readServers(config),
			tokenCache: new AccessTokenCache(),
			fetch: async (input) => {
				sent.push(String(input));
				return Response.json({ resourceType: "Bundle" });
			},
			timeoutMs: 1000,
			requestId: "req-test",
		});
		const search = { path: "/Condition", query: "patient=p1", method: "GET" as const, headers: new Headers() };
		return { read: () => read(search), sent };
	}

	it("sends a listed server's token to that server's base, with its own profile's search rules", async () => {
		const { read, sent } = reader(access("elsewhere", elsewhere));
		const result = await read();
		expect(result).toMatchObject({ kind: "response", fhirBaseUrl: elsewhere });
		// The smart profile adds no ah-practice.
		expect(sent).toEqual([`${elsewhere}/Condition?patient=p1`]);
	});

	it("sends nothing when a connection's base is not its server's, or its server is no longer listed", async () => {
		const athenaBase = settings(env).athena.fhirBaseUrl;
		for (const answer of [access("elsewhere", athenaBase), access(undefined, elsewhere)]) {
			const { read, sent } = reader(answer);
			expect(await read()).toMatchObject({ kind: "state", state: { status: "signed_out" } });
			expect(sent).toEqual([]);
		}
		const { read, sent } = reader(access("gone", elsewhere));
		expect(await read()).toMatchObject({ kind: "state", state: { status: "unavailable", code: "server_not_listed" } });
		expect(sent).toEqual([]);
	});
});
