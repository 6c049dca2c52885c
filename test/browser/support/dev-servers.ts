import { connect } from "node:net";
import { startProcessGroup } from "./process-group";

export const WORKER_ORIGIN = "http://localhost:3000";
export const SANDBOX_ORIGIN = "http://localhost:3001";

/** wrangler dev needs ~10-20 s offline on two cores; a cold CI box can be slower. */
const START_TIMEOUT_MS = 90_000;
/** The tail of the servers' output kept for failure messages (the binding tables alone take ~40 lines). */

const REPO_ROOT = new URL("../../../", import.meta.url).pathname;

/** True when something accepts connections on the port at 127.0.0.1 or ::1 (wrangler's "localhost" may be either). */
async function portInUse(port: number): Promise<boolean> {
	const probe = (host: string) =>
		new Promise<boolean>((resolve) => {
			const socket = connect({ port, host });
			socket.once("connect", () => {
				socket.destroy();
				resolve(true);
			});
			socket.once("error", () => resolve(false));
		});
	const answers = await Promise.all([probe("127.0.0.1"), probe("::1")]);
	return answers.some(Boolean);
}

async function answers(url: string): Promise<boolean> {
	try {
		const response = await fetch(url, { signal: AbortSignal.timeout(2_000) });
		await response.body?.cancel();
		return response.ok;
	} catch {
		return false;
	}
}

export interface DevServers {
	/** The last lines the two `wrangler dev` processes printed (for failure messages). */
	output(): string;
	stop(): Promise<void>;
}

/**
 * Starts `npm run dev` (scripts/dev.mjs: the worker on :3000, the sandbox on
 * :3001) as the README tells a newcomer to, in its own process group, and
 * resolves once both answer. The redirect URI is fixed at
 * http://localhost:3000/callback, so the ports cannot move: if they are taken
 * (a developer's own `npm run dev`), this fails and says so.
 *
 * `vars` are passed as `--var NAME:VALUE` to both wrangler processes.
 */
export async function startDevServers(vars: Record<string, string> = {}): Promise<DevServers> {
	for (const port of [3000, 3001]) {
		if (await portInUse(port)) {
			throw new Error(
				`Port ${port} is already in use. The browser suite starts its own worker and sandbox on ports 3000 and 3001 ` +
					"(the registered redirect URI is http://localhost:3000/callback): stop any running `npm run dev` and try again.",
			);
		}
	}
	const varArgs = Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]);
	// The whole group: dev.mjs, both wrangler processes and their workerd children.
	const group = startProcessGroup(["scripts/dev.mjs", ...varArgs], REPO_ROOT);
	const { output, stop } = group;

	const deadline = Date.now() + START_TIMEOUT_MS;
	let ready = false;
	while (!ready) {
		if (group.exitCode() !== null)
			throw new Error(`npm run dev exited with ${group.exitCode()} before it was ready:\n${output()}`);
		if (Date.now() > deadline) {
			await stop();
			throw new Error(`npm run dev did not answer within ${START_TIMEOUT_MS / 1000} s:\n${output()}`);
		}
		ready = (await answers(`${WORKER_ORIGIN}/health`)) && (await answers(`${SANDBOX_ORIGIN}/fhir/r4/metadata`));
		if (!ready) await new Promise((resolve) => setTimeout(resolve, 250));
	}
	return { output, stop };
}

/** A `/_sandbox` control over HTTP (sandbox/README.md). */
export async function sandboxControl(path: string, body?: unknown, method = body === undefined ? "GET" : "POST") {
	const response = await fetch(`${SANDBOX_ORIGIN}/_sandbox/${path}`, {
		method,
		headers: { "Content-Type": "application/json" },
		body: body === undefined ? undefined : JSON.stringify(body),
	});
	if (!response.ok) throw new Error(`sandbox ${path}: ${response.status} ${await response.text()}`);
	return response.json() as Promise<unknown>;
}
