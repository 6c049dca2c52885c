// Row 3: signatures/s through signClientAssertion against a bare
// crypto.subtle.sign of the same bytes with the same imported key, both
// inside workerd (bench/workers/signer), timed by workerd's clock around the
// loop (it advances across the awaits) and cross-checked from outside.
import { join } from "node:path";
import { send } from "../lib/http.mjs";
import { freePort, innerWorkerd, startWrangler, writeSecrets } from "../lib/stack.mjs";
import { fmt, spread, summary } from "../lib/stats.mjs";

const REPS = 7;
const N = 400;

async function signs(origin, mode, n) {
	const response = await send(`${origin}/?mode=${mode}&n=${n}`);
	if (response.status !== 200) throw new Error(`signer ${mode}: ${response.status} ${response.body}`);
	const { insideMs } = JSON.parse(response.body);
	return { inside: (n * 1000) / insideMs, outside: (n * 1000) / response.total };
}

export async function rowSigner({ tree, dir, stack, log }) {
	const envFile = stack?.secrets.path ?? writeSecrets(dir).path;
	log("3. starting the signer bench worker");
	const service = await startWrangler({
		name: "signer",
		cwd: tree,
		config: "bench/workers/signer/wrangler.toml",
		port: await freePort(),
		envFile,
		persistTo: join(dir, "signer-state"),
		readyPath: "/?mode=raw&n=1",
	});
	const { origin } = await innerWorkerd(service, "/?mode=raw&n=1");
	log(`3. warm-up, then ${REPS} × ${N} signatures each way, alternating`);
	await signs(origin, "raw", N);
	await signs(origin, "ours", N);
	const ours = [];
	const raw = [];
	for (let i = 0; i < REPS; i++) {
		raw.push(await signs(origin, "raw", N));
		ours.push(await signs(origin, "ours", N));
	}
	const ratios = summary(ours.map((o, i) => o.inside / raw[i].inside));
	const outsideRatio = summary(ours.map((o, i) => o.outside / raw[i].outside));
	return {
		n: 3,
		what: "Client assertion: RS384 signatures/s in workerd",
		ours: `${spread(summary(ours.map((o) => o.inside)), "", 0)} /s`,
		reference: `${spread(summary(raw.map((o) => o.inside)), "", 0)} /s, bare crypto.subtle.sign`,
		ratio: spread(ratios),
		goal: "≥ 0.8",
		pass: ratios.median >= 0.8,
		ratioValue: ratios.median,
		note: `${N} signatures per request, ${REPS} repetitions; timed inside workerd around the loop. Timed from outside (whole HTTP request) the ratio is ${fmt(outsideRatio.median)} (${fmt(outsideRatio.min)}–${fmt(outsideRatio.max)}).`,
	};
}
