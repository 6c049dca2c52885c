// Row 1: the production bundle, minified and gzipped, against a bare Hono
// "hello" worker built the same way.
import { execFile } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { ROOT } from "../lib/stack.mjs";
import { fmt } from "../lib/stats.mjs";

const run = promisify(execFile);
const GOAL_KIB = 60;

/** `wrangler deploy --dry-run --env production --minify --outdir`; gzipped size of the modules it wrote. */
async function build(tree, config, outdir) {
	const { stdout } = await run(
		process.execPath,
		[
			join(ROOT, "node_modules/wrangler/bin/wrangler.js"),
			"deploy",
			"--dry-run",
			"--env",
			"production",
			"--minify",
			"--config",
			config,
			"--outdir",
			outdir,
		],
		{ cwd: tree, env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" }, timeout: 120_000 },
	);
	const modules = readdirSync(outdir).filter((f) => /\.(m?js|wasm)$/.test(f));
	const raw = modules.map((f) => readFileSync(join(outdir, f)));
	const bytes = raw.reduce((sum, b) => sum + b.length, 0);
	const gzip = raw.reduce((sum, b) => sum + gzipSync(b, { level: 9 }).length, 0);
	// wrangler's own figure, "Total Upload: 123.45 KiB / gzip: 34.56 KiB", for cross-checking.
	const reported = /gzip:\s*([\d.]+)\s*KiB/.exec(stdout)?.[1];
	return { modules, bytes, gzip, reported: reported ? Number(reported) : undefined };
}

export async function rowBundle({ tree, dir, log }) {
	log("1. building the production worker and the hello reference (wrangler deploy --dry-run --minify)");
	const ours = await build(tree, "wrangler.toml", join(dir, "dist-production"));
	const hello = await build(tree, "bench/workers/hello/wrangler.toml", join(dir, "dist-hello"));
	const kib = (n) => n / 1024;
	return {
		n: 1,
		what: "Bundle: production worker, minified + gzipped",
		ours: `${fmt(kib(ours.gzip))} KiB gz (${fmt(kib(ours.bytes))} KiB min)`,
		reference: `${fmt(kib(hello.gzip))} KiB gz (${fmt(kib(hello.bytes))} KiB min), bare Hono hello`,
		ratio: `${fmt(ours.gzip / hello.gzip, 1)}×`,
		goal: `< ${GOAL_KIB} KiB gz`,
		pass: kib(ours.gzip) < GOAL_KIB,
		note: `gzip -9 of the modules wrangler wrote (${ours.modules.join(", ")}); wrangler itself reported ${ours.reported ?? "?"} KiB gzip for ours and ${hello.reported ?? "?"} KiB for hello.`,
	};
}
