import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { run } from "../../scripts/keys/cli.mjs";
import { generateSigningKey, writeKeyFile } from "../../scripts/keys/key-material.mjs";
import { liveCheck } from "../../scripts/keys/live-check.mjs";
import { publishBeside, recordingWrangler, settings, signingKeyWithKidStartingWith, tempDir } from "./helpers.js";
import { ROOT } from "./local-services.js";

function capture() {
	const lines: string[] = [];
	return { lines, write: (l: string) => lines.push(l), text: () => lines.join("\n") };
}

describe("the keys command line", () => {
	let tmp: ReturnType<typeof tempDir>;
	beforeEach(() => {
		tmp = tempDir();
	});
	afterEach(() => tmp.remove());

	it("refuses a remote environment without a Cloudflare login, using the real wrangler whoami", async () => {
		const out = capture();
		const code = await run(["status", "--env", "preview", "--keys-dir", join(tmp.dir, ".keys")], {
			cwd: ROOT,
			out: out.write,
			err: out.write,
			// No credentials anywhere wrangler looks: an empty home and no API token.
			env: { PATH: process.env.PATH, HOME: tmp.dir, XDG_CONFIG_HOME: join(tmp.dir, ".config") },
		});
		expect(code).toBe(1);
		expect(out.text()).toMatch(/Not logged in to Cloudflare|Could not confirm a Cloudflare login/);
		expect(out.text()).toContain("Nothing was changed");
	}, 60_000);

	it("prints the JWKS URL and the values to paste into athena's portal after init", async () => {
		const fake = recordingWrangler();
		const out = capture();
		const code = await run(["init", "--env", "production", "--keys-dir", join(tmp.dir, ".keys")], {
			cwd: tmp.dir,
			wrangler: fake.wrangler,
			settings: settings("production"),
			out: out.write,
			err: out.write,
		});
		expect(code, out.text()).toBe(0);
		const text = out.text();
		expect(text).toContain("JWKS URL: https://connector.example.com/.well-known/jwks.json");
		expect(text).toContain("Redirect URI:               https://connector.example.com/api/auth/smart/callback");
		expect(text).toContain("Application Type:           Web");
		expect(text).toContain("3-Legged OAuth for Patients");
		expect(text).toContain("RS384");
		expect(text).not.toContain("PRIVATE KEY");
		expect(fake.secrets.production).toContain("PRIVATE KEY");
	});

	it("rejects an unknown environment with the list of valid ones", async () => {
		const out = capture();
		const code = await run(["status", "--env", "staging"], { cwd: tmp.dir, out: out.write, err: out.write });
		expect(code).toBe(1);
		expect(out.text()).toContain("--env must be one of local, preview, production");
	});
});

