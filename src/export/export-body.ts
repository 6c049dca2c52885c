import { log } from "../log";
import type { Json } from "./record-export";

export type ExportFormat = "bundle" | "ndjson";

export const EXPORT_CONTENT_TYPES: Record<ExportFormat, string> = {
	bundle: "application/fhir+json",
	ndjson: "application/fhir+ndjson",
};

export interface ExportWriting {
	format: ExportFormat;
	/** athena's FHIR base, replaced by `proxyBaseUrl` in every resource, as the proxy rewrites its bodies. */
	fhirBaseUrl: string;
	/** This worker's FHIR base for the record (`{origin}/fhir/r4`): each entry's `fullUrl` lies under it. */
	proxyBaseUrl: string;
	/** The Bundle's `timestamp`. */
	timestamp: string;
	requestId: string;
}

/** One resource as JSON text, athena's URLs pointing at the proxy. */
function resourceText(resource: Json, writing: ExportWriting): string {
	const text = JSON.stringify(resource);
	return text.includes(writing.fhirBaseUrl) ? text.replaceAll(writing.fhirBaseUrl, writing.proxyBaseUrl) : text;
}

/** A Bundle entry: resources with an id get their URL on the proxy; the export's own outcomes a `urn:uuid`. */
function entryText(resource: Json, writing: ExportWriting): string {
	const fullUrl =
		typeof resource.id === "string"
			? `${writing.proxyBaseUrl}/${resource.resourceType}/${resource.id}`
			: `urn:uuid:${crypto.randomUUID()}`;
	return `{"fullUrl":${JSON.stringify(fullUrl)},"resource":${resourceText(resource, writing)}}`;
}

/**
 * The export as bytes: a FHIR `collection` Bundle written entry by entry, or
 * NDJSON (one resource a line), pulled one page at a time so nothing but the
 * page being written is held. A failure nobody planned for errors the stream,
 * so the download fails rather than ending in a file that looks whole; a
 * client that goes away stops the reading.
 *
 * @example
 * new Response(exportBody(recordExport(options, tally), writing), { headers });
 */
export function exportBody(pages: AsyncGenerator<Json[]>, writing: ExportWriting): ReadableStream<Uint8Array> {
	const encoder = new TextEncoder();
	const bundle = writing.format === "bundle";
	let entries = 0;
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
					return;
				}
				let text = "";
				for (const resource of value) {
					text += bundle
						? `${entries++ === 0 ? "" : ","}\n${entryText(resource, writing)}`
						: `${resourceText(resource, writing)}\n`;
				}
				controller.enqueue(encoder.encode(text));
			} catch (error) {
				log("error", "export failed", {
					requestId: writing.requestId,
					name: error instanceof Error ? error.name : "unknown",
				});
				controller.error(error);
			}
		},
		async cancel() {
			await pages.return(undefined);
		},
	});
}
