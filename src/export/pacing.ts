/** The time an export runs on: real in the worker, controlled in tests. */
export interface ExportClock {
	now(): number;
	sleep(ms: number): Promise<void>;
}

export const realClock: ExportClock = {
	now: () => Date.now(),
	sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

/** When athena asks for a wait without saying how long. */
const DEFAULT_WAIT_MS = 1_000;

/**
 * How long athena asks us to wait, from `Retry-After` (seconds or an HTTP
 * date) or else `Ratelimit-Reset` (seconds, as athena sends it: "1").
 */
export function requestedWaitMs(headers: Headers, now: number): number {
	const retryAfter = headers.get("Retry-After")?.trim();
	if (retryAfter) {
		if (/^\d+$/.test(retryAfter)) return Number(retryAfter) * 1_000;
		const at = Date.parse(retryAfter);
		if (!Number.isNaN(at)) return Math.max(0, at - now);
	}
	const reset = headers.get("Ratelimit-Reset")?.trim();
	if (reset && /^\d+$/.test(reset)) return Number(reset) * 1_000;
	return DEFAULT_WAIT_MS;
}

/**
 * One export's manners towards athena, shared by its concurrent searches: a
 * 429, a `Ratelimit-Remaining: 0` or a failing athena pauses every search
 * until the time athena named, and no wait may run past the export's
 * deadline (the caller then ends the export, saying why).
 *
 * @example
 * const pacer = new Pacer(realClock, Date.now() + 15 * 60_000);
 * if (!(await pacer.ready())) return "out of time";
 * pacer.noteAnswer(response.headers);
 */
export class Pacer {
	#resumeAt = 0;
	#sleep: { until: number; done: Promise<void> } | undefined;

	constructor(
		private readonly clock: ExportClock,
		private readonly deadline: number,
	) {}

	/** No request before `ms` from now. */
	pause(ms: number): void {
		this.#resumeAt = Math.max(this.#resumeAt, this.clock.now() + ms);
	}

	/** athena's rate-limit headers on an answer: when none remain, wait for the reset before the next request. */
	noteAnswer(headers: Headers): void {
		if (headers.get("Ratelimit-Remaining")?.trim() === "0") {
			this.pause(requestedWaitMs(new Headers({ "Ratelimit-Reset": headers.get("Ratelimit-Reset") ?? "" }), 0));
		}
	}

	/**
	 * Waits out any pause; false when the pause (or the time already spent)
	 * goes past the deadline. Searches waiting for the same moment share one
	 * sleep.
	 */
	async ready(): Promise<boolean> {
		for (;;) {
			const now = this.clock.now();
			if (now >= this.deadline || this.#resumeAt > this.deadline) return false;
			if (this.#resumeAt <= now) return true;
			if (this.#sleep?.until !== this.#resumeAt) {
				this.#sleep = { until: this.#resumeAt, done: this.clock.sleep(this.#resumeAt - now) };
			}
			await this.#sleep.done;
		}
	}
}
