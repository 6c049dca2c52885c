import { env, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { parseConfig } from "../../src/config";
import { CONNECTION_ID_PATTERN } from "../../src/session/contract";
import { sealTokens } from "../../src/session/token-vault";
import { storedSession } from "./support/faults";
import { browserFetch, PATIENTS, sandbox, signIn } from "./support/sign-in";

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

/** Rewrites a signed-in session as the one-grant record stored before connections: `meta` with the grant, `tokens` sealed with AAD = idHash. */
async function storeAsLegacy(session: Awaited<ReturnType<typeof storedSession>>): Promise<void> {
	const config = parseConfig(env as unknown as Record<string, unknown>);
	const key = config.ok ? config.config.sessionKeys[0] : undefined;
	if (!key || !session.meta || !session.opened) throw new Error("no signed-in session");
	const { id: _id, serverName: _name, connectedAt: _at, ...grant } = session.meta;
	const sealed = await sealTokens(session.opened, key, session.idHash);
	await runInDurableObject(session.stub, async (instance: object, state) => {
		const stored = await state.storage.get<{ createdAt: number; lastSeenAt: number; absoluteExpiresAt: number }>(
			"meta",
		);
		await state.storage.deleteAll();
		await state.storage.put({
			meta: {
				idHash: session.idHash,
				...grant,
				createdAt: stored?.createdAt,
				lastSeenAt: stored?.lastSeenAt,
				absoluteExpiresAt: stored?.absoluteExpiresAt,
			},
			tokens: sealed,
		});
		await state.storage.setAlarm(Date.now() + 60_000);
		// As after an eviction: the next call reads storage again.
		Reflect.set(instance, "loaded", false);
		Reflect.set(instance, "tokens", new Map());
	});
}

describe("sessions stored before connections", () => {
	it("read as one connection: /session lists it, /fhir/r4 reads with its tokens, and the record is rewritten once", async () => {
		const { jar } = await signIn();
		const before = await storedSession(jar);
		await storeAsLegacy(before);

		const view = (await (await browserFetch(jar, "/session")).json()) as {
			status: string;
			patient: string;
			connections: Array<{ id: string; patient: string; fhirBase: string; status: string }>;
		};
		expect(view).toMatchObject({ status: "connected", patient: PATIENTS.jane.id });
		expect(view.connections).toHaveLength(1);
		const [connection] = view.connections;
		expect(connection?.id).toMatch(CONNECTION_ID_PATTERN);
		expect(connection).toMatchObject({ patient: PATIENTS.jane.id, status: "connected" });
		expect(connection?.fhirBase).toBe(`/fhir/${connection?.id}/r4`);
		expect((await browserFetch(jar, `/fhir/r4/Patient/${PATIENTS.jane.id}`)).status).toBe(200);

		const after = await storedSession(jar);
		expect(after.opened).toEqual(before.opened);
		const keys = await runInDurableObject(after.stub, async (_o, s) => [...(await s.storage.list()).keys()].sort());
		expect(keys).toEqual(["meta", `tokens:${connection?.id}`]);
	});

	it("a revoked one-grant session reads as revoked, and sign-out still works", async () => {
		const { jar } = await signIn();
		const before = await storedSession(jar);
		await storeAsLegacy({ ...before, meta: before.meta && { ...before.meta, status: "revoked" } });
		expect(await (await browserFetch(jar, "/session")).json()).toMatchObject({
			status: "revoked",
			patient: PATIENTS.jane.id,
			connections: [{ status: "revoked" }],
		});
		const out = await browserFetch(jar, "/logout", { method: "POST", headers: { Origin: "http://localhost:3000" } });
		expect(out.status).toBe(200);
		expect(await (await browserFetch(jar, "/session")).json()).toEqual({ status: "signed_out" });
	});
});
