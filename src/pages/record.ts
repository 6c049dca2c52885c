import { html } from "hono/html";
import { lineChart, sparkline } from "./chart";
import { formatDate, isoDay } from "./format";
import { actions, type Html, page } from "./layout";
import type { RecordView, Section } from "./read-record";
import { LOINC_BLOOD_PRESSURE, LOINC_HEART_RATE, LOINC_WEIGHT, type ResultRow } from "./record-data";

/**
 * How many entries a section shows before "Show all": a real chart holds
 * dozens of each (athena's test patient: 47 lab tests, 12 visits), and no
 * section should run past about a screen, on a phone too. The rest open with
 * `<details>`, which needs no script.
 */
const SHOWN = { list: 8, results: 8, visits: 5, reports: 4 };
/** The vital signs charted, with their charts' titles. */
const CHARTED: Array<[string, string]> = [
	[LOINC_BLOOD_PRESSURE, "Blood pressure over time"],
	[LOINC_WEIGHT, "Weight over time"],
	[LOINC_HEART_RATE, "Heart rate over time"],
];

type Markup = Html | string;

function dateText(iso: string | undefined): Html {
	return iso ? html`<time datetime="${isoDay(iso)}">${formatDate(iso)}</time>` : html`<span>date not recorded</span>`;
}

/** " · text" in muted type, or nothing. */
function aside(text: Markup | undefined): Markup {
	return text ? html`<span class="muted"> · ${text}</span>` : "";
}

/** A type the patient did not share with this app has no card at all. */
function granted(section: Section<unknown>): boolean {
	return section.ok || !section.notGranted;
}

/** A card with a section's entries, or what to say when there are none or they could not be read. */
function card<T>(props: {
	id: string;
	title: string;
	section: Section<T>;
	empty: string;
	wide?: boolean;
	render: (items: T[]) => Markup;
	after?: Markup;
}): Markup {
	const { section } = props;
	if (!granted(section)) return "";
	const body = !section.ok
		? html`<p class="notice">${section.message} Try again later.</p>`
		: section.items.length === 0
			? html`<p class="muted">${props.empty}</p>`
			: html`${props.render(section.items)}${
					section.more ? html`<p class="hint">Only the first pages of this list were read from athenahealth.</p>` : ""
				}`;
	return html`<section class="${props.wide ? "card wide" : "card"}" aria-labelledby="${props.id}"><h2 id="${props.id}">${props.title}</h2>${body}${props.after}</section>`;
}

/** The first `shown` items, and the rest behind "Show all N". */
function capped<T>(items: T[], shown: number, noun: string, render: (items: T[]) => Markup): Markup {
	const rest = items.slice(shown);
	return html`${render(items.slice(0, shown))}${
		rest.length ? html`<details><summary>Show all ${items.length} ${noun}</summary>${render(rest)}</details>` : ""
	}`;
}

/** A section's entries as a list, the first `shown` of them before "Show all". */
function list<T>(noun: string, item: (item: T) => Markup, shown = SHOWN.list): (items: T[]) => Markup {
	return (items) =>
		capped(items, shown, noun, (part) => html`<ul class="items">${part.map((i) => html`<li>${item(i)}</li>`)}</ul>`);
}

/** "↑ from 5.9": the newest reading against the one before, when both are numbers. */
function change(row: ResultRow): string {
	const [before, last] = (row.series[0] ?? []).slice(-2);
	if (row.series.length > 1 || !before || !last || last.at !== row.at) return "";
	return `${last.value > before.value ? "↑" : last.value < before.value ? "↓" : "→"} from ${before.value}`;
}

/** One row per test: the newest value with its flag and date, the range, and a small trend. */
function results(caption: string): (rows: ResultRow[]) => Markup {
	return (rows) =>
		capped(
			rows,
			SHOWN.results,
			"tests",
			(part) =>
				html`<table class="results"><caption class="sr">${caption}</caption><thead><tr><th scope="col">Test</th><th scope="col">Latest</th><th scope="col">Trend</th></tr></thead><tbody>${part.map(
					(row) =>
						html`<tr><th scope="row">${row.name}${row.range ? html`<small>Range ${row.range}</small>` : ""}</th><td><b>${row.latest}</b>${
							row.flag ? html`<span class="tag flag">${row.flag}</span>` : ""
						}<small>${dateText(row.at)}</small></td><td>${sparkline(row.series[0] ?? [])}<small>${change(row)}</small></td></tr>`,
				)}</tbody></table>`,
		);
}

function vitals(rows: ResultRow[]): Markup {
	const charts = CHARTED.map(([key, title]) => {
		const row = rows.find((r) => r.key === key);
		const names = key === LOINC_BLOOD_PRESSURE ? ["Systolic", "Diastolic"] : [row?.name ?? ""];
		return row
			? html`<div><h3>${row.name} (${row.unit})</h3>${lineChart({ id: `chart-${key}`, title, unit: row.unit, names, lines: row.series })}</div>`
			: "";
	});
	return html`<div class="charts">${charts}</div>${results("Latest vital signs")(rows)}`;
}

