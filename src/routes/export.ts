import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import { AppError } from "../errors";
import { EXPORT_CONTENT_TYPES, type ExportFormat, exportBody } from "../export/export-body";
import { type ExportClock, realClock } from "../export/pacing";
import { type ExportTally, type Json, recordExport } from "../export/record-export";
import { exportPlan } from "../export/searches";
import { log } from "../log";
import { requireConfig } from "../middleware/require-config";
import { read } from "../pages/read-record";
import { currentName } from "../pages/record-data";
import { sessionTag } from "../session/contract";
import { connectedSession, recordReader, stateResponse } from "./pages";

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

/** Logs the export's outcome once it ends: finished, stopped, or abandoned by the client. */
async function* logged(pages: AsyncGenerator<Json[]>, tally: ExportTally, fields: Record<string, unknown>) {
	let finished = false;
	try {
		yield* pages;
		finished = true;
	} finally {
		const resources = [...tally.counts.values()].reduce((a, b) => a + b, 0);
		const ended = tally.stopped?.code ?? (finished ? "complete" : "cancelled");
		log("info", "record export ended", { ...fields, resources, refused: tally.refused.length, ended });
	}
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
		const format = formatOf(c.req.query("format"));
		const connected = await connectedSession(c);
		if (connected instanceof Response) return connected;
		const config = c.get("config");
		const requestId = c.get("requestId");
		const reader = recordReader(c, connected.session, EXPORT_PATH);
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
		const fields = { requestId, session: sessionTag(connected.session.idHash), format };
		const body = exportBody(logged(pages, tally, fields), {
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
