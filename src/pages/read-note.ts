import { type FhirReader, read, type SessionState } from "./read-record";
import { decodeBase64 } from "./record-data";

/**
 * What a clinical note link shows: the note's own bytes as athena sent them
 * (inline HTML or plain text, base64 in the DocumentReference), "not
 * available", or the session's state.
 */
export type NoteOutcome =
	| { state: "note"; contentType: string; body: Uint8Array<ArrayBuffer> }
	| { state: "missing" }
	| SessionState;

/** FHIR R4 `id` (§2.24.0.1); anything else is not a note of ours to ask athena for. */
const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;
const SHOWN_TYPES = new Set(["text/html", "text/plain"]);
/**
 * Put before an HTML note: phone width (athena's notes carry no viewport) and
 * a way back. It runs inside the same sandbox as the note; ASCII only, so it
 * reads right in whatever charset the note is in.
 */
const NOTE_PREFIX = new TextEncoder().encode(
	'<!doctype html><meta name="viewport" content="width=device-width, initial-scale=1"><p><a href="/record#notes">&larr; Back to your record</a></p>',
);

/**
 * A note's content is athena's (and so the practice's template author's)
 * HTML: it is served on this origin only under a CSP `sandbox` (an opaque
 * origin, no script, no forms), loading nothing from anywhere but `data:`
 * images, never framed, never sniffed into another type.
 */
export function noteHeaders(contentType: string): Record<string, string> {
	return {
		"Content-Type": contentType,
		"Content-Security-Policy":
			"default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; base-uri 'none'; frame-ancestors 'none'; sandbox",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options": "DENY",
		"Referrer-Policy": "no-referrer",
		"Cache-Control": "no-store",
	};
}

/**
 * Reads one DocumentReference of the session's patient and returns its first
 * inline HTML or plain-text attachment. A note athena withholds (no data, a
 * data-absent-reason), another patient's, or one in another format is
 * "missing": the patient gets a page saying so, never someone else's content.
 *
 * @example
 * const note = await readNote(reader, { id: "a-80000.clinicaldocument-10123", patient: "a-80000.E-14545" });
 * if (note.state === "note") return new Response(note.body, { headers: noteHeaders(note.contentType) });
 */
export async function readNote(reader: FhirReader, target: { id: string; patient: string }): Promise<NoteOutcome> {
	if (!FHIR_ID.test(target.id)) return { state: "missing" };
	const result = await read(reader, { path: `/DocumentReference/${target.id}`, query: "" });
	if (!result.ok) return result.state ?? { state: "missing" };
	const note = result.body as { resourceType?: unknown; subject?: { reference?: unknown }; content?: unknown };
	if (note?.resourceType !== "DocumentReference" || note.subject?.reference !== `Patient/${target.patient}`) {
		return { state: "missing" };
	}
	for (const content of Array.isArray(note.content) ? note.content : []) {
		const attachment = content?.attachment;
		const [type = "", ...parameters] = String(attachment?.contentType).split(";");
		const charset = /charset="?([\w-]+)/i.exec(parameters.join(";"))?.[1] ?? "utf-8";
		const body = typeof attachment?.data === "string" ? decodeBase64(attachment.data) : undefined;
		const media = type.trim().toLowerCase();
		if (!body || !SHOWN_TYPES.has(media)) continue;
		const prefix = media === "text/html" ? NOTE_PREFIX : new Uint8Array();
		const shown = new Uint8Array(prefix.length + body.length);
		shown.set(prefix);
		shown.set(body, prefix.length);
		return { state: "note", contentType: `${media}; charset=${charset}`, body: shown };
	}
	return { state: "missing" };
}
