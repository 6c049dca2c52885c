import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";
import { WRANGLER_JS } from "../../scripts/keys/wrangler.mjs";

export const ROOT = new URL("../..", import.meta.url).pathname;

export function freePort(): Promise<number> {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const address = server.address();
			server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
		});
	});
}

/**
 * A copy of the project's wrangler.toml in `dir` for a test run: the worker's
 * entry point made absolute, the local environment's localhost:3000/3001 moved
 * to the given ports, and JWKS_MAX_AGE_SECONDS shortened. Preview and
 * production stay as they are.
 */
export function localProject(dir: string, ports: { worker: number; sandbox: number }, maxAgeSeconds: number) {
	const text = readFileSync(join(ROOT, "wrangler.toml"), "utf8");
	const at = text.indexOf("\n[env.preview]\n");
	if (at < 0) throw new Error("wrangler.toml has no [env.preview] table");
	const local = text
		.slice(0, at)
		.replace('main = "src/index.ts"', `main = "${join(ROOT, "src/index.ts")}"`)
		.replaceAll("localhost:3000", `localhost:${ports.worker}`)
		.replaceAll("localhost:3001", `localhost:${ports.sandbox}`)
		.replace(/JWKS_MAX_AGE_SECONDS = "\d+"/, `JWKS_MAX_AGE_SECONDS = "${maxAgeSeconds}"`);
	if (!local.includes(join(ROOT, "src/index.ts"))) throw new Error("could not point main at src/index.ts");
	const configPath = join(dir, "wrangler.toml");
	writeFileSync(configPath, local + text.slice(at));
	writeFileSync(join(dir, ".dev.vars"), `SESSION_ENCRYPTION_KEYS="v1:${Buffer.alloc(32, 7).toString("base64")}"\n`, {
		mode: 0o600,
	});
	return configPath;
}

export interface DevServer {
	url: string;
	output: () => string;
	stop: () => Promise<void>;
}

/** `wrangler dev` on `port`, resolved once `readyPath` answers. */
export async function wranglerDev(args: string[], port: number, readyPath: string): Promise<DevServer> {
	const inspector = await freePort();
	const child: ChildProcess = spawn(
		process.execPath,
		[
			WRANGLER_JS,
			"dev",
			...args,
			"--port",
			String(port),
			"--ip",
			"localhost",
			"--inspector-port",
			String(inspector),
			"--show-interactive-dev-session=false",
		],
		{
			cwd: ROOT,
			env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
			stdio: ["ignore", "pipe", "pipe"],
		},
	);
	let log = "";
	child.stdout?.on("data", (c) => {
		log += c;
	});
	child.stderr?.on("data", (c) => {
		log += c;
	});
	const url = `http://localhost:${port}`;
	const stop = () =>
		new Promise<void>((resolve) => {
			if (child.exitCode !== null) return resolve();
			child.once("exit", () => resolve());
			child.kill("SIGTERM");
			setTimeout(() => child.kill("SIGKILL"), 5000).unref();
		});
	const deadline = Date.now() + 90_000;
	while (Date.now() < deadline) {
		if (child.exitCode !== null) throw new Error(`wrangler dev exited early:\n${log}`);
		const ok = await fetch(`${url}${readyPath}`).then(
			(r) => r.status < 500,
			() => false,
		);
		if (ok) return { url, output: () => log, stop };
		await new Promise((r) => setTimeout(r, 500));
	}
	await stop();
	throw new Error(`wrangler dev did not answer ${readyPath} within 90 s:\n${log}`);
}
