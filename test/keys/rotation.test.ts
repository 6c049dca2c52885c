import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { importPKCS8, SignJWT } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { run } from "../../scripts/keys/cli.mjs";
import { tempDir } from "./helpers.js";
import { type DevServer, freePort, localProject, ROOT, wranglerDev } from "./local-services.js";

/*
 * The real shape of a rotation: the worker (`wrangler dev`, serving the JWKS
 * from its local KV with a short max-age) and the sandbox (`wrangler dev -c
 * sandbox/wrangler.toml`, caching the worker's JWKS for that max-age and never
 * refetching on an unknown kid, as athena would), while a loop makes
 * client-authenticated introspect calls signed with whatever SIGNING_KEY holds
 * at that instant, and the CLI runs init, add, activate and retire.
 */
// Long enough that `rotate activate` run right after `rotate add` is still early
// on a busy two-core machine, where each wrangler command takes seconds.
const MAX_AGE_SECONDS = 20;
const CLIENT_ID = "local-dev-client";

interface Attempt {
	kid: string;
	status: number;
	error?: string;
}

describe("zero-downtime rotation against the local worker and sandbox", () => {
	const tmp = tempDir("keys-rotation-");
	let worker: DevServer | undefined;
	let sandbox: DevServer | undefined;
	let flags: string[] = [];
	const lines: string[] = [];
	const cli = async (...args: string[]) => {
		lines.length = 0;
		const code = await run([...args, ...flags], {
			cwd: ROOT,
			out: (l) => lines.push(l),
			err: (l) => lines.push(l),
		});
		return { code, text: lines.join("\n") };
	};

	/**
	 * The command the CLI printed on the line that starts with `lead`, as
	 * arguments: the rotation follows the CLI's own hints, which must work
	 * for any kid (one in 64 starts with "-").
	 */
	const printedCommand = (text: string, lead: string): string[] => {
		const line = text.split("\n").find((l) => l.startsWith(lead)) ?? "";
		const command = /npm run keys -- (.+)$/.exec(line)?.[1];
		if (!command) throw new Error(`no command printed after ${JSON.stringify(lead)} in:\n${text}`);
		return command.split(" ");
	};

	beforeAll(async () => {
		const ports = { worker: await freePort(), sandbox: await freePort() };
		const configPath = localProject(tmp.dir, ports, MAX_AGE_SECONDS);
		flags = [
			"--env",
			"local",
			"--config",
			configPath,
			"--persist-to",
			join(tmp.dir, "state"),
			"--keys-dir",
			join(tmp.dir, ".keys"),
			"--dev-vars",
			join(tmp.dir, ".dev.vars"),
		];
		const initialised = await cli("init");
		expect(initialised.code, initialised.text).toBe(0);
		[worker, sandbox] = await Promise.all([
			wranglerDev(
				["--config", configPath, "--persist-to", join(tmp.dir, "state")],
				ports.worker,
				"/.well-known/jwks.json",
			),
			wranglerDev(
				[
					"--config",
					join(ROOT, "sandbox/wrangler.toml"),
					"--persist-to",
					join(tmp.dir, "sandbox-state"),
					"--var",
					`SANDBOX_CLIENT_JWKS_URL:http://localhost:${ports.worker}/.well-known/jwks.json`,
					"--var",
					"SANDBOX_TOKEN_RATE_LIMIT:0",
				],
				ports.sandbox,
				"/fhir/r4/.well-known/smart-configuration",
			),
		]);
	}, 180_000);

	afterAll(async () => {
		await Promise.all([worker?.stop(), sandbox?.stop()]);
		tmp.remove();
	});

	/** What the worker signs with right now: the local SIGNING_KEY secret. */
	const signingKeys = new Map<string, { key: CryptoKey; kid: string }>();
	async function activeSigner() {
		const text = readFileSync(join(tmp.dir, ".dev.vars"), "utf8");
		const pem = /^SIGNING_KEY="(.*)"$/m.exec(text)?.[1]?.replaceAll("\\n", "\n");
		if (!pem) throw new Error("no SIGNING_KEY in .dev.vars");
		let signer = signingKeys.get(pem);
		if (!signer) {
			const key = await importPKCS8(pem, "RS384");
			const { createPublicKey, createHash } = await import("node:crypto");
			const { n, e } = createPublicKey(pem).export({ format: "jwk" }) as { n: string; e: string };
			const kid = createHash("sha256")
				.update(JSON.stringify({ e, kty: "RSA", n }))
				.digest("base64url");
			signer = { key, kid };
			signingKeys.set(pem, signer);
		}
		return signer;
	}

	async function introspect(sandboxUrl: string): Promise<Attempt> {
		const { key, kid } = await activeSigner();
		const now = Math.floor(Date.now() / 1000);
		const assertion = await new SignJWT({ jti: randomUUID() })
			.setProtectedHeader({ alg: "RS384", typ: "JWT", kid })
			.setIssuer(CLIENT_ID)
			.setSubject(CLIENT_ID)
			.setAudience(`${sandboxUrl}/oauth2/v1/token`)
			.setIssuedAt(now)
			.setExpirationTime(now + 60)
			.sign(key);
		const response = await fetch(`${sandboxUrl}/oauth2/v1/introspect`, {
			method: "POST",
			body: new URLSearchParams({
				client_assertion_type: "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
				client_assertion: assertion,
				token: "not-a-real-token",
			}),
		});
		const body = await response.text();
		return { kid, status: response.status, ...(response.status === 200 ? {} : { error: body }) };
	}

	async function publishedKids(): Promise<string[]> {
		const response = await fetch(`${worker?.url}/.well-known/jwks.json`);
		return ((await response.json()) as { keys: { kid: string }[] }).keys.map((k) => k.kid);
	}

	async function jwksFetches(sandboxUrl: string): Promise<number> {
		const received = (await (await fetch(`${sandboxUrl}/_sandbox/received`)).json()) as {
			counts: { jwksFetch: number };
		};
		return received.counts.jwksFetch;
	}

	async function until(condition: () => Promise<boolean>, what: string, timeoutMs = 30_000) {
		const deadline = Date.now() + timeoutMs;
		while (!(await condition())) {
			if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
			await new Promise((r) => setTimeout(r, 250));
		}
	}

	it("init, add, activate and retire while introspect calls signed with the active key never fail", async () => {
		const sandboxUrl = sandbox?.url ?? "";
		const attempts: Attempt[] = [];
		let running = true;
		const loop = (async () => {
			while (running) {
				attempts.push(await introspect(sandboxUrl));
				await new Promise((r) => setTimeout(r, 100));
			}
		})();
		try {
			const first = (await activeSigner()).kid;
			await new Promise((r) => setTimeout(r, 2000));

			const added = await cli("rotate", "add");
			expect(added.code, added.text).toBe(0);
			const next = /Published key (\S+)/.exec(added.text)?.[1] ?? "";
			// The worker keeps the JWKS it read from KV for up to 10 s per isolate (JWKS_KV_CACHE_SECONDS).
			await until(
				async () => JSON.stringify(await publishedKids()) === JSON.stringify([first, next]),
				"the worker to publish the next key beside the first",
				15_000,
			);

			const activate = printedCommand(added.text, "Activate it after");
			expect(activate).toEqual(["rotate", "activate", `--kid=${next}`, "--env", "local"]);
			const tooEarly = await cli(...activate);
			expect(tooEarly.code).toBe(1);
			expect(tooEarly.text).toContain("Activate after");
			expect((await activeSigner()).kid).toBe(first);

			const readyAt = Date.parse(/Activate it after (\S+):/.exec(added.text)?.[1] ?? "");
			await new Promise((r) => setTimeout(r, Math.max(0, readyAt - Date.now() + 500)));
			const activated = await cli(...activate);
			expect(activated.code, activated.text).toBe(0);
			expect((await activeSigner()).kid).toBe(next);
			// The worker reloads with the new SIGNING_KEY and serves its signer first.
			await until(async () => (await publishedKids())[0] === next, "the worker to sign with the new key");

			const retireActive = await cli("rotate", "retire", `--kid=${next}`);
			expect(retireActive.code).toBe(1);
			expect(retireActive.text).toContain("is the one local signs with");

			const fetchesBeforeRetire = await jwksFetches(sandboxUrl);
			// Retiring waits for every isolate to sign with the new key (10 s locally: the JWKS isolate cache).
			const retire = printedCommand(activated.text, `Key ${first} stays published`);
			expect(retire).toEqual(["rotate", "retire", `--kid=${first}`, "--env", "local"]);
			let retired = await cli(...retire);
			expect(retired.code === 0 || retired.text.includes("so every location signs with it"), retired.text).toBe(true);
			await until(
				async () => {
					if (retired.code !== 0) retired = await cli(...retire);
					return retired.code === 0;
				},
				"retire to be allowed",
				20_000,
			);
			expect(retired.code, retired.text).toBe(0);
			await until(
				async () => JSON.stringify(await publishedKids()) === JSON.stringify([next]),
				"the worker to stop publishing the retired key",
				15_000,
			);
			// The sandbox's cached JWKS (which still held the old key) ages out and is refetched without it.
			await until(
				async () => (await jwksFetches(sandboxUrl)) > fetchesBeforeRetire,
				"the sandbox to refetch the JWKS after retire",
				(MAX_AGE_SECONDS + 15) * 1000,
			);
			await new Promise((r) => setTimeout(r, 1000));

			const listed = await cli("status");
			expect(listed.text).toContain(`${next}  published`);
			expect(listed.text).not.toContain(first);

			// live check against the local worker and sandbox: every check, the redirect URI included.
			const live = await cli("live", "check", "--url", worker?.url ?? "");
			expect(live.text).toContain(`ok    signing key: active kid ${next} is published and is the worker's signer`);
			expect(live.text).toContain("All checks passed.");
			expect(live.code).toBe(0);
		} finally {
			running = false;
			await loop;
		}
		const failures = attempts.filter((a) => a.status !== 200);
		expect(failures).toEqual([]);
		const kids = new Set(attempts.map((a) => a.kid));
		expect(kids.size).toBe(2);
		expect(attempts.length).toBeGreaterThan(100);
		// The sandbox really cached and refetched the JWKS through the rotation.
		expect(await jwksFetches(sandboxUrl)).toBeGreaterThanOrEqual(3);
	}, 180_000);
});