/** "14 notes are not released to the portal": said once, however many there are. */
function withheld(count: number): Markup {
	if (!count) return "";
	return html`<p class="muted">${count === 1 ? "1 note is" : `${count} notes are`} not released to the portal by your practice.</p>`;
}

/** "Download my record": the whole record as one FHIR file (GET /export, src/routes/export.ts). */
function downloadAction(): Html {
	return html`<div class="download">${actions([{ label: "Download my record", href: "/export" }])}<p class="muted">Everything this app can read, as one FHIR file you can keep or give to another app or doctor.</p></div>`;
}

/** The connected view: who, which practice, and the record's sections. */
export function recordPage(record: RecordView): Html {
	const { documents } = record;
	const notes = documents.ok ? { ...documents, items: documents.items.filter((d) => d.released) } : documents;
	const held = documents.ok ? documents.items.length - (notes.ok ? notes.items.length : 0) : 0;
	const jumps: Array<[string, string, Section<unknown>]> = [
		["problems", "Problems", record.problems],
		["medications", "Medications", record.medications],
		["allergies", "Allergies", record.allergies],
		["labs", "Lab results", record.labs],
		["vitals", "Vitals", record.vitals],
		["visits", "Visits", record.encounters],
		["notes", "Notes", documents],
	];
	const practice = record.practiceId
		? html`<dt>Practice</dt><dd>${record.practiceName ? `${record.practiceName} (${record.practiceId})` : `Practice ${record.practiceId}`}</dd>`
		: "";
	return page({
		title: record.name,
		signedIn: true,
		children: html`<dl class="facts"><dt>Born</dt><dd>${dateText(record.birthDate)}</dd>${practice}<dt>Patient ID</dt><dd>${record.patientId}</dd></dl>
${downloadAction()}
<nav class="jump" aria-label="Sections">${jumps.map(([id, label, section]) => (granted(section) ? html`<a href="#${id}">${label}</a>` : ""))}</nav>
<div class="sections">${[
			card({
				id: "problems",
				title: "Active problems",
				section: record.problems,
				empty: "No active problems recorded.",
				render: list("problems", (p) => html`${p.name}${p.since ? aside(html`since ${dateText(p.since)}`) : ""}`),
			}),
			card({
				id: "medications",
				title: "Medications",
				section: record.medications,
				empty: "No current medications recorded.",
				render: list(
					"medications",
					(m) => html`${m.name}${m.instructions ? html`<div class="muted">${m.instructions}</div>` : ""}`,
				),
			}),
			card({
				id: "allergies",
				title: "Allergies",
				section: record.allergies,
				empty: "No allergies recorded.",
				render: list("allergies", (a) => html`${a.substance}${aside(a.reactions.join(", "))}`),
			}),
			card({
				id: "immunizations",
				title: "Immunizations",
				section: record.immunizations,
				empty: "No immunizations recorded.",
				render: list("immunizations", (i) => html`${i.vaccine}${aside(dateText(i.date))}`),
			}),
			card({
				id: "labs",
				title: "Lab results",
				section: record.labs,
				empty: "No lab results recorded.",
				wide: true,
				render: results("Lab results, newest first"),
			}),
			card({
				id: "vitals",
				title: "Vitals",
				section: record.vitals,
				empty: "No vital signs recorded.",
				wide: true,
				render: vitals,
			}),
			card({
				id: "visits",
				title: "Visits",
				section: record.encounters,
				empty: "No visits recorded.",
				render: list(
					"visits",
					(e) =>
						html`${dateText(e.date)} · ${e.type}${aside(e.practitioner)}${
							e.diagnoses.length ? html`<div class="muted">${e.diagnoses.join("; ")}</div>` : ""
						}`,
					SHOWN.visits,
				),
			}),
			card({
				id: "notes",
				title: "Visit notes",
				section: notes,
				empty: held ? "No notes are released to the portal yet." : "No notes shared.",
				render: list(
					"notes",
					(d) => html`<a href="/record/documents/${encodeURIComponent(d.id)}">${d.title}</a>${aside(dateText(d.date))}`,
				),
				after: withheld(held),
			}),
			card({
				id: "reports",
				title: "Imaging and other reports",
				section: record.reports,
				empty: "No imaging or other reports recorded.",
				wide: true,
				render: list(
					"reports",
					(r) =>
						html`<details><summary>${r.name}${aside(r.category)}${aside(dateText(r.date))}</summary><p class="report">${
							r.text ?? "No text was sent with this report."
						}</p></details>`,
					SHOWN.reports,
				),
			}),
		]}</div>`,
	});
}
