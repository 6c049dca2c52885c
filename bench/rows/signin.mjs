// Row 8: full launch → sandbox sign-in and consent → callback round trips,
// sequential, with both token limits lifted; CPU time per sign-in read from
// /proc for the worker's workerd process (workerd gives a worker no CPU clock).
import { signInThroughWorker } from "../lib/signin.mjs";
import { cpuMs } from "../lib/stack.mjs";
import { fmt, spread, summary } from "../lib/stats.mjs";

const REPS = 5;
const PER_REP = 10;

export async function rowSignIn({ stack, log }) {
	log(`8. warm-up, then ${REPS} × ${PER_REP} sequential sign-ins`);
	for (let i = 0; i < 3; i++) await signInThroughWorker(stack.W);
	const rates = [];
	const workerCpu = [];
	const sandboxCpu = [];
	const workerShare = [];
	for (let i = 0; i < REPS; i++) {
		const cpu0 = { worker: cpuMs(stack.workerPid), sandbox: cpuMs(stack.sandboxPid) };
		const started = performance.now();
		let inWorker = 0;
		for (let k = 0; k < PER_REP; k++) inWorker += (await signInThroughWorker(stack.W)).workerMs;
		const wall = performance.now() - started;
		rates.push((PER_REP * 1000) / wall);
		workerShare.push(inWorker / wall);
		workerCpu.push((cpuMs(stack.workerPid) - cpu0.worker) / PER_REP);
		sandboxCpu.push((cpuMs(stack.sandboxPid) - cpu0.sandbox) / PER_REP);
	}
	const share = summary(workerShare);
	return {
		n: 8,
		what: "Sign-in: launch → callback round trips, sequential",
		ours: `${spread(summary(rates))} /s; worker CPU ${spread(summary(workerCpu), " ms", 1)} per sign-in`,
		reference: `sandbox CPU ${spread(summary(sandboxCpu), " ms", 1)} per sign-in`,
		ratio: `worker requests ${fmt(share.median * 100, 0)}% of wall time`,
		goal: "report",
		pass: undefined,
		note: `sandbox token limit 0 (unlimited), worker TOKEN_REQUESTS_PER_MINUTE 10000 (the most src/config.ts accepts; 100000 fails validation). CPU = utime+stime of each user-worker workerd process over ${PER_REP} sign-ins (10 ms ticks), including the Durable Objects those processes host; workerd does not expose per-request CPU time locally.`,
	};
}
