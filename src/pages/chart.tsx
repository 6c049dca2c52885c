import { formatDate } from "./format";
import type { Point, Series } from "./record-data";

/** Drawing area in SVG user units; the CSS scales the whole chart to the screen's width. */
const WIDTH = 600;
const HEIGHT = 180;
const PAD = { top: 14, right: 16, bottom: 26, left: 44 };
/** Line colours with at least 4.5:1 contrast on white (WCAG 1.4.11 asks 3:1 for graphics). */
const COLOURS = ["#0b5cad", "#a4262c", "#1a7f37"];

function timeOf(point: Point): number {
	return Date.parse(point.at);
}

function round(value: number): number {
	return Math.round(value * 10) / 10;
}

/**
 * A small line chart of one or more series over time, drawn as inline SVG so
 * the page needs no script (the CSP allows none). Only presentation
 * attributes are used: the CSP's `style-src 'self'` blocks `style=""`.
 * The chart is `role="img"` with a text alternative; the values themselves
 * are in the table that follows it.
 */
export function LineChart(props: { id: string; title: string; series: Series[] }) {
	const drawn = props.series.map((s) => ({ ...s, points: s.points.filter((p) => Number.isFinite(timeOf(p))) }));
	const all = drawn.flatMap((s) => s.points);
	if (all.length < 2) return null;
	const times = all.map(timeOf);
	const values = all.map((p) => p.value);
	const [t0, t1] = [Math.min(...times), Math.max(...times)];
	const spread = Math.max(...values) - Math.min(...values);
	// Headroom above and below so a flat series is not drawn on the frame.
	const v0 = Math.min(...values) - (spread * 0.1 || 1);
	const v1 = Math.max(...values) + (spread * 0.1 || 1);
	const x = (t: number) => PAD.left + ((t - t0) / (t1 - t0 || 1)) * (WIDTH - PAD.left - PAD.right);
	const y = (v: number) => HEIGHT - PAD.bottom - ((v - v0) / (v1 - v0)) * (HEIGHT - PAD.top - PAD.bottom);
	const unit = drawn[0]?.unit ?? "";
	const summary = drawn
		.map((s) => {
			const last = s.points.at(-1);
			return last ? `${s.name}: latest ${round(last.value)} ${s.unit} on ${formatDate(last.at)}` : "";
		})
		.filter(Boolean)
		.join("; ");
	const titleId = `${props.id}-title`;
	const descId = `${props.id}-desc`;
	return (
		<figure class="chart">
			<svg
				viewBox={`0 0 ${WIDTH} ${HEIGHT}`}
				role="img"
				aria-labelledby={`${titleId} ${descId}`}
				xmlns="http://www.w3.org/2000/svg"
			>
				<title id={titleId}>{props.title}</title>
				<desc id={descId}>
					{`${formatDate(new Date(t0).toISOString())} to ${formatDate(new Date(t1).toISOString())}. ${summary}.`}
				</desc>
				<line x1={PAD.left} y1={HEIGHT - PAD.bottom} x2={WIDTH - PAD.right} y2={HEIGHT - PAD.bottom} stroke="#6e7781" />
				<line x1={PAD.left} y1={PAD.top} x2={PAD.left} y2={HEIGHT - PAD.bottom} stroke="#6e7781" />
				<text x={PAD.left - 6} y={y(v1) + 10} text-anchor="end" font-size="11" fill="#4a5560">
					{round(v1)}
				</text>
				<text x={PAD.left - 6} y={y(v0)} text-anchor="end" font-size="11" fill="#4a5560">
					{round(v0)}
				</text>
				<text x={PAD.left} y={HEIGHT - 8} font-size="11" fill="#4a5560">
					{new Date(t0).getUTCFullYear()}
				</text>
				<text x={WIDTH - PAD.right} y={HEIGHT - 8} text-anchor="end" font-size="11" fill="#4a5560">
					{new Date(t1).getUTCFullYear()}
				</text>
				<text x={PAD.left + 4} y={PAD.top - 2} font-size="11" fill="#4a5560">
					{unit}
				</text>
				{drawn.map((s, i) => {
					const colour = COLOURS[i % COLOURS.length];
					const coordinates = s.points.map((p) => `${round(x(timeOf(p)))},${round(y(p.value))}`).join(" ");
					return (
						<g>
							<polyline points={coordinates} fill="none" stroke={colour} stroke-width="2" />
							{s.points.map((p) => (
								<circle cx={round(x(timeOf(p)))} cy={round(y(p.value))} r="2.5" fill={colour} />
							))}
						</g>
					);
				})}
			</svg>
			{drawn.length > 1 ? (
				<figcaption class="legend">
					{drawn.map((s, i) => (
						<span class={`key key-${i}`}>{s.name}</span>
					))}
				</figcaption>
			) : null}
		</figure>
	);
}
