// Rows 4–7: the FHIR proxy (/fhir/r4/*) against the same reads straight from
// the sandbox, with a session signed in over HTTP like a browser and, for the
// direct reads, a token the bench redeemed itself with the same client key.

import { join } from "node:path";
import { cookieHeader, keepAliveAgent, send } from "../lib/http.mjs";
import { PATIENT, PRACTICE, signInThroughWorker } from "../lib/signin.mjs";
import { freePort, innerWorkerd, rssBytes, startWrangler } from "../lib/stack.mjs";
import { fmt, quantile, spread, summary } from "../lib/stats.mjs";

const READ_PATH = `/fhir/r4/Patient/${PATIENT}`;
const FHIR_JSON = "application/fhir+json";
const MB = 1e6;

function searchPath(bytes, raw = false) {
	const query = `patient=${PATIENT}&ah-practice=Organization/a-1.Practice-${PRACTICE}&_sandbox_bytes=${bytes}`;
	return `/fhir/r4/Observation?${query}${raw ? "&_sandbox_content_type=application/octet-stream" : ""}`;
}

async function targets(stack) {
	const jar = await stack.session();
	const token = await stack.directToken();
	return {
		worker: (path, agent) =>
			send(`${stack.W}${path}`, { headers: { Cookie: cookieHeader(jar), Accept: FHIR_JSON }, agent, keepBody: false }),
		direct: (path, agent) =>
			send(`${stack.S}${path}`, {
				headers: { Authorization: `Bearer ${token}`, Accept: FHIR_JSON },
				agent,
				keepBody: false,
			}),
	};
}

function ok(response, what) {
	if (response.status !== 200) throw new Error(`${what}: status ${response.status}`);
	return response;
}

// ---------------------------------------------------------------- row 4

const SMALL_REPS = 5;
const SMALL_N = 200;

async function latencies(get, agent) {
	const times = [];
	for (let i = 0; i < SMALL_N; i++) times.push(ok(await get(READ_PATH, agent), "small read").total);
	return { p50: quantile(times, 0.5), p99: quantile(times, 0.99) };
}

export async function rowProxySmall({ stack, log }) {
	const { worker, direct } = await targets(stack);
	const workerAgent = keepAliveAgent(1);
	const directAgent = keepAliveAgent(1);
	log(`4. warm-up, then ${SMALL_REPS} × ${SMALL_N} sequential reads each way, alternating`);
	for (let i = 0; i < 50; i++) {
		ok(await worker(READ_PATH, workerAgent), "warm-up via worker");
		ok(await direct(READ_PATH, directAgent), "warm-up direct");
	}
	const ours = [];
	const ref = [];
	const hop = [];
	const bareAgent = keepAliveAgent(1);
	const bare = (_path, agent) => send(stack.bareRoute, { agent, keepBody: false });
	for (let i = 0; i < SMALL_REPS; i++) {
		ref.push(await latencies(direct, directAgent));
		ours.push(await latencies(worker, workerAgent));
		// Breakdown: what one more workerd hop costs by itself (a bare Hono route, no upstream).
		if (stack.bareRoute) hop.push(await latencies(bare, bareAgent));
	}
	workerAgent.destroy();
	directAgent.destroy();
	bareAgent.destroy();
	const hopNote = hop.length
		? ` Breakdown, same runs: a bare Hono route in another workerd answers in p50 ${spread(summary(hop.map((h) => h.p50)), " ms")}; our added p50 (ours − direct) is ${spread(summary(ours.map((o, i) => o.p50 - ref[i].p50)), " ms")}.`
		: "";
	const ratios = summary(ours.map((o, i) => o.p50 / ref[i].p50));
	const p99 = summary(ours.map((o, i) => o.p99 / ref[i].p99));
	return {
		n: 4,
		what: `FHIR proxy small read: GET ${READ_PATH.replace(PATIENT, "{id}")} latency`,
		ours: `p50 ${spread(summary(ours.map((o) => o.p50)), " ms")}; p99 ${spread(summary(ours.map((o) => o.p99)), " ms")}`,
		reference: `p50 ${spread(summary(ref.map((o) => o.p50)), " ms")}; p99 ${spread(summary(ref.map((o) => o.p99)), " ms")}, straight from the sandbox`,
		ratio: `p50 ${spread(ratios)}×; p99 ${fmt(p99.median)}×`,
		goal: "p50 < 1.5×",
		pass: ratios.median < 1.5,
		ratioValue: ratios.median,
		note: `one keep-alive connection each, ${SMALL_N} sequential reads per repetition, ${SMALL_REPS} repetitions after 50 warm-up reads; percentiles per repetition, then their median (min–max). The worker path is client → worker's workerd → sandbox's workerd, the reference client → sandbox's workerd.${hopNote}`,
	};
}

