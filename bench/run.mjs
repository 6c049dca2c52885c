// `npm run bench`: runs the worker, the local athena sandbox and
// the bench's reference workers in workerd (each under its own `wrangler
// dev`, on free loopback ports), measures every figure side by side with its
// reference in the same run, and prints a markdown table that is also written
// into BENCHMARKS.md between the bench markers, with the machine and date.
//
//   npm run bench                 # the full run, about 8 minutes (rows 9-10 about 3 of them)
//   npm run bench -- --rows 2,4   # only some rows (the others are left out)
//   npm run bench -- --no-write   # print only, leave BENCHMARKS.md alone
//
// Loopback only; every loop is bounded in count and time; every child is
// stopped at the end, on error and on Ctrl-C.
import { execFileSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { benchDir, killAllNow, ROOT, snapshotTree, stopAll } from "./lib/stack.mjs";
import { rowBundle } from "./rows/bundle.mjs";
import { rowExport } from "./rows/export.mjs";
import { rowJwks } from "./rows/jwks.mjs";
import { rowProxyLarge, rowProxyMemory, rowProxySmall, rowRefresh } from "./rows/proxy.mjs";
import { rowSigner } from "./rows/signer.mjs";
import { rowSignIn } from "./rows/signin.mjs";
import { mainStack } from "./rows/stack.mjs";

const BEGIN = "<!-- bench:begin (written by `npm run bench`) -->";
const END = "<!-- bench:end -->";
const DEADLINE_MS = 20 * 60_000;

let options;
try {
	options = parseArgs({
		args: process.argv.slice(2),
		options: { rows: { type: "string" }, "no-write": { type: "boolean", default: false } },
	}).values;
} catch (error) {
	console.error(
		`[bench] ${error instanceof Error ? error.message : error}\nusage: npm run bench -- [--rows 2,4] [--no-write]`,
	);
	process.exit(2);
}
const onlyRows = options.rows === undefined ? undefined : new Set(options.rows.split(",").map(Number));
if (onlyRows && [...onlyRows].some((n) => !Number.isInteger(n) || n < 1)) {
	console.error(`[bench] --rows takes row numbers separated by commas, e.g. --rows 2,4; got ${options.rows}`);
	process.exit(2);
}
const write = !options["no-write"];
const wanted = (n) => !onlyRows || onlyRows.has(n);

process.on("exit", killAllNow);
for (const signal of ["SIGINT", "SIGTERM"]) {
	process.on(signal, async () => {
		console.error(`\n[bench] ${signal}: stopping children`);
		await stopAll();
		process.exit(130);
	});
}
const watchdog = setTimeout(async () => {
	console.error(`[bench] still running after ${DEADLINE_MS / 60_000} minutes: giving up`);
	await stopAll();
	process.exit(2);
}, DEADLINE_MS);
watchdog.unref();

function sh(file, argv) {
	try {
		return execFileSync(file, argv, { cwd: ROOT, encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
	} catch {
		return "unknown";
	}
}

function machine() {
	const cpus = os.cpus();
	return {
		date: new Date().toISOString().replace(/\.\d+Z$/, "Z"),
		cpu: `${cpus.length} × ${cpus[0]?.model ?? "unknown"}`,
		memory: `${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB`,
		os: `${os.type()} ${os.release()} ${os.arch()}`,
		node: process.version,
		workerd: sh(join(ROOT, "node_modules/.bin/workerd"), ["--version"]),
		wrangler: JSON.parse(readFileSync(join(ROOT, "node_modules/wrangler/package.json"), "utf8")).version,
		autocannon: JSON.parse(readFileSync(join(ROOT, "node_modules/autocannon/package.json"), "utf8")).version,
		commit: sh("git", ["describe", "--always", "--dirty"]),
	};
}

const log = (message) => console.log(`[bench] ${message}`);

function table(rows) {
	const head = "| # | what | ours | reference | ratio | goal | result |\n|---|---|---|---|---|---|---|";
	const lines = rows.map(
		(r) =>
			`| ${r.n} | ${r.what} | ${r.ours} | ${r.reference} | ${r.ratio} | ${r.goal} | ${r.pass === undefined ? "n/a" : r.pass ? "pass" : "**miss**"} |`,
	);
	return [head, ...lines].join("\n");
}

function report(info, rows, notes, seconds) {
	return [
		`Measured ${info.date} on ${info.cpu}, ${info.memory} RAM, ${info.os}; Node ${info.node}, ${info.workerd}, wrangler ${info.wrangler}, autocannon ${info.autocannon}; code at \`${info.commit}\`. The whole run took ${Math.round(seconds)} s.`,
		"",
		"Figures are medians of the repetitions, with (min–max) after them.",
		"",
		table(rows),
		"",
		...notes.map((note) => `- ${note}`),
	].join("\n");
}

async function main() {
	const started = performance.now();
	const info = machine();
	log(`${info.cpu}, ${info.memory}, node ${info.node}, ${info.workerd}`);
	const dir = benchDir();
	const tree = snapshotTree(dir);
	const rows = [];
	const notes = [];
	const add = (result) => {
		for (const row of [result].flat()) {
			rows.push(row);
			if (row.note) notes.push(`Row ${row.n}: ${row.note}`);
			log(`${row.n}. ${row.what}: ours ${row.ours} | ref ${row.reference} | ${row.ratio} | goal ${row.goal}`);
		}
	};

	if (wanted(1)) add(await rowBundle({ tree, dir, log }));
	const needsStack = [2, 4, 5, 6, 7, 8, 9, 10].some(wanted);
	const stack = needsStack ? await mainStack({ tree, dir, log }) : undefined;
	if (wanted(2)) add(await rowJwks({ tree, dir, stack, log }));
	if (wanted(3)) add(await rowSigner({ tree, dir, stack, log }));
	if (wanted(4)) add(await rowProxySmall({ stack, log }));
	if (wanted(5)) add(await rowProxyLarge({ stack, tree, dir, log }));
	if (wanted(6)) add(await rowProxyMemory({ stack, log }));
	if (wanted(7)) add(await rowRefresh({ stack, log }));
	if (wanted(8)) add(await rowSignIn({ stack, log }));
	if (wanted(9) || wanted(10)) add(await rowExport({ stack, log }));
	await stopAll();

	rows.sort((a, b) => a.n - b.n || 0);
	const seconds = (performance.now() - started) / 1000;
	const text = report(info, rows, notes, seconds);
	console.log(`\n${text}\n`);
	if (write && !onlyRows) {
		const path = join(ROOT, "BENCHMARKS.md");
		let current = "";
		try {
			current = readFileSync(path, "utf8");
		} catch {}
		const block = `${BEGIN}\n${text}\n${END}`;
		const next =
			current.includes(BEGIN) && current.includes(END)
				? current.slice(0, current.indexOf(BEGIN)) + block + current.slice(current.indexOf(END) + END.length)
				: `# Benchmarks\n\n${block}\n${current}`;
		writeFileSync(path, next);
		log("table written to BENCHMARKS.md");
	} else if (write) {
		log("--rows given: BENCHMARKS.md left as it was (it holds full runs only)");
	}
}

main().catch(async (error) => {
	console.error(`[bench] failed: ${error?.stack ?? error}`);
	await stopAll();
	process.exit(1);
});
