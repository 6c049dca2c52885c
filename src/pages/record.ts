import { html, raw } from "hono/html";
import { lineChart, sparkline } from "./chart";
import { formatDate, isoDay } from "./format";
import { actions, type Html, type ListedServer, page } from "./layout";
import type { ConnectionPart, Person } from "./people";
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
	/** h2 on a record's own page; h4 inside a person's and a connection's headings. */
	heading?: "h2" | "h4";
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
	const level = raw(props.heading ?? "h2");
	return html`<section class="${props.wide ? "card wide" : "card"}" aria-labelledby="${props.id}"><${level} id="${props.id}">${props.title}</${level}>${body}${props.after}</section>`;
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

/** The vital-sign charts and table; `idPrefix` keeps the charts' ids unique on a page of several records. */
const vitals =
	(idPrefix: string) =>
	(rows: ResultRow[]): Markup => {
		const charts = CHARTED.map(([key, title]) => {
			const row = rows.find((r) => r.key === key);
			const names = key === LOINC_BLOOD_PRESSURE ? ["Systolic", "Diastolic"] : [row?.name ?? ""];
			return row
				? html`<div><h3>${row.name} (${row.unit})</h3>${lineChart({ id: `${idPrefix}chart-${key}`, title, unit: row.unit, names, lines: row.series })}</div>`
				: "";
		});
		return html`<div class="charts">${charts}</div>${results("Latest vital signs")(rows)}`;
	};

/** "14 notes are not released to the portal": said once, however many there are. */
function withheld(count: number): Markup {
	if (!count) return "";
	return html`<p class="muted">${count === 1 ? "1 note is" : `${count} notes are`} not released to the portal by your practice.</p>`;
}

/** "Download my record": the whole record as one FHIR file (GET /export, src/routes/export.ts). */
function downloadAction(): Html {
	return html`<div class="download">${actions([{ label: "Download my record", href: "/export" }])}<p class="muted">Everything this app can read, as one FHIR file you can keep or give to another app or doctor.</p></div>`;
}

/** Where a record is shown: alone on its page, or as one connection's part of a page with several. */
interface Placement {
	/** Prefixed to its sections' ids, so they stay unique on the page. */
	idPrefix: string;
	heading: "h2" | "h4";
	/** Which connection its note links read through (`?connection=`); none: the session's first. */
	connectionId: string | undefined;
}

const ALONE: Placement = { idPrefix: "", heading: "h2", connectionId: undefined };

/** One record's facts (born, practice, patient id), `top` after them, its section links and its sections. */
function recordContent(record: RecordView, placement: Placement, top: Markup = ""): Markup {
	const at = (id: string) => `${placement.idPrefix}${id}`;
	const heading = placement.heading;
	const noteQuery = placement.connectionId ? `?connection=${placement.connectionId}` : "";
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
	return html`<dl class="facts"><dt>Born</dt><dd>${dateText(record.birthDate)}</dd>${practice}<dt>Patient ID</dt><dd>${record.patientId}</dd></dl>
${top}
<nav class="jump" aria-label="Sections">${jumps.map(([id, label, section]) => (granted(section) ? html`<a href="#${at(id)}">${label}</a>` : ""))}</nav>
<div class="sections">${[
		card({
			id: at("problems"),
			heading,
			title: "Active problems",
			section: record.problems,
			empty: "No active problems recorded.",
			render: list("problems", (p) => html`${p.name}${p.since ? aside(html`since ${dateText(p.since)}`) : ""}`),
		}),
		card({
			id: at("medications"),
			heading,
			title: "Medications",
			section: record.medications,
			empty: "No current medications recorded.",
			render: list(
				"medications",
				(m) => html`${m.name}${m.instructions ? html`<div class="muted">${m.instructions}</div>` : ""}`,
			),
		}),
		card({
			id: at("allergies"),
			heading,
			title: "Allergies",
			section: record.allergies,
			empty: "No allergies recorded.",
			render: list("allergies", (a) => html`${a.substance}${aside(a.reactions.join(", "))}`),
		}),
		card({
			id: at("immunizations"),
			heading,
			title: "Immunizations",
			section: record.immunizations,
			empty: "No immunizations recorded.",
			render: list("immunizations", (i) => html`${i.vaccine}${aside(dateText(i.date))}`),
		}),
		card({
			id: at("labs"),
			heading,
			title: "Lab results",
			section: record.labs,
			empty: "No lab results recorded.",
			wide: true,
			render: results("Lab results, newest first"),
		}),
		card({
			id: at("vitals"),
			heading,
			title: "Vitals",
			section: record.vitals,
			empty: "No vital signs recorded.",
			wide: true,
			render: vitals(placement.idPrefix),
		}),
		card({
			id: at("visits"),
			heading,
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
			id: at("notes"),
			heading,
			title: "Visit notes",
			section: notes,
			empty: held ? "No notes are released to the portal yet." : "No notes shared.",
			render: list(
				"notes",
				(d) =>
					html`<a href="/record/documents/${encodeURIComponent(d.id)}${noteQuery}">${d.title}</a>${aside(dateText(d.date))}`,
			),
			after: withheld(held),
		}),
		card({
			id: at("reports"),
			heading,
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
	]}</div>`;
}

