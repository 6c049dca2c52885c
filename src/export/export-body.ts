import { log } from "../log";
import type { Json } from "./record-export";

export type ExportFormat = "bundle" | "ndjson";

export const EXPORT_CONTENT_TYPES: Record<ExportFormat, string> = {
	bundle: "application/fhir+json",
	ndjson: "application/fhir+ndjson",
};

/** A page of the file: resources read from one connection, and where its URLs point. */
export interface ExportPage {
	resources: Json[];
	/** The connection's server FHIR base, replaced by `proxyBaseUrl` in every resource, as the proxy rewrites its bodies. */
	fhirBaseUrl: string;
	/** This worker's FHIR base for that connection (`{origin}/fhir/r4`, `{origin}/fhir/{id}/r4`): each entry's `fullUrl` lies under it. */
	proxyBaseUrl: string;
}

export interface ExportWriting {
	format: ExportFormat;
	/** The Bundle's `timestamp`. */
	timestamp: string;
	requestId: string;
	/** Called once when the body ends: written to the end, failed, or cancelled by the client. */
	onEnd?: (how: "complete" | "failed" | "cancelled") => void;
}

/** athena's URLs in `text` pointing at the proxy, as the proxy rewrites its bodies. */
function rewritten(text: string, page: ExportPage): string {
	return text.includes(page.fhirBaseUrl) ? text.replaceAll(page.fhirBaseUrl, page.proxyBaseUrl) : text;
}

/** A resource's URL on the proxy; the export's own outcomes (no id) get a `urn:uuid`. */
function fullUrl(resource: Json, page: ExportPage): string {
	return typeof resource.id === "string"
		? `${page.proxyBaseUrl}/${resource.resourceType}/${resource.id}`
		: `urn:uuid:${crypto.randomUUID()}`;
}

/**
 * One page of resources as text: Bundle entries (comma-separated, one a
 * line) or NDJSON lines. One native JSON.stringify per page, not per
 * resource: the export spends most of its own time here.
 */
function pageText(page: ExportPage, format: ExportFormat): string {
	if (format === "ndjson") return `${page.resources.map((r) => rewritten(JSON.stringify(r), page)).join("\n")}\n`;
	const entries = page.resources.map((resource) => ({ fullUrl: fullUrl(resource, page), resource }));
	const body = rewritten(JSON.stringify(entries), page).slice(1, -1);
	// An entry a line: a newline is whitespace between JSON tokens, wherever else the pattern might fall.
	return `\n${body.replaceAll('},{"fullUrl":', '},\n{"fullUrl":')}`;
}

/**
 * The export as bytes: a FHIR `collection` Bundle written entry by entry, or
 * NDJSON (one resource a line), pulled one page at a time so nothing but the
 * page being written is held. A failure nobody planned for errors the stream,
 * so the download fails rather than ending in a file that looks whole; a
 * client that goes away stops the reading.
 *
 * @example
 * new Response(exportBody(sessionExport(parts, options), writing), { headers });
 */
export function exportBody(pages: AsyncGenerator<ExportPage>, writing: ExportWriting): ReadableStream<Uint8Array> {
	const encoder = new TextEncoder();
	const bundle = writing.format === "bundle";
	let entries = 0;
	let ended = false;
	const end = (how: "complete" | "failed" | "cancelled") => {
		if (!ended) writing.onEnd?.(how);
		ended = true;
	};
	return new ReadableStream<Uint8Array>({
		start(controller) {
			if (bundle) {
				const head = { resourceType: "Bundle", type: "collection", timestamp: writing.timestamp };
				controller.enqueue(encoder.encode(`${JSON.stringify(head).slice(0, -1)},"entry":[`));
			}
		},
		async pull(controller) {
			try {
				const { done, value } = await pages.next();
				if (done) {
					if (bundle) controller.enqueue(encoder.encode("]}"));
					controller.close();
					end("complete");
					return;
				}
				if (value.resources.length === 0) return;
				// workerd starts a request's I/O only once this turn's JavaScript is done: yield a
				// turn so the read just asked for (the search's next page) leaves before this page's
				// text is built, keeping the writing off the critical path of cursor paging.
				await new Promise((resolve) => setTimeout(resolve, 0));
				const text = pageText(value, writing.format);
				controller.enqueue(encoder.encode(bundle && entries++ > 0 ? `,${text}` : text));
			} catch (error) {
				log("error", "export failed", {
					requestId: writing.requestId,
					name: error instanceof Error ? error.name : "unknown",
				});
				controller.error(error);
				end("failed");
			}
		},
		async cancel() {
			end("cancelled");
			await pages.return(undefined);
		},
	});
}