// ---------------------------------------------------------------- row 5

const LARGE_REPS = 5;
const LARGE_BYTES = 100 * 1024 * 1024;
const SMALL_BYTES = 10 * 1024;

const PROBE_BYTES = 32 * 1024 * 1024;
const PROBE_REPS = 3;

/**
 * Breakdown for row 5: the same sandbox body relayed by a bench-only worker
 * (bench/workers/stream-probe) natively, through a pull stream like the
 * proxy's audit counter, through the rewriter, and both, in MB/s; and the
 * chunks the worker saw.
 */
async function streamLayers({ stack, tree, dir, log }) {
	log(`5. breakdown: ${PROBE_REPS} × 32 MB through the stream probe, four ways`);
	const probe = await startWrangler({
		name: "stream-probe",
		cwd: tree,
		config: "bench/workers/stream-probe/wrangler.toml",
		port: await freePort(),
		persistTo: join(dir, "stream-probe-state"),
		readyPath: "/chunks",
	});
	const { origin } = await innerWorkerd(probe, "/chunks");
	const token = await stack.directToken();
	const agent = keepAliveAgent(1);
	const upstream = encodeURIComponent(`${stack.S}${searchPath(PROBE_BYTES)}`);
	const modes = ["native", "pull", "rewrite", "rewrite+pull"];
	const rates = Object.fromEntries(modes.map((m) => [m, []]));
	const direct = [];
	let chunks;
	for (let i = 0; i < PROBE_REPS + 1; i++) {
		const d = ok(
			await send(`${stack.S}${searchPath(PROBE_BYTES)}`, {
				headers: { Authorization: `Bearer ${token}` },
				agent,
				keepBody: false,
			}),
			"probe direct",
		);
		if (i > 0) direct.push(PROBE_BYTES / MB / (d.total / 1000));
		for (const mode of modes) {
			const r = ok(
				await send(`${origin}/?mode=${encodeURIComponent(mode)}&url=${upstream}`, {
					headers: { Authorization: `Bearer ${token}` },
					agent,
					keepBody: false,
				}),
				`probe ${mode}`,
			);
			if (i > 0) rates[mode].push(PROBE_BYTES / MB / (r.total / 1000));
			if (mode === "pull") chunks = JSON.parse((await send(`${origin}/chunks`, { agent })).body);
		}
	}
	agent.destroy();
	const parts = modes.map((m) => `${m} ${spread(summary(rates[m]), " MB/s", 0)}`).join("; ");
	return `Breakdown (bench/workers/stream-probe, same sandbox body, 32 MB, ${PROBE_REPS} repetitions): straight from the sandbox ${spread(summary(direct), " MB/s", 0)}; relayed by a worker ${parts}. The worker received the body in ${chunks.chunks} chunks of ${fmt(chunks.bytes / chunks.chunks / 1024, 1)} KiB on average.`;
}

