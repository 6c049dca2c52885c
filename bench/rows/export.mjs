// Rows 9–10: "Download my record" (GET /export) of the sandbox's large
// record (sandbox/src/users.ts LARGE_RECORD: over 110,000 resources, read
// through the sandbox's ordinary searches and cursor paging), against a
// client reading the same searches straight from the sandbox, and the
// worker's memory while it exports.

import { AVERY, LARGE_RECORD_RESOURCES } from "../../sandbox/src/users.ts";
import { cookieHeader, keepAliveAgent, send } from "../lib/http.mjs";
import { fmt, spread, summary } from "../lib/stats.mjs";
import { idleRss, sampleWhile } from "./proxy.mjs";
import { WORKER_SCOPES } from "./stack.mjs";

const REPS = 5;
/** The export's page size (src/export/searches.ts EXPORT_PAGE_SIZE; the worker's sources are not loadable from Node). */
const EXPORT_PAGE_SIZE = 100;
const MB = 1e6;
/** As the export asks (src/export/searches.ts): athena refuses MedicationRequest without intent. */
const ALL_INTENTS = "proposal,plan,order,original-order,reflex-order,filler-order,instance-order,option";
/** As the export reads: three searches at once. */
const CONCURRENCY = 3;

/** The types the worker's scopes let it search, in the export's order (src/export/searches.ts: alphabetical). */
function searchedTypes() {
	return [...WORKER_SCOPES.matchAll(/patient\/([A-Z][A-Za-z]+)\.read/g)]
		.map((m) => m[1])
		.filter((t) => !["Patient", "Binary", "Medication", "Organization", "Practitioner"].includes(t))
		.sort();
}

/**
 * The same searches a client reading athena directly would make: every page
 * of each, following `next`, three searches at a time. Returns bytes, the
 * number of resources and pages.
 */
async function readDirectly(stack, token) {
	// A fresh pool per pass: workerd closes keep-alive connections left idle during the other side's pass.
	const agent = keepAliveAgent(CONCURRENCY);
	const headers = { Authorization: `Bearer ${token}`, Accept: "application/fhir+json" };
	const totals = { bytes: 0, resources: 0, pages: 0 };
	const queue = searchedTypes();
	async function walk(type) {
		const intent = type === "MedicationRequest" ? `&intent=${ALL_INTENTS}` : "";
		let url = `${stack.S}/fhir/r4/${type}?patient=${AVERY.id}${intent}&_count=${EXPORT_PAGE_SIZE}`;
		while (url) {
			const page = await send(url, { headers, agent });
			if (page.status !== 200) throw new Error(`direct ${type}: status ${page.status}`);
			const bundle = JSON.parse(page.body);
			totals.bytes += page.bytes;
			totals.pages += 1;
			totals.resources += bundle.entry?.length ?? 0;
			url = bundle.link?.find((l) => l.relation === "next")?.url;
		}
	}
	async function lane() {
		for (let type = queue.shift(); type; type = queue.shift()) await walk(type);
	}
	await Promise.all(Array.from({ length: CONCURRENCY }, lane));
	agent.destroy();
	return totals;
}

async function exportThroughWorker(stack, jar, keepBody = false) {
	const agent = keepAliveAgent(1);
	const response = await send(`${stack.W}/export`, {
		headers: { Cookie: cookieHeader(jar) },
		agent,
		keepBody,
		timeoutMs: 900_000,
	});
	agent.destroy();
	return response;
}

/** The warm-up export, kept and checked: every resource of the large record, and a complete last entry. */
function checkExport(response) {
	if (response.status !== 200) throw new Error(`export: status ${response.status}`);
	const bundle = JSON.parse(response.body);
	const resources = bundle.entry.filter((e) => e.resource.resourceType !== "OperationOutcome").length;
	const last = bundle.entry.at(-1)?.resource?.issue?.[0];
	if (last?.severity !== "information") throw new Error(`export ended early: ${last?.details?.text}`);
	return resources;
}

