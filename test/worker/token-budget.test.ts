import { createExecutionContext, env, runInDurableObject, waitOnExecutionContext } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { app } from "../../src/app";
import { TOKEN_BUDGET_NAME, type TokenBudget } from "../../src/durable/token-budget";
import {
	authorizeAtSandbox,
	browserFetch,
	CookieJar,
	launch,
	PATIENTS,
	type Received,
	sandbox,
} from "./support/sign-in";

// The worker as deployed to preview: athena's budget of 5 new tokens a minute.
const previewBudgetEnv = { ...env, TOKEN_REQUESTS_PER_MINUTE: "5" };
async function worker(request: Request): Promise<Response> {
	const ctx = createExecutionContext();
	const response = await app.fetch(request, previewBudgetEnv, ctx);
	await waitOnExecutionContext(ctx);
	return response;
}

async function resetBudget() {
	const stub = env.TOKEN_BUDGET.get(env.TOKEN_BUDGET.idFromName(TOKEN_BUDGET_NAME));
	await runInDurableObject(stub, async (instance: TokenBudget, state) => {
		await state.storage.deleteAll();
		// Drop the in-memory copy too, as a fresh instance would.
		Reflect.set(instance, "window", undefined);
	});
}

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 5 });
	await resetBudget();
});

describe("token endpoint budget", () => {
	it("keeps a burst of sign-ins inside athena's 5 a minute: 503 + Retry-After, the sign-in kept for a retry", async () => {
		// Start near the beginning of a minute so all eight fall in one window.
		const secondsIntoMinute = (Date.now() / 1000) % 60;
		if (secondsIntoMinute > 45) await new Promise((r) => setTimeout(r, (61 - secondsIntoMinute) * 1000));
		const attempts = [];
		for (let i = 0; i < 8; i++) {
			const jar = new CookieJar();
			const authorize = await launch(jar, "practice=80000", worker);
			const callback = await authorizeAtSandbox(authorize.toString(), PATIENTS.jane);
			const path = `${callback.pathname}${callback.search}`;
			attempts.push({
				jar,
				path,
				response: await browserFetch(jar, path, { headers: { Accept: "text/html" } }, worker),
			});
		}
		const statuses = attempts.map((a) => a.response.status);
		expect(statuses.filter((s) => s === 302)).toHaveLength(5);
		const refused = attempts.filter((a) => a.response.status === 503);
		expect(refused).toHaveLength(3);
		for (const { response } of refused) {
			expect(Number(response.headers.get("Retry-After"))).toBeGreaterThan(0);
			const page = await response.text();
			expect(page).toContain("athenahealth is busy");
			expect(page).toContain("Try again");
		}
		const received = await sandbox<Received>("received");
		expect(received.tokenCalls.filter((c) => c.status === 429)).toHaveLength(0);

		// Nothing lost: once the budget allows, the same callback URL completes the sign-in.
		await resetBudget();
		await sandbox("config", { tokenRateLimit: 0 });
		const retry = refused[0];
		if (!retry) throw new Error("no refused attempt");
		const again = await browserFetch(retry.jar, retry.path, {}, worker);
		expect(again.status).toBe(302);
		expect(await (await browserFetch(retry.jar, "/session", {}, worker)).json()).toMatchObject({ status: "connected" });
	});

	it("stops after athena's own 429 instead of asking again in the same minute", async () => {
		await sandbox("faults", { target: "token", status: 429, times: 1 });
		const first = new CookieJar();
		const url = await authorizeAtSandbox((await launch(first, "practice=80000", worker)).toString(), PATIENTS.jane);
		const response = await browserFetch(first, `${url.pathname}${url.search}`, {}, worker);
		expect(response.status).toBe(503);
		expect(await response.json()).toMatchObject({ error: "athena_rate_limited" });
		const second = new CookieJar();
		const url2 = await authorizeAtSandbox((await launch(second, "practice=80000", worker)).toString(), PATIENTS.jane);
		const blocked = await browserFetch(second, `${url2.pathname}${url2.search}`, {}, worker);
		expect(blocked.status).toBe(503);
		expect(await blocked.json()).toMatchObject({ error: "token_budget_spent" });
		// The injected 429 is answered before the sandbox records a grant; had the second
		// sign-in been sent, the spent fault would have let it through and be recorded.
		const received = await sandbox<Received>("received");
		expect(received.tokenCalls.filter((c) => c.grantType === "authorization_code")).toHaveLength(0);
	});
});