export async function rowProxyLarge({ stack, tree, dir, log }) {
	const { worker, direct } = await targets(stack);
	const agent = keepAliveAgent(1);
	const rate = (response) => LARGE_BYTES / MB / (response.total / 1000);
	log(`5. warm-up, then ${LARGE_REPS} × 100 MB direct, via the proxy rewriting and passing through`);
	ok(await direct(searchPath(LARGE_BYTES), agent), "warm-up direct");
	ok(await worker(searchPath(LARGE_BYTES), agent), "warm-up via worker");
	ok(await worker(searchPath(LARGE_BYTES, true), agent), "warm-up via worker, raw");
	const rows = { direct: [], rewrite: [], raw: [], ttfbLarge: [], ttfbSmall: [], directRaw: [] };
	for (let i = 0; i < LARGE_REPS; i++) {
		const d = ok(await direct(searchPath(LARGE_BYTES), agent), "direct 100 MB");
		const dr = ok(await direct(searchPath(LARGE_BYTES, true), agent), "direct 100 MB raw");
		const w = ok(await worker(searchPath(LARGE_BYTES), agent), "proxy 100 MB");
		const r = ok(await worker(searchPath(LARGE_BYTES, true), agent), "proxy 100 MB raw");
		if (r.headers["content-type"] !== "application/octet-stream") throw new Error("raw variant was not passed through");
		const small = [];
		for (let k = 0; k < 5; k++) small.push(ok(await worker(searchPath(SMALL_BYTES), agent), "proxy 10 KB").ttfb);
		rows.direct.push(rate(d));
		rows.directRaw.push(rate(dr));
		rows.rewrite.push(rate(w));
		rows.raw.push(rate(r));
		rows.ttfbLarge.push(w.ttfb);
		rows.ttfbSmall.push(quantile(small, 0.5));
	}
	agent.destroy();
	const breakdown = await streamLayers({ stack, tree, dir, log });
	const rewriteRatio = summary(rows.rewrite.map((v, i) => v / rows.direct[i]));
	const rawRatio = summary(rows.raw.map((v, i) => v / rows.directRaw[i]));
	const ttfbRatio = summary(rows.ttfbLarge.map((v, i) => v / rows.ttfbSmall[i]));
	return [
		{
			n: 5,
			what: "FHIR proxy 100 MB search, URLs rewritten (JSON)",
			ours: `${spread(summary(rows.rewrite), " MB/s", 0)}`,
			reference: `${spread(summary(rows.direct), " MB/s", 0)} straight from the sandbox`,
			ratio: spread(rewriteRatio),
			goal: "≥ 0.7",
			pass: rewriteRatio.median >= 0.7,
			ratioValue: rewriteRatio.median,
		},
		{
			n: 5,
			what: "FHIR proxy 100 MB, passed through (`application/octet-stream`)",
			ours: `${spread(summary(rows.raw), " MB/s", 0)}`,
			reference: `${spread(summary(rows.directRaw), " MB/s", 0)} straight from the sandbox`,
			ratio: spread(rawRatio),
			goal: "≥ 0.9",
			pass: rawRatio.median >= 0.9,
			ratioValue: rawRatio.median,
		},
		{
			n: 5,
			what: "FHIR proxy time to first byte, 100 MB vs 10 KB body",
			ours: `${spread(summary(rows.ttfbLarge), " ms")} (100 MB)`,
			reference: `${spread(summary(rows.ttfbSmall), " ms")} (10 KB, median of 5 per repetition)`,
			ratio: spread(ttfbRatio),
			goal: "≤ 1.5",
			pass: ttfbRatio.median <= 1.5,
			ratioValue: ttfbRatio.median,
			note: `MB = 10^6 bytes of the 100 MiB body, over the whole request (first byte sent to last byte read), one keep-alive connection, body read and dropped by Node; ${LARGE_REPS} repetitions after one warm-up of each. The pass-through variant is the same bytes labelled application/octet-stream by the sandbox (\`_sandbox_content_type\`), which the proxy does not rewrite. ${breakdown}`,
		},
	];
}

// ---------------------------------------------------------------- row 6

const MEMORY_REPS = 3;
const MEMORY_BYTES = 256 * 1024 * 1024;

/** Peak VmRSS of `pid` (sampled every 50 ms) while `promise` runs, and its result. */
export async function sampleWhile(pid, promise) {
	let peak = rssBytes(pid);
	let done = false;
	const finished = promise.finally(() => {
		done = true;
	});
	while (!done) {
		peak = Math.max(peak, rssBytes(pid));
		await Promise.race([finished, new Promise((r) => setTimeout(r, 50))]);
	}
	peak = Math.max(peak, rssBytes(pid));
	return { peak, result: await finished };
}

/** Median VmRSS of `pid` over half a second of rest. */
export async function idleRss(pid) {
	const samples = [];
	for (let i = 0; i < 10; i++) {
		samples.push(rssBytes(pid));
		await new Promise((r) => setTimeout(r, 50));
	}
	return quantile(samples, 0.5);
}

