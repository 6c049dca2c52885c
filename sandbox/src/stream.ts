/*
 * A FHIR searchset Bundle of an exact requested size, produced chunk by chunk
 * through a pull-based ReadableStream: nothing is buffered beyond one chunk,
 * so the sandbox can serve hundreds of MB for the worker's streaming and
 * memory tests. Every entry carries an absolute fullUrl on the sandbox's own
 * FHIR base, and the Bundle carries absolute self/next links, so a proxy that
 * rewrites URLs has real work to do all the way through. The next link's
 * cursor names the entry after the page's last, and a request with that
 * cursor continues the numbering: the series has no last page, so a reader
 * decides when to stop.
 */

const CHUNK_BYTES = 64 * 1024;
const BULK_KIND = "bulkvitals";
const ID_DIGITS = 10;

export interface LargeSearchsetOptions {
	fhirBase: string;
	patientId: string;
	practiceId: string;
	totalBytes: number;
	selfUrl: string;
	/** The search's next link for a page that starts at this resource id (athena's cursor). */
	nextUrl: (cursor: string) => string;
	/** The Bundle's `timestamp`: 24 characters, as `Date.toISOString()` writes it. */
	timestamp: string;
	/** Number of the page's first entry: 0, or the one the cursor names. */
	first: number;
}

/** Bulk entries' ids: athena's shape, fixed width, so every entry has the same size. */
export const bulkId = (practiceId: string, index: number) =>
	`a-${practiceId}.${BULK_KIND}-${String(index).padStart(ID_DIGITS, "0")}`;

/** The entry number a bulk cursor names, or undefined when it is not one of this practice's. */
export function bulkIndex(practiceId: string, cursor: string): number | undefined {
	const match = new RegExp(`^a-${practiceId}\\.${BULK_KIND}-(\\d{${ID_DIGITS}})$`).exec(cursor);
	return match?.[1] === undefined ? undefined : Number(match[1]);
}

function entry(options: LargeSearchsetOptions, index: number, note?: string): string {
	const id = bulkId(options.practiceId, index);
	const resource = {
		resourceType: "Observation",
		id,
		extension: [
			{
				url: "https://fhir.athena.io/StructureDefinition/ah-practice",
				valueReference: { reference: `Organization/a-1.Practice-${options.practiceId}` },
			},
			{
				url: "https://fhir.athena.io/StructureDefinition/ah-chart-sharing-group",
				valueReference: { reference: `Organization/a-${options.practiceId}.CSG-2` },
			},
		],
		status: "final",
		category: [
			{
				coding: [
					{
						system: "http://terminology.hl7.org/CodeSystem/observation-category",
						code: "vital-signs",
						display: "Vital Signs",
					},
				],
			},
		],
		code: {
			coding: [{ system: "http://loinc.org", code: "8867-4", display: "Heart rate" }],
			text: "Heart rate",
		},
		subject: { reference: `Patient/${options.patientId}` },
		effectiveDateTime: "2024-01-01",
		valueQuantity: {
			value: 60 + (index % 40),
			unit: "/min",
			system: "http://unitsofmeasure.org",
			code: "/min",
		},
		...(note !== undefined ? { note: [{ text: note }] } : {}),
	};
	return JSON.stringify({
		fullUrl: `${options.fhirBase}/Observation/${id}`,
		resource,
		search: { mode: "match" },
	});
}

/** The Bundle around the entries; its size does not depend on `nextIndex` (fixed-width ids). */
function frame(options: LargeSearchsetOptions, nextIndex: number): { head: string; tail: string } {
	const head = `{"resourceType":"Bundle","type":"searchset","timestamp":${JSON.stringify(options.timestamp)},"link":${JSON.stringify(
		[
			{ relation: "self", url: options.selfUrl },
			{ relation: "next", url: options.nextUrl(bulkId(options.practiceId, nextIndex)) },
		],
	)},"entry":[`;
	return { head, tail: "]}" };
}

/** The smallest size this Bundle can have (one entry, no padding). */
export function minimumLargeSearchsetBytes(options: LargeSearchsetOptions): number {
	const { head, tail } = frame(options, 0);
	return byteLength(head) + byteLength(tail) + byteLength(entry(options, 0, ""));
}

const encoder = new TextEncoder();
const byteLength = (text: string) => encoder.encode(text).byteLength;

/** How the bytes divide: `regular` fixed-size entries, then one padded to land on the size. */
function layout(options: LargeSearchsetOptions): { regular: number; padding: number; regularBytes: number } {
	const { head, tail } = frame(options, 0);
	const regularBytes = byteLength(entry(options, 0)) + 1;
	const budget = options.totalBytes - byteLength(head) - byteLength(tail) - byteLength(entry(options, 0, ""));
	if (budget < 0) throw new RangeError("totalBytes is below the minimum Bundle size");
	const regular = Math.floor(budget / regularBytes);
	return { regular, padding: budget - regular * regularBytes, regularBytes };
}

/** How many resources a Bundle of `options.totalBytes` carries. */
export function largeSearchsetEntries(options: LargeSearchsetOptions): number {
	return layout(options).regular + 1;
}

/**
 * Exactly `totalBytes` bytes of valid JSON: `regular` fixed-size entries, then
 * one last entry whose note is padded to land on the size.
 */
export function largeSearchset(options: LargeSearchsetOptions): ReadableStream<Uint8Array> {
	const { regular, padding, regularBytes } = layout(options);
	const last = options.first + regular;
	const { head, tail } = frame(options, last + 1);
	const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / regularBytes));
	let next = options.first;
	let started = false;
	let finished = false;
	return new ReadableStream<Uint8Array>(
		{
			pull(controller) {
				if (finished) return;
				let text = "";
				if (!started) {
					text += head;
					started = true;
				}
				const stop = Math.min(last, next + perChunk);
				for (; next < stop; next++) text += `${entry(options, next)},`;
				if (next >= last) {
					text += entry(options, last, "x".repeat(padding)) + tail;
					finished = true;
				}
				controller.enqueue(encoder.encode(text));
				if (finished) controller.close();
			},
		},
		{ highWaterMark: 0 },
	);
}

/**
 * Passes `limit` bytes through, then errors the stream: a connection cut
 * mid-body. The error is raised on the pull after the last bytes, so the
 * reader receives those bytes first, as it would from a dropped connection.
 */
export function cutAfter(body: ReadableStream<Uint8Array>, limit: number): ReadableStream<Uint8Array> {
	const reader = body.getReader();
	let sent = 0;
	return new ReadableStream<Uint8Array>(
		{
			async pull(controller) {
				if (sent >= limit) {
					await reader.cancel("sandbox fault: stream cut").catch(() => {});
					controller.error(new Error("sandbox fault: stream cut"));
					return;
				}
				const { done, value } = await reader.read();
				if (done) {
					controller.close();
					return;
				}
				const room = limit - sent;
				const chunk = value.byteLength > room ? value.slice(0, room) : value;
				sent += chunk.byteLength;
				if (chunk.byteLength > 0) controller.enqueue(chunk);
			},
			cancel(reason) {
				return reader.cancel(reason);
			},
		},
		{ highWaterMark: 0 },
	);
}
