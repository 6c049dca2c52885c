// `npm run dev`: the worker on http://localhost:3000 and the local athena
// sandbox on http://localhost:3001, each in its own `wrangler dev`, stopped
// together. Generates throwaway local secrets on first run.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ensureLocalSecrets } from "./local-secrets.mjs";

const wrangler = fileURLToPath(new URL("../node_modules/wrangler/bin/wrangler.js", import.meta.url));

const added = ensureLocalSecrets(".dev.vars");
if (added.length) console.log(`[dev] generated throwaway local ${added.join(" and ")} in .dev.vars`);

const services = [
	// --inspector-port 0: two wranglers would otherwise race for the devtools port 9229.
	{ name: "worker ", args: ["dev", "--config", "wrangler.toml", "--inspector-port", "0"] },
	...(existsSync("sandbox/wrangler.toml")
		? [
				{
					name: "sandbox",
					args: [
						"dev",
						"--config",
						"sandbox/wrangler.toml",
						"--persist-to",
						".wrangler/state-sandbox",
						"--inspector-port",
						"0",
					],
				},
			]
		: []),
];

const children = services.map(({ name, args }) => {
	// process.execPath is the project's pinned Node (npm scripts put it first on PATH).
	const child = spawn(process.execPath, [wrangler, ...args, ...process.argv.slice(2)], {
		stdio: ["ignore", "pipe", "pipe"],
		env: { ...process.env, WRANGLER_SEND_METRICS: "false" },
	});
	for (const stream of [child.stdout, child.stderr]) {
		let partial = "";
		stream.on("data", (chunk) => {
			const lines = (partial + chunk).split("\n");
			partial = lines.pop() ?? "";
			for (const line of lines) if (line.trim()) console.log(`[${name}] ${line}`);
		});
	}
	child.on("exit", (code, signal) => {
		console.log(`[${name}] exited (${signal ?? code})`);
		stopAll(code ?? 1);
	});
	return child;
});

let stopping = false;
function stopAll(code) {
	if (stopping) return;
	stopping = true;
	for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
	setTimeout(() => process.exit(code), 500).unref();
}
process.on("SIGINT", () => stopAll(0));
process.on("SIGTERM", () => stopAll(0));

console.log("[dev] worker  → http://localhost:3000  (JWKS: /.well-known/jwks.json, health: /health)");
if (services.length > 1) console.log("[dev] sandbox → http://localhost:3001  (local athena stand-in)");
