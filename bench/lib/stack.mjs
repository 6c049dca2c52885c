// Processes the bench starts: `wrangler dev` for the worker, the sandbox and
// the bench-only reference workers, each on a free loopback port, each
// stopped (with its workerd children) when the bench ends, fails or is
// interrupted. Nothing here touches ports 3000/3001 or the repo's .dev.vars.
import { spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import {
	cpSync,
	mkdirSync,
	mkdtempSync,
	readdirSync,
	readFileSync,
	readlinkSync,
	rmSync,
	symlinkSync,
	writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WRANGLER = join(ROOT, "node_modules/wrangler/bin/wrangler.js");
export const HOST = "127.0.0.1";

const children = new Set();
let workDir;

/** A temporary folder for this run's secrets, state and builds; removed at exit. */
export function benchDir() {
	workDir ??= mkdtempSync(join(tmpdir(), "athena-bench-"));
	return workDir;
}

/** A port the kernel says is free now (listen on 0, read it, close). */
export function freePort() {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.unref();
		server.on("error", reject);
		server.listen(0, HOST, () => {
			const { port } = server.address();
			server.close(() => resolve(port));
		});
	});
}

/**
 * Throwaway secrets in the format of scripts/local-secrets.mjs, in a temp
 * .dev.vars passed with --env-file. Returns the PEM too: the bench signs its
 * own client assertions for the direct sandbox reads (row 4).
 */
export function writeSecrets(dir) {
	const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
	const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim();
	const path = join(dir, ".dev.vars");
	writeFileSync(
		path,
		`SIGNING_KEY="${pem.split("\n").join("\\n")}"\nSESSION_ENCRYPTION_KEYS="v1:${randomBytes(32).toString("base64")}"\n`,
		{ mode: 0o600 },
	);
	return { path, pem };
}

/**
 * `wrangler dev` for one config on `port`, resolved once it answers HTTP.
 * Output is kept (last lines) for error reports and otherwise discarded: the
 * pipes must be drained or workerd's logging would block.
 */
export async function startWrangler({
	name,
	config,
	port,
	cwd = ROOT,
	vars = {},
	envFile,
	persistTo,
	extra = [],
	readyPath = "/",
}) {
	const inspectorPort = await freePort();
	const args = [
		WRANGLER,
		"dev",
		"--config",
		config,
		"--ip",
		HOST,
		"--port",
		String(port),
		"--inspector-port",
		String(inspectorPort),
		"--show-interactive-dev-session=false",
		"--log-level",
		"warn",
		...(persistTo ? ["--persist-to", persistTo] : []),
		...(envFile ? ["--env-file", envFile] : []),
		...Object.entries(vars).flatMap(([k, v]) => ["--var", `${k}:${v}`]),
		...extra,
	];
	const child = spawn(process.execPath, args, {
		cwd,
		stdio: ["ignore", "pipe", "pipe"],
		env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true", NO_COLOR: "1" },
		detached: true, // own process group, so the workerd children go with it
	});
	const tail = [];
	const keep = (chunk) => {
		for (const line of String(chunk).split("\n")) if (line.trim()) tail.push(line);
		if (tail.length > 40) tail.splice(0, tail.length - 40);
	};
	child.stdout.on("data", keep);
	child.stderr.on("data", keep);
	const service = { name, port, origin: `http://${HOST}:${port}`, child, tail, inspectorPort };
	children.add(service);
	child.on("exit", () => children.delete(service));
	const deadline = Date.now() + 60_000;
	if (process.env.BENCH_DEBUG) child.stderr.on("data", (c) => process.stderr.write(`[${name}] ${c}`));
	if (process.env.BENCH_DEBUG) child.stdout.on("data", (c) => process.stderr.write(`[${name}] ${c}`));
	while (Date.now() < deadline) {
		if (child.exitCode !== null) throw new Error(`${name} exited early:\n${tail.join("\n")}`);
		try {
			const response = await fetch(`${service.origin}${readyPath}`, { signal: AbortSignal.timeout(2_000) });
			await response.arrayBuffer();
			if (response.status < 500) return service;
		} catch {}
		await new Promise((r) => setTimeout(r, 200));
	}
	throw new Error(`${name} did not answer on ${service.origin} within 60 s:\n${tail.join("\n")}`);
}

/** Stops one service: SIGTERM to its process group, SIGKILL after a grace period. */
export async function stopService(service) {
	if (!children.has(service)) return;
	const { child } = service;
	const exited = new Promise((r) => child.once("exit", r));
	try {
		process.kill(-child.pid, "SIGTERM");
	} catch {}
	const timer = setTimeout(() => {
		try {
			process.kill(-child.pid, "SIGKILL");
		} catch {}
	}, 3_000);
	await exited;
	clearTimeout(timer);
	// workerd may outlive wrangler by a moment; the group kill reaches it too.
	try {
		process.kill(-child.pid, "SIGKILL");
	} catch {}
	children.delete(service);
}