export async function rowExport({ stack, log }) {
	const jar = await stack.sessionOf(AVERY);
	const token = await stack.directTokenOf(AVERY);
	log(`9–10. warm-up, then ${REPS} × (direct searches, export via the worker) of the large record`);
	const direct0 = await readDirectly(stack, token);
	const exported = checkExport(await exportThroughWorker(stack, jar, true));
	const inScope = direct0.resources + 1;
	if (exported !== inScope) throw new Error(`export held ${exported} resources; the searches return ${inScope}`);

	const rows = { direct: [], ours: [], directMs: [], oursMs: [], deltas: [], idles: [], bytes: [] };
	for (let i = 0; i < REPS; i++) {
		const started = performance.now();
		const direct = await readDirectly(stack, token);
		const directMs = performance.now() - started;
		const idle = await idleRss(stack.workerPid);
		const { peak, result } = await sampleWhile(stack.workerPid, exportThroughWorker(stack, jar));
		if (result.status !== 200) throw new Error(`export: status ${result.status}`);
		rows.direct.push(direct.bytes / MB / (directMs / 1000));
		rows.ours.push(result.bytes / MB / (result.total / 1000));
		rows.directMs.push(directMs);
		rows.oursMs.push(result.total);
		rows.bytes.push(result.bytes);
		rows.idles.push(idle);
		rows.deltas.push(peak - idle);
	}
	const ratio = summary(rows.ours.map((v, i) => v / rows.direct[i]));
	const timeRatio = summary(rows.directMs.map((v, i) => v / rows.oursMs[i]));
	const mib = (v) => v / 1024 ** 2;
	const delta = summary(rows.deltas.map(mib));
	return [
		{
			n: 9,
			what: `Export: GET /export of the large record (${fmt(exported, 0)} resources in scope, ${fmt(rows.bytes[0] / MB, 0)} MB file)`,
			ours: `${spread(summary(rows.ours), " MB/s", 0)}; ${spread(summary(rows.oursMs.map((v) => v / 1000)), " s", 1)}`,
			reference: `${spread(summary(rows.direct), " MB/s", 0)}; ${spread(summary(rows.directMs.map((v) => v / 1000)), " s", 1)}, the same searches straight from the sandbox (${fmt(direct0.pages, 0)} pages, ${fmt(direct0.bytes / MB, 0)} MB)`,
			ratio: spread(ratio),
			goal: "≥ 0.8",
			pass: ratio.median >= 0.8,
			ratioValue: ratio.median,
			note: `MB = 10^6 bytes of each side's own bodies (the export file; the searchset pages), whole request to last byte, ${REPS} repetitions after one warm-up of each, alternating. The direct client reads what the worker's scopes (wrangler.toml SCOPES) let the export search — ${searchedTypes().join(", ")} — ${EXPORT_PAGE_SIZE} a page, following next links, three searches at a time, as the export does, parsing each page for its next link. Time ratio (direct time / export time, the same resources): ${spread(timeRatio)}. The warm-up export was parsed and held exactly the ${fmt(inScope, 0)} resources the searches returned (the Patient included; LARGE_RECORD_RESOURCES, every type: ${fmt(LARGE_RECORD_RESOURCES, 0)}).`,
		},
		{
			n: 10,
			what: "Memory: workerd peak RSS during the export, minus idle",
			ours: `${spread(delta, " MiB", 1)}`,
			reference: `idle ${spread(summary(rows.idles.map(mib)), " MiB", 0)}`,
			ratio: `${fmt(delta.median / (rows.bytes[0] / 1024 ** 2), 3)} of the file`,
			goal: "< 32 MiB",
			pass: delta.median < 32,
			note: "VmRSS of the worker's own workerd process from /proc every 50 ms during each export of row 9; idle = median of 10 samples just before it. What the export keeps is the set of ids written (one string per resource).",
		},
	];
}