/** A launch that adds the record the patient picks at athena (or at a listed server) to this session (`/launch?connect=1`). */
function connectRecordForm(label: string, server?: ListedServer): Html {
	return html`<form method="get" action="/launch" class="connect"><input type="hidden" name="connect" value="1"/>${
		server ? html`<input type="hidden" name="server" value="${server.id}"/>` : ""
	}<input type="hidden" name="return_to" value="/record"/><div class="actions"><button class="secondary" type="submit">${label}</button></div></form>`;
}

/** "Connect another record": the patient's record at another practice, or a dependent's; or a record at a listed server. */
function connectAnother(servers: readonly ListedServer[]): Html {
	return html`<section class="connect-another" aria-labelledby="connect-another"><h2 id="connect-another">Another record</h2><p class="muted">Add your record at another practice, or the record of someone you look after: athenahealth asks which one.</p>${connectRecordForm("Connect another record")}${servers.map((server) => connectRecordForm(`Connect a record at ${server.name}`, server))}</section>`;
}

/** The connected view of a session with one record: who, which practice, and the record's sections. */
export function recordPage(record: RecordView, servers: readonly ListedServer[] = []): Html {
	return page({
		title: record.name,
		signedIn: true,
		children: html`${recordContent(record, ALONE, downloadAction())}${connectAnother(servers)}`,
	});
}

/** A connection's label: its practice's name (and id), else the practice id, else its server. */
function partLabel(part: ConnectionPart): string {
	const name = part.outcome.state === "record" ? part.outcome.record.practiceName : undefined;
	if (part.practice) return name ? `${name} (${part.practice})` : `Practice ${part.practice}`;
	return part.server;
}

/** One connection inside a person's section: its record, or why it cannot be shown now. */
function connectionSection(part: ConnectionPart): Markup {
	const id = `connection-${part.connectionId}`;
	const { outcome } = part;
	const content =
		outcome.state === "record"
			? recordContent(outcome.record, { idPrefix: `${id}-`, heading: "h4", connectionId: part.connectionId })
			: outcome.state === "revoked"
				? html`<p class="notice">Access to this record was revoked by you or the practice, so this app can no longer read it. Connect it again to see it here.</p>${connectRecordForm("Connect this record again", part.serverId ? { id: part.serverId, name: part.server } : undefined)}`
				: html`<p class="notice" role="status">${part.server} could not provide this record right now. You are still connected; try again in a moment.</p>`;
	return html`<section class="connection" aria-labelledby="${id}"><h3 id="${id}">${partLabel(part)}</h3>${content}</section>`;
}

/**
 * The connected view of a session with several records: one section per
 * person, each of their records labelled with its practice (or server).
 */
export function peoplePage(people: Person[], servers: readonly ListedServer[] = []): Html {
	const personId = (index: number) => `person-${index + 1}`;
	return page({
		title: "Your records",
		signedIn: true,
		children: html`${downloadAction()}
<nav class="jump" aria-label="People">${people.map((person, i) => html`<a href="#${personId(i)}">${person.name}</a>`)}</nav>
${people.map(
	(person, i) =>
		html`<section class="person" aria-labelledby="${personId(i)}"><h2 id="${personId(i)}">${person.name}</h2>${person.parts.map(connectionSection)}</section>`,
)}${connectAnother(servers)}`,
	});
}