describe('the keys command line names any kid, including one that starts with "-"', () => {
	const T0 = Date.parse("2026-11-28T10:00:00Z");
	const LATER = T0 + 60 * 60_000;
	// One kid in 64 starts with "-" (and one in 4,096 with "--"): made on purpose here.
	const dash = signingKeyWithKidStartingWith("-");
	const doubleDash = signingKeyWithKidStartingWith("--");
	const plain = signingKeyWithKidStartingWith("P");
	let tmp: ReturnType<typeof tempDir>;
	let fake: ReturnType<typeof recordingWrangler>;
	let clock: { now: number };
	let out: ReturnType<typeof capture>;
	beforeEach(() => {
		tmp = tempDir();
		fake = recordingWrangler();
		clock = { now: T0 };
	});
	afterEach(() => tmp.remove());

	const keysDir = () => join(tmp.dir, ".keys");
	const cli = async (...args: string[]) => {
		out = capture();
		return run([...args, "--keys-dir", keysDir()], {
			cwd: tmp.dir,
			wrangler: fake.wrangler,
			settings: settings("preview"),
			now: () => clock.now,
			out: out.write,
			err: out.write,
		});
	};
	/** The words after `npm run keys --` in the line of output that starts with `lead`. */
	const printed = (lead: string): string[] => {
		const line = out.lines.find((l) => l.startsWith(lead)) ?? "";
		const command = /npm run keys -- (.+)$/.exec(line)?.[1];
		if (!command) throw new Error(`no command printed after ${JSON.stringify(lead)} in:\n${out.text()}`);
		return command.split(" ");
	};
	/** The preview environment after `init`, with the given test-made keys published (and kept locally) beside its first key. */
	async function previewWith(...keys: Array<{ privatePem: string; publicJwk: { kid: string } }>) {
		expect(await cli("init", "--env", "preview"), out.text()).toBe(0);
		const first = /kid (\S+)$/.exec(out.lines[0] ?? "")?.[1] ?? "";
		for (const key of keys) {
			publishBeside(fake.kv.preview ?? {}, key.publicJwk as never, new Date(T0).toISOString());
			writeKeyFile(keysDir(), "preview", key.publicJwk.kid, key.privatePem, new Date(T0));
		}
		clock.now = LATER;
		return first;
	}
	const meta = () =>
		JSON.parse(fake.kv.preview?.["jwks-meta"] ?? "{}") as { activeKid: string; keys: { kid: string }[] };

	it('activates a kid that starts with "-" given as --kid <kid>, and retires it with the command it prints', async () => {
		expect(dash.publicJwk.kid.startsWith("-")).toBe(true);
		const first = await previewWith(dash);

		expect(await cli("rotate", "activate", "--kid", dash.publicJwk.kid, "--env", "preview"), out.text()).toBe(0);
		expect(meta().activeKid).toBe(dash.publicJwk.kid);
		expect(fake.secrets.preview).toBe(dash.privatePem);
		expect(printed(`Key ${first} stays published`)).toEqual(["rotate", "retire", `--kid=${first}`, "--env", "preview"]);

		// Back to the first key: now the printed retire command names the kid that starts with "-".
		expect(await cli("rotate", "activate", `--kid=${first}`, "--env", "preview"), out.text()).toBe(0);
		const retire = printed(`Key ${dash.publicJwk.kid} stays published`);
		expect(retire).toEqual(["rotate", "retire", `--kid=${dash.publicJwk.kid}`, "--env", "preview"]);
		clock.now = LATER + 60 * 60_000;
		expect(await cli(...retire), out.text()).toBe(0);
		expect(out.text()).toContain(`Key ${dash.publicJwk.kid} is no longer published for preview.`);
		expect(meta().keys.map((k) => k.kid)).toEqual([first]);
	});

	it('activates and retires a kid that starts with "--" given as --kid=<kid> and as --kid <kid>', async () => {
		const first = await previewWith(doubleDash);
		expect(await cli("rotate", "activate", `--kid=${doubleDash.publicJwk.kid}`, "--env", "preview"), out.text()).toBe(
			0,
		);
		expect(meta().activeKid).toBe(doubleDash.publicJwk.kid);
		expect(await cli("rotate", "activate", "--kid", first, "--env", "preview"), out.text()).toBe(0);
		clock.now = LATER + 60 * 60_000;
		expect(await cli("rotate", "retire", "--kid", doubleDash.publicJwk.kid, "--env", "preview"), out.text()).toBe(0);
		expect(meta().keys.map((k) => k.kid)).toEqual([first]);
	});

	it("prints the activate command of a new key in the --kid= form", async () => {
		await previewWith();
		expect(await cli("rotate", "add", "--env", "preview"), out.text()).toBe(0);
		const added = /Published key (\S+)/.exec(out.text())?.[1] ?? "";
		expect(printed("Activate it after")).toEqual(["rotate", "activate", `--kid=${added}`, "--env", "preview"]);
	});

	it('keeps the bare kid working for a kid that does not start with "-"', async () => {
		const first = await previewWith(plain);
		expect(await cli("rotate", "activate", plain.publicJwk.kid, "--env", "preview"), out.text()).toBe(0);
		expect(meta().activeKid).toBe(plain.publicJwk.kid);
		clock.now = LATER + 60 * 60_000;
		// `first` comes from init's random key, so it is named in the form that takes any kid.
		expect(await cli("rotate", "retire", `--kid=${first}`, "--env", "preview"), out.text()).toBe(0);
		expect(meta().keys.map((k) => k.kid)).toEqual([plain.publicJwk.kid]);
	});

	it('answers a bare kid that starts with "-" with the --kid= form to use, and changes nothing', async () => {
		await previewWith(dash);
		const before = JSON.stringify(fake.kv.preview);
		expect(await cli("rotate", "activate", dash.publicJwk.kid, "--env", "preview")).toBe(2);
		expect(out.text()).toContain(`A kid that starts with "-" must be given as --kid=${dash.publicJwk.kid}.`);
		expect(JSON.stringify(fake.kv.preview)).toBe(before);
	});

	it("refuses two different kids, and --kid on a command that takes none", async () => {
		const first = await previewWith(plain);
		expect(await cli("rotate", "retire", plain.publicJwk.kid, `--kid=${first}`, "--env", "preview")).toBe(2);
		expect(out.text()).toContain("Two different kids given");
		expect(await cli("status", `--kid=${first}`, "--env", "preview")).toBe(2);
		expect(out.text()).toContain("--kid applies only to rotate activate and rotate retire");
		expect(meta().keys.map((k) => k.kid)).toEqual([first, plain.publicJwk.kid]);
	});
});

