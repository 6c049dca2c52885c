// @ts-check
// Runs wrangler as a child process with the project's pinned Node, and builds
// on it the one store each environment has: its JWKS_KV namespace (`jwks`,
// `jwks-meta`) and its SIGNING_KEY secret. Secrets go to wrangler's stdin,
// never into argv (argv is visible to every process on the machine).
import { spawn } from "node:child_process";
import {
	chmodSync,
	existsSync,
	mkdtempSync,
	readFileSync,
	renameSync,
	rmSync,
	utimesSync,
	writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { KeysError } from "./errors.mjs";

export const JWKS_KEY = "jwks";
export const META_KEY = "jwks-meta";
export const WRANGLER_JS = fileURLToPath(new URL("../../node_modules/wrangler/bin/wrangler.js", import.meta.url));

/**
 * @typedef {{ code: number, stdout: string, stderr: string }} WranglerResult
 * @typedef {(args: string[], options?: { stdin?: string }) => Promise<WranglerResult>} Wrangler
 */

/**
 * The real runner: `node node_modules/wrangler/bin/wrangler.js ...args`.
 * @param {{ cwd: string, env?: NodeJS.ProcessEnv }} options `env` replaces process.env (tests use an empty home)
 * @returns {Wrangler}
 */
export function wranglerProcess({ cwd, env = process.env }) {
	return (args, { stdin } = {}) =>
		new Promise((resolve, reject) => {
			const child = spawn(process.execPath, [WRANGLER_JS, ...args], {
				cwd,
				stdio: ["pipe", "pipe", "pipe"],
				env: { ...env, WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0", NO_COLOR: "1" },
			});
			let stdout = "";
			let stderr = "";
			child.stdout.on("data", (chunk) => {
				stdout += chunk;
			});
			child.stderr.on("data", (chunk) => {
				stderr += chunk;
			});
			child.on("error", reject);
			child.on("close", (code) => resolve({ code: code ?? 1, stdout, stderr }));
			child.stdin.on("error", () => {});
			child.stdin.end(stdin ?? "");
		});
}

/**
 * The last lines wrangler printed, for an error message; PEM blocks are cut out in case one was echoed.
 * @param {WranglerResult} result
 */
function tail(result) {
	const text = `${result.stderr}\n${result.stdout}`.replace(/-----BEGIN[\s\S]*?-----END[^-]*-----/g, "[redacted]");
	return text
		.split("\n")
		.map((l) => l.trim())
		.filter(Boolean)
		.slice(-4)
		.join(" | ");
}

/**
 * @typedef {{
 *   environment: string,
 *   ensureLoggedIn(): Promise<void>,
 *   readPublished(): Promise<{ jwks: string | null, meta: string | null }>,
 *   writePublished(jwks: string, meta: string): Promise<void>,
 *   putSigningKey(privatePem: string): Promise<void>,
 *   describeSecret(): string,
 * }} EnvironmentStore
 */

/**
 * One environment's KV namespace and SIGNING_KEY secret. `local` uses the same
 * persistence as `wrangler dev` (`--local --persist-to`) and `.dev.vars`;
 * `preview` and `production` use `--env <name> --remote` and `wrangler secret put`.
 * @param {{ environment: string, wrangler: Wrangler, configPath: string, persistTo: string, devVarsPath: string, hasApiToken?: boolean }} options
 * @returns {EnvironmentStore}
 */
export function environmentStore({ environment, wrangler, configPath, persistTo, devVarsPath, hasApiToken }) {
	const local = environment === "local";
	const target = local ? ["--local", "--persist-to", persistTo] : ["--env", environment, "--remote"];
	const config = ["--config", configPath];

	/** @param {string[]} args @param {string} what @param {{ stdin?: string }} [options] */
	async function run(args, what, options) {
		const result = await wrangler(args, options);
		if (result.code !== 0) {
			throw new KeysError("wrangler_failed", `wrangler could not ${what} for ${environment}: ${tail(result)}`);
		}
		return result;
	}

	/** @param {(dir: string) => Promise<T>} use @template T */
	async function withTempDir(use) {
		const dir = mkdtempSync(join(tmpdir(), "keys-"));
		try {
			return await use(dir);
		} finally {
			rmSync(dir, { recursive: true, force: true });
		}
	}

	return {
		environment,
		async ensureLoggedIn() {
			if (local) return;
			const result = await wrangler(["whoami", ...config]);
			const output = `${result.stdout}\n${result.stderr}`;
			if (/not authenticated|not logged in/i.test(output) && !hasApiToken) {
				throw new KeysError(
					"not_logged_in",
					`Not logged in to Cloudflare, so the ${environment} environment cannot be read or changed. Run \`npx wrangler login\` (or set CLOUDFLARE_API_TOKEN), then retry. Nothing was changed.`,
				);
			}
			if (result.code !== 0 || /not authenticated|not logged in/i.test(output)) {
				throw new KeysError(
					"not_logged_in",
					`Could not confirm a Cloudflare login for ${environment} (\`wrangler whoami\`: ${tail(result)}). Check the network and CLOUDFLARE_API_TOKEN, then retry. Nothing was changed.`,
				);
			}
		},
		async readPublished() {
			return withTempDir(async (dir) => {
				const file = join(dir, "keys.json");
				writeFileSync(file, JSON.stringify([JWKS_KEY, META_KEY]));
				const result = await run(
					["kv", "bulk", "get", file, "--binding", "JWKS_KV", ...target, ...config],
					"read the JWKS_KV namespace",
				);
				const start = result.stdout.indexOf("{");
				/** @type {Record<string, { value: string | null } | undefined>} */
				let values;
				try {
					values = JSON.parse(result.stdout.slice(start));
				} catch {
					throw new KeysError("wrangler_failed", `wrangler's answer for ${environment}'s JWKS_KV was not JSON`);
				}
				return { jwks: values[JWKS_KEY]?.value ?? null, meta: values[META_KEY]?.value ?? null };
			});
		},
		async writePublished(jwks, meta) {
			// One bulk write, so the key set and its metadata change together.
			await withTempDir(async (dir) => {
				const file = join(dir, "values.json");
				writeFileSync(
					file,
					JSON.stringify([
						{ key: JWKS_KEY, value: jwks },
						{ key: META_KEY, value: meta },
					]),
				);
				await run(
					["kv", "bulk", "put", file, "--binding", "JWKS_KV", ...target, ...config],
					"write the JWKS_KV namespace",
				);
			});
		},
		async putSigningKey(privatePem) {
			if (local) {
				writeDevVar(devVarsPath, "SIGNING_KEY", privatePem);
				// `wrangler dev` does not watch .dev.vars, but it reloads (bindings and
				// .dev.vars included) when its config file changes: touch it.
				if (existsSync(configPath)) utimesSync(configPath, new Date(), new Date());
				return;
			}
			await run(["secret", "put", "SIGNING_KEY", "--env", environment, ...config], "set the SIGNING_KEY secret", {
				stdin: privatePem,
			});
		},
		describeSecret() {
			return local ? `SIGNING_KEY in ${devVarsPath}` : `the ${environment} worker's SIGNING_KEY secret`;
		},
	};
}

/**
 * Sets one variable in a .dev.vars file (0600), keeping every other line.
 * Written to a temporary file and renamed, so `wrangler dev` never reads half a key.
 * @param {string} path @param {string} name @param {string} value
 */
export function writeDevVar(path, name, value) {
	const line = `${name}="${value.trim().split("\n").join("\\n")}"`;
	const existing = existsSync(path) ? readFileSync(path, "utf8") : "";
	const lines = existing.split("\n").filter((l) => !new RegExp(`^\\s*${name}\\s*=`).test(l));
	while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
	lines.push(line);
	const temp = join(dirname(path), `.${name}.${process.pid}.tmp`);
	writeFileSync(temp, `${lines.join("\n")}\n`, { mode: 0o600 });
	chmodSync(temp, 0o600);
	renameSync(temp, path);
}
