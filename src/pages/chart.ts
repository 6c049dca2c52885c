import { html } from "hono/html";
import { formatDate } from "./format";
import type { Html } from "./layout";
import type { Point } from "./record-data";

/**
 * Charts drawn as inline SVG so the page needs no script (the CSP allows
 * none), with presentation attributes only: the CSP's `style-src 'self'`
 * blocks `style=""`. Sized in SVG units; the CSS scales them to the column.
 */
const WIDTH = 320;
const HEIGHT = 100;
const PAD = { top: 8, right: 10, bottom: 20, left: 36 };
/** Line colours with at least 4.5:1 contrast on white (WCAG 1.4.11 asks 3:1 for graphics). */
const COLOURS = ["#0b5cad", "#a4262c"];

function round(value: number): number {
	return Math.round(value * 10) / 10;
}

/** Scales for points over their time and value span into a box; a flat series sits in the middle. */
function scales(lines: Point[][], box: { x0: number; x1: number; y0: number; y1: number }) {
	const all = lines.flat();
	const times = all.map((p) => Date.parse(p.at));
	const values = all.map((p) => p.value);
	const [t0, t1] = [Math.min(...times), Math.max(...times)];
	const spread = Math.max(...values) - Math.min(...values);
	const v0 = Math.min(...values) - (spread * 0.1 || 1);
	const v1 = Math.max(...values) + (spread * 0.1 || 1);
	const x = (p: Point) => round(box.x0 + ((Date.parse(p.at) - t0) / (t1 - t0 || 1)) * (box.x1 - box.x0));
	const y = (value: number) => round(box.y1 - ((value - v0) / (v1 - v0)) * (box.y1 - box.y0));
	return { t0, t1, v0, v1, x, y, line: (points: Point[]) => points.map((p) => `${x(p)},${y(p.value)}`).join(" ") };
}

/**
 * A small line chart of one measurement over time (two lines for blood
 * pressure), `role="img"` with a text alternative naming the range of dates
 * and the latest values; the latest values are also in the table beside it.
 */
export function lineChart(props: {
	id: string;
	title: string;
	unit: string;
	names: string[];
	lines: Point[][];
}): Html | string {
	const lines = props.lines.map((line) => line.filter((p) => Number.isFinite(Date.parse(p.at))));
	if ((lines[0]?.length ?? 0) < 2) return "";
	const s = scales(lines, { x0: PAD.left, x1: WIDTH - PAD.right, y0: PAD.top, y1: HEIGHT - PAD.bottom });
	const latest = lines.map((line, i) => `${props.names[i]}: latest ${line.at(-1)?.value} ${props.unit}`).join("; ");
	const from = new Date(s.t0).toISOString();
	const to = new Date(s.t1).toISOString();
	const axis = (x: number, y: number, label: string | number, end = false) =>
		html`<text x="${x}" y="${y}"${end ? html` text-anchor="end"` : ""} font-size="11" fill="#4a5560">${label}</text>`;
	return html`<figure class="chart"><svg viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-labelledby="${props.id}-t ${props.id}-d" xmlns="http://www.w3.org/2000/svg"><title id="${props.id}-t">${props.title}</title><desc id="${props.id}-d">${formatDate(from)} to ${formatDate(to)}. ${latest}.</desc><path d="M${PAD.left} ${PAD.top}V${HEIGHT - PAD.bottom}H${WIDTH - PAD.right}" fill="none" stroke="#6e7781"/>${[
		axis(PAD.left - 4, s.y(s.v1) + 10, Math.round(s.v1), true),
		axis(PAD.left - 4, s.y(s.v0), Math.round(s.v0), true),
		axis(PAD.left, HEIGHT - 6, from.slice(0, 4)),
		axis(WIDTH - PAD.right, HEIGHT - 6, to.slice(0, 4), true),
	]}${lines.map(
		(line, i) =>
			html`<g fill="${COLOURS[i]}"><polyline points="${s.line(line)}" fill="none" stroke="${COLOURS[i]}" stroke-width="2"/>${line.map((p) => html`<circle cx="${s.x(p)}" cy="${s.y(p.value)}" r="2.5"/>`)}</g>`,
	)}</svg>${
		lines.length > 1
			? html`<figcaption class="legend">${props.names.map((name, i) => html`<span class="key key-${i}">${name}</span>`)}</figcaption>`
			: ""
	}</figure>`;
}

/** A word-sized trend line of the last readings; decorative, the arrow beside it says the same in text. */
export function sparkline(points: Point[]): Html | string {
	const shown = points.slice(-12);
	if (shown.length < 2) return "";
	const s = scales([shown], { x0: 2, x1: 62, y0: 2, y1: 16 });
	return html`<svg class="spark" viewBox="0 0 64 18" aria-hidden="true" xmlns="http://www.w3.org/2000/svg"><polyline points="${s.line(shown)}" fill="none" stroke="#0b5cad" stroke-width="1.5"/></svg>`;
}