describe("live check against a local server", () => {
	let server: Server;
	let origin: string;
	const key = generateSigningKey().publicJwk;
	const routes: Record<string, { status: number; body?: unknown; headers?: Record<string, string> }> = {};

	beforeAll(async () => {
		server = createServer((req, res) => {
			const route = routes[new URL(req.url ?? "/", "http://x").pathname] ?? {
				status: 404,
				body: { error: "not_found" },
			};
			res.writeHead(route.status, { "Content-Type": "application/json", ...route.headers });
			res.end(route.body === undefined ? "" : JSON.stringify(route.body));
		});
		await new Promise<void>((resolve) => server.listen(0, "localhost", resolve));
		origin = `http://localhost:${(server.address() as AddressInfo).port}`;
	});
	afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

	beforeEach(() => {
		for (const k of Object.keys(routes)) delete routes[k];
		routes["/.well-known/jwks.json"] = {
			status: 200,
			body: { keys: [key] },
			headers: { "Cache-Control": "public, max-age=300" },
		};
		routes["/fhir/r4/.well-known/smart-configuration"] = {
			status: 200,
			body: { authorization_endpoint: `${origin}/oauth2/v1/authorize`, token_endpoint: `${origin}/oauth2/v1/token` },
		};
		routes["/callback"] = { status: 400, body: { error: "missing code" } };
	});

	const localSettings = () =>
		settings("local", {
			local: {
				PUBLIC_ORIGIN: origin,
				REDIRECT_URI: `${origin}/callback`,
				FHIR_BASE_URL: `${origin}/fhir/r4`,
				ATHENA_TOKEN_URL: `${origin}/oauth2/v1/token`,
			},
		});
	const failed = (checks: { name: string; ok: boolean; detail: string }[]) =>
		checks.filter((c) => !c.ok).map((c) => `${c.name}: ${c.detail}`);

	it("passes when the JWKS, the signer, athena's discovery and the redirect URI are all in place", async () => {
		const checks = await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid, tokenCall: false });
		expect(failed(checks)).toEqual([]);
		expect(checks.map((c) => c.name)).toEqual([
			"url",
			"jwks",
			"signing key",
			"smart-configuration",
			"redirect URI",
			"client authentication",
		]);
	});

	it("refuses plain http for anything but localhost", async () => {
		const checks = await liveCheck({
			url: "http://connector.example.com",
			settings: localSettings(),
			activeKid: key.kid,
		});
		expect(failed(checks)).toEqual([
			"url: --url must be https (http is allowed for localhost only); got http://connector.example.com",
		]);
	});

	it("fails when the JWKS publishes a private member or a kid that is not the thumbprint", async () => {
		routes["/.well-known/jwks.json"] = { status: 200, body: { keys: [{ ...key, d: "x" }] } };
		expect(
			failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid, tokenCall: false })),
		).toContain("jwks: key 0: holds private members (d)");
		routes["/.well-known/jwks.json"] = { status: 200, body: { keys: [{ ...key, kid: "x".repeat(43) }] } };
		expect(
			failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid, tokenCall: false })),
		).toContain("jwks: key 0: kid is not the RFC 7638 thumbprint of the key");
	});

	it("fails when the active kid recorded in KV is not what the worker publishes", async () => {
		const other = generateSigningKey().publicJwk.kid;
		const problems = failed(
			await liveCheck({ url: origin, settings: localSettings(), activeKid: other, tokenCall: false }),
		);
		expect(problems).toEqual([`signing key: active kid ${other} is not in the served JWKS (${key.kid})`]);
	});

	it("fails when the worker does not serve the redirect URI", async () => {
		delete routes["/callback"];
		expect(
			failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid, tokenCall: false })),
		).toEqual([`redirect URI: ${origin}/callback answered 404: the worker does not serve it`]);
	});

	it("fails when athena's smart-configuration cannot be reached", async () => {
		delete routes["/fhir/r4/.well-known/smart-configuration"];
		expect(
			failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid, tokenCall: false })),
		).toEqual([`smart-configuration: ${origin}/fhir/r4/.well-known/smart-configuration answered 404`]);
	});
});
