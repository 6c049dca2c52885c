import { generateKeyPairSync, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProcessGroup } from "../browser/support/process-group";

const REPO_ROOT = new URL("../../", import.meta.url).pathname;
const WRANGLER = join(REPO_ROOT, "node_modules/wrangler/bin/wrangler.js");
/** wrangler dev needs ~10-20 s offline on two cores; a busy CI box can be slower. */
const START_TIMEOUT_MS = 90_000;

export interface WorkerProcess {
	origin: string;
	/** The last lines wrangler printed (the worker's logs among them), for failure messages. */
	output(): string;
	stop(): Promise<void>;
}

function portInUse(port: number): Promise<boolean> {
	const probe = (host: string) =>
		new Promise<boolean>((resolve) => {
			const socket = connect({ port, host });
			socket.once("connect", () => {
				socket.destroy();
				resolve(true);
			});
			socket.once("error", () => resolve(false));
		});
	return Promise.all([probe("127.0.0.1"), probe("::1")]).then((answers) => answers.some(Boolean));
}

/** dotenv syntax as wrangler reads it: double quotes, `\n` for newlines. */
function envFile(values: Record<string, string>): string {
	return Object.entries(values)
		.map(([name, value]) =>
			// dotenv keeps a single-quoted value as written: JSON (SMART_SERVERS) goes that way.
			value.includes('"') && !value.includes("'") && !value.includes("\n")
				? `${name}='${value}'`
				: `${name}="${value.replaceAll("\\", "\\\\").replaceAll("\n", "\\n").replaceAll('"', '\\"')}"`,
		)
		.join("\n");
}

/**
 * The real worker (`wrangler dev` on the project's wrangler.toml, local
 * environment) on localhost:`port`, with `vars` overriding wrangler.toml's.
 * A fresh throwaway signing key and session key, and its own Durable Object
 * and KV state, live in a temporary directory removed on stop: nothing is
 * shared with `npm run dev` or with other suites.
 */
export async function startWorker(port: number, vars: Record<string, string>): Promise<WorkerProcess> {
	if (await portInUse(port)) {
		throw new Error(`Port ${port} is already in use; the SMART suite runs its worker there.`);
	}
	const dir = mkdtempSync(join(tmpdir(), "smart-worker-"));
	const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
	// Values from an env file override wrangler.toml's [vars], as .dev.vars does.
	writeFileSync(
		join(dir, "worker.env"),
		envFile({
			...vars,
			SIGNING_KEY: privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim(),
			SESSION_ENCRYPTION_KEYS: `v1:${randomBytes(32).toString("base64")}`,
		}),
		{ mode: 0o600 },
	);
	// The whole group: wrangler and its workerd.
	const group = startProcessGroup(
		[
			WRANGLER,
			"dev",
			"--config",
			"wrangler.toml",
			"--env-file",
			join(dir, "worker.env"),
			"--persist-to",
			join(dir, "state"),
			"--port",
			String(port),
			"--ip",
			"localhost",
			"--inspector-port",
			"0",
			"--show-interactive-dev-session=false",
		],
		REPO_ROOT,
	);
	const { output } = group;
	const stop = async () => {
		await group.stop();
		rmSync(dir, { recursive: true, force: true });
	};

	const origin = `http://localhost:${port}`;
	const deadline = Date.now() + START_TIMEOUT_MS;
	for (;;) {
		if (group.exitCode() !== null) {
			await stop();
			throw new Error(`wrangler dev on :${port} exited with ${group.exitCode()} before it was ready:\n${output()}`);
		}
		if (Date.now() > deadline) {
			await stop();
			throw new Error(`wrangler dev on :${port} did not answer within ${START_TIMEOUT_MS / 1000} s:\n${output()}`);
		}
		const health = await fetch(`${origin}/health`, { signal: AbortSignal.timeout(2_000) }).then(
			async (response) => ({ status: response.status, body: await response.text() }),
			() => undefined,
		);
		if (health?.status === 200) return { origin, output, stop };
		if (health?.status === 503) {
			await stop();
			throw new Error(`the worker on :${port} refused its configuration: ${health.body}`);
		}
		await new Promise((resolve) => setTimeout(resolve, 250));
	}
}
