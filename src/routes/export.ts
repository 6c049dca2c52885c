import type { Context } from "hono";
import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import { AppError } from "../errors";
import { EXPORT_CONTENT_TYPES, type ExportFormat, exportBody } from "../export/export-body";
import { type ExportClock, realClock } from "../export/pacing";
import { exportPlan } from "../export/searches";
import { type ExportPart, patientOf, sessionExport } from "../export/session-export";
import { connectionFhirBase } from "../fhir/read-servers";
import { log } from "../log";
import { requireConfig } from "../middleware/require-config";
import { type FhirReader, type Read, read, type SessionState } from "../pages/read-record";
import { currentName } from "../pages/record-data";
import type { ConnectionView } from "../session/contract";
import type { SessionHandle } from "../session/lookup";
import { type ConnectedSession, connectedSession, sessionReader, stateResponse } from "./pages";

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
	const read = sessionReader(c, session);
	return (target, signal) => {
		stats.reads++;
		return read(target, signal);
	};
}

/**
 * The export's one log line (it replaces the request line, which would be
 * written before the file is), once the export ends: finished, stopped,
 * failed, or abandoned by the client. Resource types and counts only.
 */
function logEnd(
	how: "complete" | "failed" | "cancelled",
	parts: ExportPart[],
	stats: ReadStats,
	line: { requestId: string; format: ExportFormat; started: number; fields: Record<string, unknown> },
): void {
	const { ownLine: _, ...noted } = line.fields;
	const resources: Record<string, number> = {};
	for (const part of parts) {
		for (const [type, n] of part.tally.counts) resources[type] = (resources[type] ?? 0) + n;
	}
	const stopped = parts.find((p) => p.tally.stopped)?.tally.stopped?.code;
	const ended = how === "complete" ? (stopped ?? "complete") : how;
	log(ended === "complete" ? "info" : "warn", "request", {
		...noted,
		requestId: line.requestId,
		method: "GET",
		route: EXPORT_PATH,
		status: 200,
		durationMs: Math.round(performance.now() - line.started),
		format: line.format,
		records: parts.length,
		revoked: parts.filter((p) => p.revoked).length,
		reads: stats.reads,
		resources,
		refused: [...new Set(parts.flatMap((p) => p.tally.refused))],
		ended,
	});
}

/**
 * One connection of the session as a part of the file: its reader, plan and
 * Patient (read here, before the file starts, so the first names the file
 * and a session that cannot read gets a page, not a broken file).
 */
async function exportPart(
	c: Context<AppEnv>,
	session: SessionHandle,
	view: ConnectionView,
	proxyBaseUrl: string,
	stats: ReadStats,
): Promise<{ part: ExportPart; state: SessionState | undefined }> {
	const reader = exportReader(c, { ...session, connectionId: view.id }, stats);
	const plan = exportPlan(view.patient, view.scopes);
	let revoked = view.status === "revoked";
	let patient: Read | undefined;
	if (!revoked && plan.readsPatient) {
		patient = await read(reader, { path: `/Patient/${encodeURIComponent(view.patient)}`, query: "" });
		if (!patient.ok && patient.state?.state === "revoked") revoked = true;
	}
	const patientResource = patient ? patientOf(patient, view.patient) : undefined;
	const name = currentName(patientResource?.name, new Date().toISOString().slice(0, 10));
	const where = view.practice ? `practice ${view.practice}` : view.server;
	const part: ExportPart = {
		label: `${name ?? `patient ${view.patient}`} at ${where}`,
		fhirBaseUrl: connectionFhirBase(c.get("config"), view.serverId),
		proxyBaseUrl,
		revoked,
		record: {
			read: reader,
			patient: view.patient,
			patientResource,
			plan,
			fhirBaseUrl: connectionFhirBase(c.get("config"), view.serverId),
			serverName: view.server,
		},
		tally: { counts: new Map(), refused: [], stopped: undefined },
	};
	const failed = patient && !patient.ok && !revoked ? patient : undefined;
	// athena busy or down for this record: the others may still be read, and the file says this one is missing.
	if (failed?.state?.state === "unavailable") part.unreadable = `${failed.message} Export again in a few minutes.`;
	const state = failed?.state;
	return { part, state };
}

/** The session's connections; a session from before connections were kept reads as its one grant. */
function connectionsOf(connected: ConnectedSession): ConnectionView[] {
	if (connected.connections.length > 0) return connected.connections;
	const { patient, practice, scopes } = connected;
	return [
		{
			id: "",
			status: "connected",
			patient,
			practice,
			server: "athenahealth",
			scopes: scopes ?? [],
			reads: [],
			fhirBase: "/fhir/r4",
		},
	];
}

/**
 * `GET /export[?format=ndjson]`: the signed-in patient's whole record, every
 * connected record of the session one after another, as one download
 * (src/export/), streamed as it is read. Without a session, or with every
 * record revoked, the browser gets the same page `/record` would show; once
 * the Patients are read, the file is under way and what goes wrong later is
 * written into it.
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
		const { publicOrigin } = c.get("config");
		const requestId = c.get("requestId");
		const stats: ReadStats = { reads: 0 };
		// The first record keeps the proxy's base, /fhir/r4; the others are at /fhir/{id}/r4.
		const results = await Promise.all(
			connectionsOf(connected).map((view, index) =>
				exportPart(c, connected.session, view, `${publicOrigin}${index === 0 ? "/fhir/r4" : view.fhirBase}`, stats),
			),
		);
		// The session gone, or no record readable now: the page /record would show, not a file of nothing.
		const signedOut = results.find((r) => r.state?.state === "signed_out")?.state;
		if (signedOut) return stateResponse(c, signedOut);
		const parts = results.map((r) => r.part);
		if (parts.every((p) => p.revoked)) return stateResponse(c, { state: "revoked" });
		const waiting = results.find((r) => r.state)?.state;
		if (waiting && parts.every((p) => p.revoked || p.unreadable)) return stateResponse(c, waiting);

		const now = clock.now();
		const date = new Date(now).toISOString().slice(0, 10);
		const fields = c.get("logFields");
		fields.ownLine = true;
		const line = { requestId, format, started, fields };
		const pages = sessionExport(parts, { clock, deadline: now + (options.timeLimitMs ?? EXPORT_TIME_LIMIT_MS) });
		const body = exportBody(pages, {
			onEnd: (how) => logEnd(how, parts, stats, line),
			format,
			timestamp: new Date(now).toISOString(),
			requestId,
		});
		const first = parts.find((p) => p.record.patientResource)?.record.patientResource;
		const fileName = exportFileName(currentName(first?.name, date), date, format);
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
