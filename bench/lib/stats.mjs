// Medians and spreads for repeated measurements, and the figures' formatting.

export function quantile(values, q) {
	const sorted = [...values].sort((a, b) => a - b);
	if (sorted.length === 0) return Number.NaN;
	const at = (sorted.length - 1) * q;
	const low = Math.floor(at);
	const high = Math.ceil(at);
	return sorted[low] + (sorted[high] - sorted[low]) * (at - low);
}

export const median = (values) => quantile(values, 0.5);

/** `{ median, min, max, values }` of one figure's repetitions. */
export function summary(values) {
	return { median: median(values), min: Math.min(...values), max: Math.max(...values), values };
}

export function fmt(value, digits = 2) {
	if (!Number.isFinite(value)) return "n/a";
	const abs = Math.abs(value);
	const d = abs >= 1000 ? 0 : abs >= 100 ? Math.min(digits, 1) : digits;
	return value.toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d });
}

/** "1,234 (1,200–1,250)": median with min–max of the repetitions. */
export function spread(s, unit = "", digits = 2) {
	return `${fmt(s.median, digits)}${unit} (${fmt(s.min, digits)}–${fmt(s.max, digits)})`;
}
