import { LineChart } from "./chart";
import { formatDate, isoDay } from "./format";
import { page } from "./layout";
import type { RecordView, Section } from "./read-record";
import { LOINC_DIASTOLIC, LOINC_SYSTOLIC, type Series } from "./record-data";

/** Values shown in a series' table; the chart shows all of them. */
const TABLE_ROWS = 8;

function DateText(props: { iso: string | undefined }) {
	return props.iso ? <time datetime={isoDay(props.iso)}>{formatDate(props.iso)}</time> : <span>date not recorded</span>;
}

/** A section's entries, or what to say when there are none or they could not be read. */
function SectionBody<T>(props: { section: Section<T>; empty: string; render: (items: T[]) => unknown }) {
	if (!props.section.ok) return <p class="notice">{props.section.message} Try again later.</p>;
	if (props.section.items.length === 0) return <p class="muted">{props.empty}</p>;
	return (
		<>
			{props.render(props.section.items)}
			{props.section.more ? <p class="hint">Only the first pages of this list are shown.</p> : null}
		</>
	);
}

function Card(props: { id: string; title: string; wide?: boolean; children?: unknown }) {
	return (
		<section class={props.wide ? "card wide" : "card"} aria-labelledby={props.id}>
			<h2 id={props.id}>{props.title}</h2>
			{props.children}
		</section>
	);
}

function round(value: number): number {
	return Math.round(value * 10) / 10;
}

/** The newest values of a series as a table: the chart's text equivalent. */
function ValuesTable(props: { caption: string; series: Series[] }) {
	const first = props.series[0];
	if (!first) return null;
	const dates = [...new Set(props.series.flatMap((s) => s.points.map((p) => p.at)))].sort().reverse();
	const shown = dates.slice(0, TABLE_ROWS);
	return (
		<div class="scroll">
			<table>
				<caption>{props.caption}</caption>
				<thead>
					<tr>
						<th scope="col">Date</th>
						{props.series.map((s) => (
							<th scope="col" class="num">{`${s.name} (${s.unit})`}</th>
						))}
					</tr>
				</thead>
				<tbody>
					{shown.map((at) => (
						<tr>
							<td>
								<DateText iso={at} />
							</td>
							{props.series.map((s) => {
								const point = s.points.find((p) => p.at === at);
								return <td class="num">{point ? round(point.value) : "–"}</td>;
							})}
						</tr>
					))}
				</tbody>
			</table>
			{dates.length > TABLE_ROWS ? (
				<p class="hint">
					The {TABLE_ROWS} most recent of {dates.length} measurements; the chart shows them all.
				</p>
			) : null}
		</div>
	);
}

/** One chart and table per measurement; systolic and diastolic blood pressure share one. */
function Measurements(props: { idPrefix: string; series: Series[] }) {
	const systolic = props.series.find((s) => s.key === LOINC_SYSTOLIC);
	const diastolic = props.series.find((s) => s.key === LOINC_DIASTOLIC);
	const groups: Array<{ title: string; series: Series[] }> = [];
	if (systolic || diastolic) {
		groups.push({ title: "Blood pressure", series: [systolic, diastolic].filter((s): s is Series => s !== undefined) });
	}
	for (const s of props.series) if (s !== systolic && s !== diastolic) groups.push({ title: s.name, series: [s] });
	return (
		<>
			{groups.map((group, index) => (
				<div class="measurement">
					<h3>{group.title}</h3>
					<LineChart id={`${props.idPrefix}-${index}`} title={`${group.title} over time`} series={group.series} />
					<ValuesTable caption={`${group.title}: recent values`} series={group.series} />
				</div>
			))}
		</>
	);
}

/** The connected view: who, which practice, and the record's sections. */
export function recordPage(record: RecordView) {
	return page({
		title: record.name,
		signedIn: true,
		children: (
			<>
				<dl class="facts">
					<dt>Born</dt>
					<dd>
						<DateText iso={record.birthDate} />
					</dd>
					<dt>Practice</dt>
					<dd>
						{record.practiceName ? `${record.practiceName} (${record.practiceId})` : `Practice ${record.practiceId}`}
					</dd>
					<dt>Patient ID</dt>
					<dd>{record.patientId}</dd>
				</dl>
				<div class="sections">
					<Card id="allergies" title="Allergies">
						<SectionBody
							section={record.allergies}
							empty="No allergies recorded."
							render={(items) => (
								<ul class="items">
									{items.map((a) => (
										<li>
											{a.substance}
											{a.reactions.length ? <span class="muted">{` · ${a.reactions.join(", ")}`}</span> : null}
										</li>
									))}
								</ul>
							)}
						/>
					</Card>
					<Card id="conditions" title="Active conditions">
						<SectionBody
							section={record.conditions}
							empty="No active conditions recorded."
							render={(items) => (
								<ul class="items">
									{items.map((condition) => (
										<li>
											{condition.name}
											{condition.onset ? (
												<span class="muted">
													{" · since "}
													<DateText iso={condition.onset} />
												</span>
											) : null}
										</li>
									))}
								</ul>
							)}
						/>
					</Card>
					<Card id="medications" title="Medications">
						<SectionBody
							section={record.medications}
							empty="No current medications recorded."
							render={(items) => (
								<ul class="items">
									{items.map((m) => (
										<li>
											{m.name}
											{m.instructions ? <div class="muted">{m.instructions}</div> : null}
										</li>
									))}
								</ul>
							)}
						/>
					</Card>
					<Card id="immunizations" title="Immunizations">
						<SectionBody
							section={record.immunizations}
							empty="No immunizations recorded."
							render={(items) => (
								<ul class="items">
									{items.map((i) => (
										<li>
											{i.vaccine}
											<span class="muted">
												{" · "}
												<DateText iso={i.date} />
											</span>
										</li>
									))}
								</ul>
							)}
						/>
					</Card>
					<Card id="encounters" title="Recent visits">
						<SectionBody
							section={record.encounters}
							empty="No visits recorded."
							render={(items) => (
								<ul class="items">
									{items.map((e) => (
										<li>
											<DateText iso={e.date} />
											{` · ${e.type}`}
											{e.practitioner ? <span class="muted">{` · ${e.practitioner}`}</span> : null}
										</li>
									))}
								</ul>
							)}
						/>
					</Card>
					<Card id="documents" title="Documents">
						<SectionBody
							section={record.documents}
							empty="No documents shared."
							render={(items) => (
								<ul class="items">
									{items.map((d) => (
										<li>
											{d.title}
											<span class="muted">
												{" · "}
												<DateText iso={d.date} />
											</span>
											{d.released ? null : <span class="tag">not released to the portal</span>}
										</li>
									))}
								</ul>
							)}
						/>
					</Card>
					<Card id="vitals" title="Vitals" wide>
						<SectionBody
							section={record.vitals}
							empty="No vital signs recorded."
							render={(items) => <Measurements idPrefix="vital" series={items} />}
						/>
					</Card>
					<Card id="labs" title="Lab results" wide>
						<SectionBody
							section={record.labs}
							empty="No lab results recorded."
							render={(items) => <Measurements idPrefix="lab" series={items} />}
						/>
					</Card>
				</div>
			</>
		),
	});
}
