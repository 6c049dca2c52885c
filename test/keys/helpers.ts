import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type EnvironmentSettings, settingsFrom } from "../../scripts/keys/config.mjs";
import type { KeysContext } from "../../scripts/keys/keys.mjs";
import { environmentStore, type Wrangler } from "../../scripts/keys/wrangler.mjs";

export type Environment = "local" | "preview" | "production";

/** The three environments as wrangler.toml shapes them, with a small max-age by default. */
export function configs(overrides: Partial<Record<Environment, Record<string, unknown>>> = {}) {
	const make = (env: Environment, origin: string, kvId: string) => ({
		name: `connector-${env}`,
		vars: {
			ENVIRONMENT: env,
			PUBLIC_ORIGIN: origin,
			REDIRECT_URI: `${origin}/api/auth/smart/callback`,
			CLIENT_ID: `${env}-client`,
			SCOPES: "openid fhirUser offline_access launch/patient patient/Patient.read",
			FHIR_BASE_URL: `https://athena.example/${env}/fhir/r4`,
			ATHENA_TOKEN_URL: `https://athena.example/${env}/oauth2/v1/token`,
			JWKS_MAX_AGE_SECONDS: "300",
			...overrides[env],
		},
		kv_namespaces: [{ binding: "JWKS_KV", id: kvId }],
	});
	return {
		local: make("local", "http://localhost:3000", "kv-local"),
		preview: make("preview", "https://preview.example.com", "kv-preview"),
		production: make("production", "https://connector.example.com", "kv-production"),
	};
}

export function settings(env: Environment, overrides: Parameters<typeof configs>[0] = {}): EnvironmentSettings {
	return settingsFrom(env, configs(overrides));
}

export interface WranglerCall {
	args: string[];
	stdin?: string;
}

/**
 * A stand-in for remote wrangler: KV namespaces and secrets per environment in
 * memory, every call recorded. It understands exactly the commands the CLI
 * runs, so a new command shows up as a failure here rather than passing silently.
 */
export function recordingWrangler(options: { loggedIn?: boolean } = {}) {
	const kv: Record<string, Record<string, string>> = { local: {}, preview: {}, production: {} };
	const secrets: Record<string, string> = {};
	const calls: WranglerCall[] = [];
	const state = { loggedIn: options.loggedIn ?? true };
	const targetOf = (args: string[]) => {
		if (args.includes("--local")) return "local";
		const i = args.indexOf("--env");
		if (i < 0) throw new Error(`no target in ${args.join(" ")}`);
		return args[i + 1] as string;
	};
	const ok = (stdout = "") => ({ code: 0, stdout, stderr: "" });
	const wrangler: Wrangler = async (args, opts = {}) => {
		calls.push({ args, ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) });
		const [a, b, c, file] = args;
		if (a === "whoami") {
			return ok(
				state.loggedIn
					? "You are logged in with an API Token."
					: "You are not authenticated. Please run `wrangler login`.",
			);
		}
		if (!state.loggedIn) return { code: 1, stdout: "", stderr: "Not logged in." };
		if (a === "kv" && b === "bulk" && c === "get" && file) {
			const names = JSON.parse(readFileSync(file, "utf8")) as string[];
			const ns = kv[targetOf(args)] ?? {};
			return ok(JSON.stringify(Object.fromEntries(names.map((n) => [n, { value: ns[n] ?? null }]))));
		}
		if (a === "kv" && b === "bulk" && c === "put" && file) {
			const ns = kv[targetOf(args)] ?? {};
			for (const { key, value } of JSON.parse(readFileSync(file, "utf8")) as { key: string; value: string }[]) {
				ns[key] = value;
			}
			return ok("Success!");
		}
		if (a === "secret" && b === "put" && c === "SIGNING_KEY") {
			secrets[targetOf(args)] = opts.stdin ?? "";
			return ok("Success! Uploaded secret SIGNING_KEY");
		}
		return { code: 1, stdout: "", stderr: `recordingWrangler: unexpected command ${args.join(" ")}` };
	};
	return { wrangler, kv, secrets, calls, state };
}

export function tempDir(prefix = "keys-test-") {
	const dir = mkdtempSync(join(tmpdir(), prefix));
	return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A KeysContext for one environment over a recording (or real) wrangler, with a settable clock. */
export function context(
	env: Environment,
	wrangler: Wrangler,
	dir: string,
	opts: { settings?: EnvironmentSettings; clock?: { now: number }; warnings?: string[] } = {},
): KeysContext {
	const clock = opts.clock ?? { now: Date.parse("2026-11-28T10:00:00Z") };
	return {
		settings: opts.settings ?? settings(env),
		store: environmentStore({
			environment: env,
			wrangler,
			configPath: join(dir, "wrangler.toml"),
			persistTo: join(dir, "state"),
			devVarsPath: join(dir, ".dev.vars"),
		}),
		keysDir: join(dir, ".keys"),
		now: () => clock.now,
		warn: (line) => opts.warnings?.push(line),
	};
}
