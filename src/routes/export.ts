import type { Context } from "hono";
import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import { ehrProfile } from "../ehr-profile";
import { AppError } from "../errors";
import { EXPORT_CONTENT_TYPES, type ExportFormat, exportBody } from "../export/export-body";
import { type ExportClock, realClock } from "../export/pacing";
import { type ExportTally, type Json, recordExport } from "../export/record-export";
import { exportPlan } from "../export/searches";
import { FHIR_JSON } from "../fhir/headers";
import { isolateTokenCache } from "../fhir/token-cache";
import { upstreamReader } from "../fhir/upstream-read";
import { log } from "../log";
import { requireConfig } from "../middleware/require-config";
import { type FhirReader, read } from "../pages/read-record";
import { currentName } from "../pages/record-data";
import type { SessionHandle } from "../session/lookup";
import { connectedSession, stateResponse } from "./pages";

/** Where the record is downloaded. */
export const EXPORT_PATH = "/export";
/** How long an export may take in all, waits for athena's rate limits included. */
const EXPORT_TIME_LIMIT_MS = 15 * 60_000;
const FILE_EXTENSIONS: Record<ExportFormat, string> = { bundle: "fhir.json", ndjson: "ndjson" };

export interface ExportRouteOptions {
	/** The export's clock (its waits and deadline), for tests. */
	clock?: ExportClock;
	timeLimitMs?: number;
}

function formatOf(value: string | undefined): ExportFormat {
	if (value === undefined || value === "json" || value === "bundle") return "bundle";
	if (value === "ndjson") return "ndjson";
	throw new AppError({
		code: "export_format_unknown",
		status: 400,
		message: "The export comes as format=json (a FHIR Bundle, the default) or format=ndjson.",
	});
}

/** "jake-medlock-2026-12-03.fhir.json": ASCII letters and digits only, whatever the name holds. */
export function exportFileName(name: string | undefined, date: string, format: ExportFormat): string {
	const slug = (name ?? "")
		.normalize("NFKD")
		// Accents come apart from their letters under NFKD: drop the marks, keep the letters.
		.replace(/[\u0300-\u036f]/g, "")
		.replace(/[^A-Za-z0-9]+/g, "-")
		.replace(/^-+|-+$/g, "")
		.toLowerCase()
		.slice(0, 60)
		.replace(/-+$/, "");
	return `${slug || "health-record"}-${date}.${FILE_EXTENSIONS[format]}`;
}

/** How many requests the export made of athena, for its log line. */
interface ReadStats {
	reads: number;
}

/**
 * The export's reads: the FHIR proxy's own upstream reader (same token cache,
 * single-flight refresh, timeout and outbound rules). Each body goes to the
 * export as athena sent it, parsed natively; a JS stream per page would cost
 * the export a third of its speed. Counted for the export's one log line
 * rather than logged per read: an export is one request.
 */
function exportReader(c: Context<AppEnv>, session: SessionHandle, stats: ReadStats): FhirReader {
	const config = c.get("config");
	const read = upstreamReader({
		session,
		fhirBaseUrl: config.athena.fhirBaseUrl,
		completeSearches: ehrProfile(config.profile).completesSearches,
		tokenCache: isolateTokenCache,
		fetch: (input, init) => fetch(input, init),
		timeoutMs: config.fhirTimeoutMs,
		requestId: c.get("requestId"),
	});
	return (target) => {
		stats.reads++;
		return read({ ...target, method: "GET", headers: new Headers({ Accept: FHIR_JSON }) });
	};
}

/**
 * The export's one log line (it replaces the request line, which would be
 * written before the file is), once the export ends: finished, stopped,
 * failed, or abandoned by the client. Resource types and counts only.
 */
function logEnd(
	how: "complete" | "failed" | "cancelled",
	tally: ExportTally,
	stats: ReadStats,
	line: { requestId: string; format: ExportFormat; started: number; fields: Record<string, unknown> },
): void {
	const { ownLine: _, ...noted } = line.fields;
	const ended = how === "complete" ? (tally.stopped?.code ?? "complete") : how;
	log(ended === "complete" ? "info" : "warn", "request", {
		...noted,
		requestId: line.requestId,
		method: "GET",
		route: EXPORT_PATH,
		status: 200,
		durationMs: Math.round(performance.now() - line.started),
		format: line.format,
		reads: stats.reads,
		resources: Object.fromEntries(tally.counts),
		refused: tally.refused,
		ended,
	});
}

/**
 * `GET /export[?format=ndjson]`: the signed-in patient's whole record as one
 * download (src/export/record-export.ts), streamed as it is read. Without a
 * session, or with a revoked one, the browser gets the same page `/record`
 * would show; once the Patient is read, the file is under way and what goes
 * wrong later is written into it.
 *
 * @example
 * app.route("/", exportRoutes());
 */
export function exportRoutes(options: ExportRouteOptions = {}): Hono<AppEnv> {
	const clock = options.clock ?? realClock;
	return new Hono<AppEnv>().get(EXPORT_PATH, requireConfig(), async (c) => {
		const started = performance.now();
		const format = formatOf(c.req.query("format"));
		const connected = await connectedSession(c);
		if (connected instanceof Response) return connected;
		const config = c.get("config");
		const requestId = c.get("requestId");
		const stats: ReadStats = { reads: 0 };
		const reader = exportReader(c, connected.session, stats);
		const plan = exportPlan(connected.patient, connected.scopes);

		// The Patient first: it names the file, and a session that cannot read gets a page, not a broken file.
		let patientResource: Json | undefined;
		if (plan.readsPatient) {
			const patient = await read(reader, { path: `/Patient/${encodeURIComponent(connected.patient)}`, query: "" });
			if (!patient.ok && patient.state) return stateResponse(c, patient.state);
			const body = patient.ok ? (patient.body as Json) : undefined;
			if (body?.resourceType === "Patient" && body.id === connected.patient) patientResource = body;
		}
		const now = clock.now();
		const date = new Date(now).toISOString().slice(0, 10);
		const tally: ExportTally = { counts: new Map(), refused: [], stopped: undefined };
		const pages = recordExport(
			{
				read: reader,
				patient: connected.patient,
				patientResource,
				plan,
				fhirBaseUrl: config.athena.fhirBaseUrl,
				clock,
				deadline: now + (options.timeLimitMs ?? EXPORT_TIME_LIMIT_MS),
			},
			tally,
		);
		const fields = c.get("logFields");
		fields.ownLine = true;
		const line = { requestId, format, started, fields };
		const body = exportBody(pages, {
			onEnd: (how) => logEnd(how, tally, stats, line),
			format,
			fhirBaseUrl: config.athena.fhirBaseUrl,
			proxyBaseUrl: `${config.publicOrigin}/fhir/r4`,
			timestamp: new Date(now).toISOString(),
			requestId,
		});
		const fileName = exportFileName(currentName(patientResource?.name, date), date, format);
		return new Response(body, {
			headers: {
				"Content-Type": EXPORT_CONTENT_TYPES[format],
				"Content-Disposition": `attachment; filename="${fileName}"`,
				"Cache-Control": "private, no-store",
				"X-Content-Type-Options": "nosniff",
				"X-Request-Id": requestId,
			},
		});
	});
}
