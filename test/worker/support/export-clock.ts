import type { ExportClock } from "../../../src/export/pacing";

/** An export clock that moves only when the export sleeps, recording each sleep: athena's waits pass at once. */
export function testClock(start = Date.UTC(2026, 11, 3, 12, 0, 0)): ExportClock & { sleeps: number[] } {
	let now = start;
	const sleeps: number[] = [];
	return {
		sleeps,
		now: () => now,
		sleep: async (ms) => {
			sleeps.push(ms);
			now += ms;
		},
	};
}
