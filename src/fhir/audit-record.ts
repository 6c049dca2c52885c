import { type LogFields, log } from "../log";
import type { UpstreamRead } from "./upstream-read";

/** How a FHIR read's body ended: read to the end, cut by athena, dropped by the client, or there was none. */
export type AuditOutcome = "complete" | "aborted" | "cancelled" | "no-body";

export interface AuditStart {
	requestId: string;
	method: string;
	/** The route pattern that made the read (`/fhir/r4/*`, or a page such as `/record`): never the raw URL. */
	route: string;
	/**
	 * The request's own log fields (hashed session id, what middleware noted).
	 * The FHIR routes write this record instead of the generic request line, so
	 * whatever is in here when the record is written goes into it.
	 */
	fields?: LogFields;
}

/**
 * The one log record of a FHIR read: identifiers and measurements only, never
 * a query value or PHI. Fill in what becomes known as the read goes on, then
 * `write` once, when the body ends (or at once when there is none); later
 * calls are ignored, so a body that ends and is then cancelled logs once.
 *
 * @example
 * const audit = new FhirAudit({ requestId: "req-1", method: "GET", route: "/fhir/r4/*", fields: c.get("logFields") });
 * audit.resourceType = "Patient";
 * audit.status = 200;
 * audit.write(1_234, "complete");
 */
export class FhirAudit {
	session: string | undefined;
	resourceType: string | undefined;
	interaction: string | undefined;
	/** What the client got; undefined for a read the worker consumes itself (the record page's). */
	status: number | undefined;
	/** What athena answered, when it answered. */
	upstreamStatus: number | undefined;
	/** Why there is no upstream status: athena was too slow, or could not be reached. */
	upstream: "timeout" | "unreachable" | undefined;
	/** The error code of a failure the app's error handler answers. */
	error: string | undefined;
	readonly #start: AuditStart;
	readonly #started: number;
	#written = false;

	constructor(start: AuditStart) {
		this.#start = start;
		this.#started = performance.now();
	}

	/** What the upstream reader found: the read's type and interaction, and athena's status or silence. */
	noteRead(result: UpstreamRead): void {
		this.resourceType = result.outbound?.resourceType;
		this.interaction = result.outbound?.interaction;
		if (result.kind === "response") this.upstreamStatus = result.response.status;
		else if (result.state.status === "timeout" || result.state.status === "unreachable") {
			this.upstream = result.state.status;
		}
	}

	/** `bytes` is undefined where it is not known (a native pass-through without Content-Length). */
	write(bytes: number | undefined, outcome: AuditOutcome): void {
		if (this.#written) return;
		this.#written = true;
		const { ownLine: _, ...noted } = this.#start.fields ?? {};
		log(outcome === "aborted" ? "warn" : "info", "fhir", {
			...noted,
			requestId: this.#start.requestId,
			method: this.#start.method,
			route: this.#start.route,
			session: this.session ?? noted.session,
			resourceType: this.resourceType,
			interaction: this.interaction,
			status: this.status,
			upstreamStatus: this.upstreamStatus,
			upstream: this.upstream,
			error: this.error ?? noted.error,
			bytes,
			durationMs: Math.round((performance.now() - this.#started) * 10) / 10,
			outcome,
		});
	}
}
