import { spawn } from "node:child_process";

const STOP_TIMEOUT_MS = 10_000;
const OUTPUT_LINES = 150;

/** A command started in its own process group (it and every child it starts), as the suites run `wrangler dev`. */
export interface ProcessGroup {
	/** Its exit code, or null while it runs. */
	exitCode(): number | null;
	/** The last lines it printed on stdout and stderr (for failure messages). */
	output(): string;
	/** Ends the whole group: SIGTERM, then SIGKILL after 10 s. Safe to call twice. */
	stop(): Promise<void>;
}

/**
 * Runs `args` with the project's pinned Node (`process.execPath`, which is it
 * when the suites run through npm or npx, as wrangler requires) from `cwd`.
 *
 * @example
 * const group = startProcessGroup(["scripts/dev.mjs"], REPO_ROOT);
 * await group.stop();
 */
export function startProcessGroup(args: string[], cwd: string): ProcessGroup {
	const child = spawn(process.execPath, args, {
		cwd,
		detached: true,
		stdio: ["ignore", "pipe", "pipe"],
		env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
	});
	const lines: string[] = [];
	for (const stream of [child.stdout, child.stderr]) {
		stream.setEncoding("utf8");
		stream.on("data", (chunk: string) => {
			lines.push(...chunk.split("\n").filter((line) => line.trim() !== ""));
			lines.splice(0, Math.max(0, lines.length - OUTPUT_LINES));
		});
	}
	const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
	return {
		exitCode: () => child.exitCode,
		output: () => lines.join("\n"),
		async stop() {
			if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) return;
			const pid = child.pid;
			process.kill(-pid, "SIGTERM");
			const timer = setTimeout(() => {
				if (child.exitCode === null) process.kill(-pid, "SIGKILL");
			}, STOP_TIMEOUT_MS);
			await exited;
			clearTimeout(timer);
		},
	};
}
