import { copyFileSync, existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { settingsFrom } from "../../scripts/keys/config.mjs";
import { KeysError } from "../../scripts/keys/errors.mjs";
import { init, rotateActivate, rotateAdd, rotateRetire, status } from "../../scripts/keys/keys.mjs";
import { configs, context, recordingWrangler, settings, tempDir } from "./helpers.js";

const MINUTE = 60_000;
const T0 = Date.parse("2026-11-28T10:00:00Z");

async function refusal(promise: Promise<unknown>): Promise<KeysError> {
	const error = await promise.then(
		() => undefined,
		(e: unknown) => e,
	);
	expect(error).toBeInstanceOf(KeysError);
	return error as KeysError;
}

function publishedKids(kv: Record<string, string>): string[] {
	return (JSON.parse(kv.jwks ?? '{"keys":[]}') as { keys: { kid: string }[] }).keys.map((k) => k.kid);
}

describe("key lifecycle against a remote environment (recording wrangler)", () => {
	let tmp: ReturnType<typeof tempDir>;
	let fake: ReturnType<typeof recordingWrangler>;
	const clock = { now: T0 };
	const preview = () => context("preview", fake.wrangler, tmp.dir, { clock });

	beforeEach(() => {
		tmp = tempDir();
		fake = recordingWrangler();
		clock.now = T0;
	});
	afterEach(() => tmp.remove());

	it("init sets the secret through stdin, keeps a 0600 copy and publishes only the public key", async () => {
		const result = await init(preview());
		expect(fake.secrets.preview).toMatch(/^-----BEGIN PRIVATE KEY-----/);
		for (const call of fake.calls) expect(call.args.join(" ")).not.toContain("PRIVATE KEY");
		const secretCall = fake.calls.find((c) => c.args[0] === "secret");
		expect(secretCall?.args).toEqual([
			"secret",
			"put",
			"SIGNING_KEY",
			"--env",
			"preview",
			"--config",
			join(tmp.dir, "wrangler.toml"),
		]);

		const jwks = JSON.parse(fake.kv.preview?.jwks ?? "");
		expect(jwks.keys).toEqual([
			{ kty: "RSA", n: expect.any(String), e: "AQAB", alg: "RS384", use: "sig", kid: result.kid },
		]);
		const meta = JSON.parse(fake.kv.preview?.["jwks-meta"] ?? "");
		expect(meta).toMatchObject({
			environment: "preview",
			activeKid: result.kid,
			keys: [{ kid: result.kid, publishedAt: new Date(T0).toISOString() }],
		});
		expect(fake.kv.production).toEqual({});

		expect(statSync(result.keyFile).mode & 0o777).toBe(0o600);
		expect(statSync(join(tmp.dir, ".keys", "preview")).mode & 0o777).toBe(0o700);
		expect(statSync(join(tmp.dir, ".keys")).mode & 0o777).toBe(0o700);
	});

	it("init refuses when the environment already has keys, pointing to rotate add", async () => {
		await init(preview());
		const error = await refusal(init(preview()));
		expect(error.code).toBe("already_initialised");
		expect(error.message).toContain("rotate add --env preview");
	});

	it("refuses to publish a 6th key", async () => {
		await init(preview());
		for (let i = 0; i < 4; i++) {
			clock.now += 2000;
			await rotateAdd(preview());
		}
		expect(publishedKids(fake.kv.preview ?? {})).toHaveLength(5);
		clock.now += 2000;
		const error = await refusal(rotateAdd(preview()));
		expect(error.code).toBe("too_many_keys");
		expect(error.message).toContain("maximum is 5");
		expect(publishedKids(fake.kv.preview ?? {})).toHaveLength(5);
		expect(readdirSync(join(tmp.dir, ".keys", "preview"))).toHaveLength(5);
	});

	it("refuses to activate a key before the JWKS max-age plus KV propagation has passed, then allows it", async () => {
		const first = await init(preview());
		clock.now += MINUTE;
		const next = await rotateAdd(preview());
		const secretBefore = fake.secrets.preview;

		clock.now += (300 + 70) * 1000; // exactly max-age + propagation (KV 60 s + isolate cache 10 s): still too early
		const error = await refusal(rotateActivate(preview(), {}));
		expect(error.code).toBe("too_early");
		expect(error.message).toContain("--force");
		expect(fake.secrets.preview).toBe(secretBefore);

		clock.now += 1000;
		const activated = await rotateActivate(preview(), {});
		expect(activated).toMatchObject({ kid: next.kid, previousKid: first.kid });
		expect(fake.secrets.preview).not.toBe(secretBefore);
		expect(JSON.parse(fake.kv.preview?.["jwks-meta"] ?? "").activeKid).toBe(next.kid);
	});

	it("activates early with --force only, warning loudly", async () => {
		await init(preview());
		const next = await rotateAdd(preview());
		const warnings: string[] = [];
		const activated = await rotateActivate(context("preview", fake.wrangler, tmp.dir, { clock, warnings }), {
			kid: next.kid,
			force: true,
		});
		expect(activated.kid).toBe(next.kid);
		expect(warnings.join("\n")).toMatch(/!!! --force/);
		expect(warnings.join("\n")).toContain("invalid_client");
	});

	it("refuses to retire the active key", async () => {
		const first = await init(preview());
		clock.now += MINUTE;
		await rotateAdd(preview());
		const error = await refusal(rotateRetire(preview(), { kid: first.kid }));
		expect(error.code).toBe("retiring_active_key");
		expect(publishedKids(fake.kv.preview ?? {})).toContain(first.kid);
		expect(existsSync(first.keyFile)).toBe(true);
	});

	it("retires the old key after rotation, deleting its private copy and keeping the signer", async () => {
		const first = await init(preview());
		const next = await rotateAdd(preview());
		clock.now += 371_000; // past max-age 300 s + propagation 70 s
		await rotateActivate(preview(), { kid: next.kid });
		const early = await refusal(rotateRetire(preview(), { kid: first.kid }));
		expect(early.code).toBe("too_early");
		clock.now += 71_000;
		const retired = await rotateRetire(preview(), { kid: first.kid });
		expect(retired.deletedFile).toBe(first.keyFile);
		expect(existsSync(first.keyFile)).toBe(false);
		expect(publishedKids(fake.kv.preview ?? {})).toEqual([next.kid]);
		const listed = await status(preview());
		expect(listed.keys).toEqual([expect.objectContaining({ kid: next.kid, active: true, localCopy: true })]);
	});

	it("refuses to activate a preview key copied into production's folder", async () => {
		await init(preview());
		const previewNext = await rotateAdd(preview());
		const production = () => context("production", fake.wrangler, tmp.dir, { clock });
		await init(production());
		mkdirSync(join(tmp.dir, ".keys", "production"), { recursive: true });
		copyFileSync(previewNext.keyFile, join(tmp.dir, ".keys", "production", `${previewNext.kid}.pem`));
		clock.now += 10 * MINUTE;
		const secretBefore = fake.secrets.production;
		const error = await refusal(rotateActivate(production(), { kid: previewNext.kid }));
		expect(error.code).toBe("not_published");
		expect(fake.secrets.production).toBe(secretBefore);
	});

	it("refuses a key file whose header names another environment, even when production publishes that kid", async () => {
		await init(preview());
		const previewNext = await rotateAdd(preview());
		// Someone copied preview's KV records and key file into production.
		fake.kv.production = {
			...fake.kv.preview,
			"jwks-meta":
				fake.kv.preview?.["jwks-meta"]?.replace('"environment":"preview"', '"environment":"production"') ?? "",
		};
		mkdirSync(join(tmp.dir, ".keys", "production"), { recursive: true });
		copyFileSync(previewNext.keyFile, join(tmp.dir, ".keys", "production", `${previewNext.kid}.pem`));
		clock.now += 10 * MINUTE;
		const error = await refusal(
			rotateActivate(context("production", fake.wrangler, tmp.dir, { clock }), { kid: previewNext.kid }),
		);
		expect(error.code).toBe("environment_mismatch");
		expect(error.message).toContain("also stored for the preview environment");
		expect(fake.secrets.production).toBeUndefined();
	});

	it("refuses to touch production when its KV holds preview's metadata", async () => {
		await init(preview());
		fake.kv.production = { ...fake.kv.preview };
		const error = await refusal(rotateAdd(context("production", fake.wrangler, tmp.dir, { clock })));
		expect(error.code).toBe("environment_mismatch");
		expect(error.message).toContain("metadata for the preview environment");
		expect(fake.kv.production).toEqual(fake.kv.preview);
	});

	it("refuses a wrangler.toml where production's vars say preview", () => {
		expect(() => settings("production", { production: { ENVIRONMENT: "preview" } })).toThrow(
			/ENVIRONMENT = "preview", not "production"/,
		);
	});

	it("refuses a wrangler.toml where production shares preview's KV namespace", () => {
		const shared = configs();
		shared.production.kv_namespaces = [{ binding: "JWKS_KV", id: "kv-preview" }];
		expect(() => settingsFrom("production", shared)).toThrow(/production and preview use the same JWKS_KV namespace/);
	});

	it("refuses remote commands without a Cloudflare login, with a clear message and no writes", async () => {
		fake.state.loggedIn = false;
		const error = await refusal(init(preview()));
		expect(error.code).toBe("not_logged_in");
		expect(error.message).toContain("npx wrangler login");
		expect(error.message).toContain("CLOUDFLARE_API_TOKEN");
		expect(fake.calls.map((c) => c.args[0])).toEqual(["whoami"]);
		expect(existsSync(join(tmp.dir, ".keys", "preview"))).toBe(false);
	});

	it("refuses a JWKS in KV that holds a private member", async () => {
		await init(preview());
		const jwks = JSON.parse(fake.kv.preview?.jwks ?? "");
		jwks.keys[0].d = "secret";
		(fake.kv.preview as Record<string, string>).jwks = JSON.stringify(jwks);
		const error = await refusal(status(preview()));
		expect(error.code).toBe("kv_corrupt");
		expect(error.message).toContain("private members (d)");
	});
});
