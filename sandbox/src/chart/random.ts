/**
 * A seeded pseudo-random source (mulberry32): every isolate and every run
 * draws the same sequence from the same seed, so the sandbox's charts never
 * change between runs.
 *
 * @example
 * const random = seededRandom(14545);
 * random.int(120, 140); // the same number on every run
 */
export interface SeededRandom {
	/** A number in [0, 1). */
	next(): number;
	/** An integer in [min, max], both included. */
	int(min: number, max: number): number;
	/** A number in [min, max) rounded to `decimals` places. */
	decimal(min: number, max: number, decimals: number): number;
	pick<T>(items: readonly T[]): T;
	/** `count` distinct indexes below `length`, in ascending order. */
	indexes(length: number, count: number): number[];
	/** A copy of `items` in a random order. */
	shuffled<T>(items: readonly T[]): T[];
}

export function seededRandom(seed: number): SeededRandom {
	let state = seed >>> 0;
	const next = () => {
		state = (state + 0x6d2b79f5) >>> 0;
		let t = state;
		t = Math.imul(t ^ (t >>> 15), t | 1);
		t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
	const int = (min: number, max: number) => min + Math.floor(next() * (max - min + 1));
	/** Partial Fisher–Yates: the first `count` places end up a uniform sample, which is returned. */
	const shuffle = <T>(items: T[], count: number): T[] => {
		const n = Math.min(count, items.length);
		for (let i = 0; i < n; i++) {
			const j = int(i, items.length - 1);
			[items[i], items[j]] = [items[j] as T, items[i] as T];
		}
		return items.slice(0, n);
	};
	return {
		next,
		int,
		decimal: (min, max, decimals) => {
			const factor = 10 ** decimals;
			return Math.round((min + next() * (max - min)) * factor) / factor;
		},
		pick: (items) => {
			const item = items[int(0, items.length - 1)];
			if (item === undefined) throw new RangeError("pick from an empty list");
			return item;
		},
		indexes: (length, count) =>
			shuffle(
				Array.from({ length }, (_, i) => i),
				count,
			).sort((a, b) => a - b),
		shuffled: (items) => shuffle([...items], items.length),
	};
}
