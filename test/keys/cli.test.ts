import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { run } from "../../scripts/keys/cli.mjs";
import { generateSigningKey } from "../../scripts/keys/key-material.mjs";
import { liveCheck } from "../../scripts/keys/live-check.mjs";
import { recordingWrangler, settings, tempDir } from "./helpers.js";
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
		const checks = await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid });
		expect(failed(checks)).toEqual([]);
		expect(checks.map((c) => c.name)).toEqual(["url", "jwks", "signing key", "smart-configuration", "redirect URI"]);
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
		expect(failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid }))).toContain(
			"jwks: key 0: holds private members (d)",
		);
		routes["/.well-known/jwks.json"] = { status: 200, body: { keys: [{ ...key, kid: "x".repeat(43) }] } };
		expect(failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid }))).toContain(
			"jwks: key 0: kid is not the RFC 7638 thumbprint of the key",
		);
	});

	it("fails when the active kid recorded in KV is not what the worker publishes", async () => {
		const other = generateSigningKey().publicJwk.kid;
		const problems = failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: other }));
		expect(problems).toEqual([`signing key: active kid ${other} is not in the served JWKS (${key.kid})`]);
	});

	it("fails when the worker does not serve the redirect URI", async () => {
		delete routes["/callback"];
		expect(failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid }))).toEqual([
			`redirect URI: ${origin}/callback answered 404: the worker does not serve it`,
		]);
	});

	it("fails when athena's smart-configuration cannot be reached", async () => {
		delete routes["/fhir/r4/.well-known/smart-configuration"];
		expect(failed(await liveCheck({ url: origin, settings: localSettings(), activeKid: key.kid }))).toEqual([
			`smart-configuration: ${origin}/fhir/r4/.well-known/smart-configuration answered 404`,
		]);
	});
});