export async function rowProxyMemory({ stack, log }) {
	const { worker } = await targets(stack);
	const agent = keepAliveAgent(1);
	log(`6. ${MEMORY_REPS} × 256 MB through the proxy (rewriting), RSS of workerd ${stack.workerPid} every 50 ms`);
	ok(await worker(searchPath(16 * 1024 * 1024), agent), "warm-up");
	const deltas = [];
	const idles = [];
	for (let i = 0; i < MEMORY_REPS; i++) {
		const idle = await idleRss(stack.workerPid);
		const { peak, result } = await sampleWhile(stack.workerPid, worker(searchPath(MEMORY_BYTES), agent));
		ok(result, "256 MB via worker");
		idles.push(idle);
		deltas.push(peak - idle);
	}
	agent.destroy();
	const mib = (v) => v / 1024 ** 2;
	const delta = summary(deltas.map(mib));
	return {
		n: 6,
		what: "Memory: workerd peak RSS streaming 256 MB through the proxy, minus idle",
		ours: `${spread(delta, " MiB", 1)}`,
		reference: `idle ${spread(summary(idles.map(mib)), " MiB", 0)}`,
		ratio: `${fmt(delta.median / 256, 3)} of the body`,
		goal: "< 32 MiB",
		pass: delta.median < 32,
		note: `VmRSS of the worker's own workerd process (not wrangler's proxy) from /proc every 50 ms; idle = median of 10 samples just before each repetition; JSON body, so through the rewriter.`,
	};
}

// ---------------------------------------------------------------- row 7

const REFRESH_REPS = 5;
const CONCURRENT = 200;

async function tokenCalls(stack) {
	const received = JSON.parse((await send(`${stack.S}/_sandbox/received`)).body);
	return received.counts.token;
}

async function burst(worker, agent) {
	const started = performance.now();
	const responses = await Promise.all(Array.from({ length: CONCURRENT }, () => worker(READ_PATH, agent)));
	const wall = performance.now() - started;
	const statuses = responses.reduce((m, r) => m.set(r.status, (m.get(r.status) ?? 0) + 1), new Map());
	if (statuses.size !== 1 || !statuses.has(200)) throw new Error(`burst answered ${JSON.stringify([...statuses])}`);
	return wall;
}

/** Reads as one newly signed-in browser: a session refreshes at most 3 times a minute, so each repetition has its own. */
async function freshSessionReader(stack) {
	const { jar } = await signInThroughWorker(stack.W);
	return (path, agent) =>
		send(`${stack.W}${path}`, { headers: { Cookie: cookieHeader(jar), Accept: FHIR_JSON }, agent, keepBody: false });
}

export async function rowRefresh({ stack, log }) {
	const agent = keepAliveAgent(CONCURRENT);
	log(`7. ${REFRESH_REPS} × (expire tokens, ${CONCURRENT} concurrent reads; then ${CONCURRENT} with the fresh token)`);
	const expired = [];
	const fresh = [];
	const calls = [];
	for (let i = 0; i < REFRESH_REPS; i++) {
		const worker = await freshSessionReader(stack);
		await burst(worker, agent);
		ok(await send(`${stack.S}/_sandbox/expire-access-tokens`, { method: "POST" }), "expire-access-tokens");
		const before = await tokenCalls(stack);
		expired.push(await burst(worker, agent));
		calls.push((await tokenCalls(stack)) - before);
		fresh.push(await burst(worker, agent));
	}
	agent.destroy();
	const ratio = summary(expired.map((e, i) => e / fresh[i]));
	return {
		n: 7,
		what: `Refresh coalescing: ${CONCURRENT} concurrent reads on an expired token`,
		ours: `token calls ${calls.join(", ")}; wall ${spread(summary(expired), " ms", 0)}`,
		reference: `wall ${spread(summary(fresh), " ms", 0)} with a fresh token`,
		ratio: `${spread(ratio)}× wall`,
		goal: "exactly 1 token call",
		pass: calls.every((c) => c === 1),
		note: `token calls counted by the sandbox (/_sandbox/received counts.token) around each burst; ${CONCURRENT} keep-alive connections; each repetition signs in a new session (one warm-up burst first), since a session may refresh at most 3 times a minute.`,
	};
}
