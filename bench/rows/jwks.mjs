// Row 2: requests/s on /.well-known/jwks.json against a bare Hono route
// answering the same bytes, same workerd build, same load tool (autocannon,
// in this process, on loopback), alternating reference and ours.
import { join } from "node:path";
import autocannon from "autocannon";
import { freePort, innerWorkerd, startWrangler } from "../lib/stack.mjs";
import { fmt, spread, summary } from "../lib/stats.mjs";

const PATH = "/.well-known/jwks.json";
const REPS = 5;
const SECONDS = 4;
const CONNECTIONS = 16;

async function load(url, seconds) {
	const result = await autocannon({ url, connections: CONNECTIONS, duration: seconds, pipelining: 1 });
	if (result.errors || result.non2xx)
		throw new Error(`autocannon on ${url}: ${result.errors} errors, ${result.non2xx} non-2xx`);
	return result.requests.total / (result.duration || seconds);
}

export async function rowJwks({ tree, dir, stack, log }) {
	const body = await (await fetch(`${stack.W}${PATH}`, { headers: { "Accept-Encoding": "identity" } })).text();
	log(`2. starting the JWKS reference (bare Hono, constant ${body.length}-byte body)`);
	const reference = await startWrangler({
		name: "jwks-reference",
		cwd: tree,
		config: "bench/workers/jwks-reference/wrangler.toml",
		port: await freePort(),
		persistTo: join(dir, "jwks-reference-state"),
		vars: { JWKS_BODY: body },
		readyPath: PATH,
	});
	const refInner = await innerWorkerd(reference, PATH);
	const refBody = await (await fetch(`${refInner.origin}${PATH}`)).text();
	if (refBody !== body) throw new Error("the reference does not answer the same JWKS bytes");

	stack.bareRoute = `${refInner.origin}${PATH}`;
	const ours = [];
	const theirs = [];
	const health = [];
	log(`2. warm-up, then ${REPS} × ${SECONDS} s each, ${CONNECTIONS} connections, alternating`);
	await load(`${refInner.origin}${PATH}`, 1);
	await load(`${stack.W}${PATH}`, 1);
	for (let i = 0; i < REPS; i++) {
		theirs.push(await load(`${refInner.origin}${PATH}`, SECONDS));
		ours.push(await load(`${stack.W}${PATH}`, SECONDS));
		// Breakdown: our app's middleware and logging alone, on a route with no KV read and no signer.
		health.push(await load(`${stack.W}/health`, SECONDS));
	}
	const ratios = summary(ours.map((o, i) => o / theirs[i]));
	return {
		n: 2,
		what: `JWKS: requests/s on ${PATH} (${body.length} B)`,
		ours: `${spread(summary(ours), "", 0)} req/s`,
		reference: `${spread(summary(theirs), "", 0)} req/s, bare Hono constant body`,
		ratio: spread(ratios),
		goal: "≥ 0.9",
		pass: ratios.median >= 0.9,
		ratioValue: ratios.median,
		note: `autocannon ${CONNECTIONS} connections × ${SECONDS} s per repetition, ${REPS} repetitions, after 1 s warm-ups; ratio per repetition pair. Breakdown, same runs: our /health (same middleware: request id, request log line, same-origin check; no KV read, no signer) ${spread(summary(health), " req/s", 0)}, i.e. ${fmt(summary(health.map((h, i) => h / theirs[i])).median)} of the bare route.`,
	};
}