export async function stopAll() {
	await Promise.all([...children].map(stopService));
	if (workDir) rmSync(workDir, { recursive: true, force: true });
	workDir = undefined;
}

/** Synchronous last resort for `exit`: kill every process group we started. */
export function killAllNow() {
	for (const { child } of children) {
		try {
			process.kill(-child.pid, "SIGKILL");
		} catch {}
	}
	if (workDir) rmSync(workDir, { recursive: true, force: true });
}

/** Descendant pids of `pid` (from /proc), with their command names. */
export function descendants(pid) {
	const byParent = new Map();
	for (const entry of readdirSync("/proc")) {
		if (!/^\d+$/.test(entry)) continue;
		try {
			const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
			const close = stat.lastIndexOf(")");
			const comm = stat.slice(stat.indexOf("(") + 1, close);
			const ppid = Number(stat.slice(close + 2).split(" ")[1]);
			if (!byParent.has(ppid)) byParent.set(ppid, []);
			byParent.get(ppid).push({ pid: Number(entry), comm });
		} catch {}
	}
	const out = [];
	const walk = (p) => {
		for (const c of byParent.get(p) ?? []) {
			out.push(c);
			walk(c.pid);
		}
	};
	walk(pid);
	return out;
}

/** VmRSS of a process in bytes. */
export function rssBytes(pid) {
	const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
	return match ? Number(match[1]) * 1024 : 0;
}

/** utime + stime of a process, in milliseconds. */
export function cpuMs(pid) {
	const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
	const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
	// fields[11] = utime, fields[12] = stime (stat fields 14 and 15), in clock ticks (100 Hz on Linux).
	return ((Number(fields[11]) + Number(fields[12])) * 1000) / 100;
}

/** TCP ports a process listens on (from /proc/net/tcp, matched by socket inode). */
export function listeningPorts(pid) {
	const inodes = new Set();
	for (const fd of readdirSync(`/proc/${pid}/fd`)) {
		try {
			const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
			if (match) inodes.add(match[1]);
		} catch {}
	}
	const ports = [];
	for (const line of readFileSync("/proc/net/tcp", "utf8").split("\n").slice(1)) {
		const cols = line.trim().split(/\s+/);
		// st 0A = LISTEN; local_address is HEXIP:HEXPORT; inode is column 9.
		if (cols[3] === "0A" && inodes.has(cols[9])) ports.push(Number.parseInt(cols[1].split(":")[1], 16));
	}
	return ports;
}

/**
 * The workerd process that runs the service's own worker (wrangler dev runs
 * two: a proxy in front on the public port, and the user worker's, started
 * with an inspector) and that process's own entry origin, found by probing
 * its listening ports. The bench measures there, so the figures are
 * workerd's, not wrangler's dev proxy's.
 */
export async function innerWorkerd(service, probePath) {
	// wrangler may still be (re)starting the user worker's workerd just after the proxy answers.
	const deadline = Date.now() + 20_000;
	for (;;) {
		const workerd = descendants(service.child.pid).find((p) => {
			try {
				return p.comm === "workerd" && readFileSync(`/proc/${p.pid}/cmdline`, "utf8").includes("--inspector-addr");
			} catch {
				return false;
			}
		});
		for (const port of workerd ? listeningPorts(workerd.pid) : []) {
			try {
				const response = await fetch(`http://${HOST}:${port}${probePath}`, { signal: AbortSignal.timeout(2_000) });
				const text = await response.text();
				if (response.status < 500 && !text.startsWith("Not yet implemented")) {
					return { pid: workerd.pid, origin: `http://${HOST}:${port}` };
				}
			} catch {}
		}
		if (Date.now() > deadline) throw new Error(`${service.name}: no user-worker workerd answering ${probePath}`);
		await new Promise((r) => setTimeout(r, 250));
	}
}

/**
 * A copy of the code under test (src, sandbox, configs, bench workers) in the
 * bench's temp folder, so an edit made elsewhere in the tree while the bench
 * runs cannot make wrangler rebuild a worker mid-measurement.
 */
export function snapshotTree(dir) {
	const target = join(dir, "tree");
	mkdirSync(target, { recursive: true });
	for (const entry of [
		"src",
		"sandbox/src",
		"sandbox/wrangler.toml",
		"bench/workers",
		"wrangler.toml",
		"tsconfig.json",
		"package.json",
	]) {
		cpSync(join(ROOT, entry), join(target, entry), { recursive: true });
	}
	symlinkSync(join(ROOT, "node_modules"), join(target, "node_modules"));
	return target;
}
