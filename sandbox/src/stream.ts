/*
 * A FHIR searchset Bundle of an exact requested size, produced chunk by chunk
 * through a pull-based ReadableStream: nothing is buffered beyond one chunk,
 * so the sandbox can serve hundreds of MB for the worker's streaming and
 * memory tests. Every entry carries an absolute fullUrl on the sandbox's own
 * FHIR base, and the Bundle carries absolute self/next links, so a proxy that
 * rewrites URLs has real work to do all the way through.
 */

const CHUNK_BYTES = 64 * 1024;

export interface LargeSearchsetOptions {
	fhirBase: string;
	patientId: string;
	practiceId: string;
	totalBytes: number;
	selfUrl: string;
	nextUrl: string;
}

function entry(options: LargeSearchsetOptions, index: number, note?: string): string {
	const id = `a-${options.practiceId}.Observation-bulk-${String(index).padStart(10, "0")}`;
	const value = 60 + (index % 40);
	const resource = {
		resourceType: "Observation",
		id,
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
		effectiveDateTime: "2024-01-01T00:00:00Z",
		valueQuantity: {
			value,
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

function frame(options: LargeSearchsetOptions): { head: string; tail: string } {
	const head = `{"resourceType":"Bundle","type":"searchset","link":${JSON.stringify([
		{ relation: "self", url: options.selfUrl },
		{ relation: "next", url: options.nextUrl },
	])},"entry":[`;
	return { head, tail: "]}" };
}

/** The smallest size this Bundle can have (one entry, no padding). */
export function minimumLargeSearchsetBytes(options: LargeSearchsetOptions): number {
	const { head, tail } = frame(options);
	return byteLength(head) + byteLength(tail) + byteLength(entry(options, 0, ""));
}

const encoder = new TextEncoder();
const byteLength = (text: string) => encoder.encode(text).byteLength;

/**
 * Exactly `totalBytes` bytes of valid JSON: `regular` fixed-size entries, then
 * one last entry whose note is padded to land on the size.
 */
export function largeSearchset(options: LargeSearchsetOptions): ReadableStream<Uint8Array> {
	const { head, tail } = frame(options);
	const regularBytes = byteLength(entry(options, 0)) + 1;
	const lastBase = byteLength(entry(options, 0, ""));
	const budget = options.totalBytes - byteLength(head) - byteLength(tail) - lastBase;
	if (budget < 0) throw new RangeError("totalBytes is below the minimum Bundle size");
	const regular = Math.floor(budget / regularBytes);
	const padding = budget - regular * regularBytes;
	const perChunk = Math.max(1, Math.floor(CHUNK_BYTES / regularBytes));
	let next = 0;
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
				const stop = Math.min(regular, next + perChunk);
				for (; next < stop; next++) text += `${entry(options, next)},`;
				if (next >= regular) {
					text += entry(options, regular, "x".repeat(padding)) + tail;
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
