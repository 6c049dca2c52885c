import type { FhirAudit } from "./audit-record";
import type { Rewriter } from "./rewrite-stream";

/** athena's body arrives in ~4 KiB chunks; each costs a trip through JS, so read at least this much per pull. */
const MIN_READ_BYTES = 64 * 1024;
const READ_BUFFER_BYTES = 128 * 1024;

/** Reads at least MIN_READ_BYTES per call where the stream allows it (workerd's BYOB `readAtLeast`). */
function batchedReader(source: ReadableStream<Uint8Array>): {
	read(): Promise<Uint8Array | undefined>;
	cancel(reason: unknown): Promise<void>;
} {
	let byob: ReadableStreamBYOBReader | undefined;
	try {
		byob = source.getReader({ mode: "byob" });
	} catch {
		// Not a byte stream: fall back to the chunks as they come.
	}
	if (byob) {
		const reader = byob;
		// The first read takes whatever has arrived, so the first byte is not held back.
		let minimum = 1;
		return {
			async read() {
				const { done, value } = await reader.readAtLeast(minimum, new Uint8Array(READ_BUFFER_BYTES));
				minimum = MIN_READ_BYTES;
				// A final short read can carry bytes together with done.
				return value && value.byteLength > 0 ? value : done ? undefined : new Uint8Array(0);
			},
			cancel: (reason) => reader.cancel(reason),
		};
	}
	const reader = source.getReader();
	return {
		async read() {
			const { done, value } = await reader.read();
			return done ? undefined : value;
		},
		cancel: (reason) => reader.cancel(reason),
	};
}

/**
 * A JSON body, rewritten and counted as it goes out; the audit record is
 * written when it ends, is cut, or is cancelled.
 *
 * Pull-based with no buffer of its own beyond one read, so athena is read
 * only as fast as the client reads; an upstream error errors this stream
 * too, which aborts the client's response rather than ending it as if
 * complete. Reading, rewriting and counting share one pull: every extra
 * stream layer costs a JS round trip per chunk (BENCHMARKS.md, row 5).
 *
 * @example
 * new Response(rewrittenBody(upstream.body, audit, createRewriter(athenaBase, proxyBase)), { headers });
 */
export function rewrittenBody(
	source: ReadableStream<Uint8Array>,
	audit: FhirAudit,
	rewriter: Rewriter,
): ReadableStream<Uint8Array> {
	const reader = batchedReader(source);
	let bytes = 0;
	return new ReadableStream<Uint8Array>(
		{
			async pull(controller) {
				// Loop until something is enqueued: a rewrite may hold a whole short read back.
				for (;;) {
					let chunk: Uint8Array | undefined;
					try {
						chunk = await reader.read();
					} catch (error) {
						audit.write(bytes, "aborted");
						controller.error(error);
						return;
					}
					if (chunk === undefined) {
						const rest = rewriter.flush();
						if (rest.length > 0) {
							bytes += rest.byteLength;
							controller.enqueue(rest);
						}
						audit.write(bytes, "complete");
						controller.close();
						return;
					}
					const out = rewriter.push(chunk);
					if (out.byteLength > 0) {
						bytes += out.byteLength;
						controller.enqueue(out);
						return;
					}
				}
			},
			cancel(reason) {
				audit.write(bytes, "cancelled");
				return reader.cancel(reason);
			},
		},
		{ highWaterMark: 0 },
	);
}

/**
 * A body that needs no rewriting goes through natively: workerd pipes it with
 * no JS per chunk (BENCHMARKS.md, row 5). The audit record is written when the
 * pipe settles; its byte count is athena's Content-Length, when it sent one.
 * An upstream error still aborts the client's response.
 *
 * @example
 * new Response(passedThroughBody(upstream.body, audit, 1_024, (p) => c.executionCtx.waitUntil(p)), { headers });
 */
export function passedThroughBody(
	source: ReadableStream<Uint8Array>,
	audit: FhirAudit,
	declaredBytes: number | undefined,
	waitUntil: (promise: Promise<unknown>) => void,
): ReadableStream<Uint8Array> {
	const { readable, writable } = new IdentityTransformStream();
	waitUntil(
		source.pipeTo(writable).then(
			() => audit.write(declaredBytes, "complete"),
			() => audit.write(undefined, "aborted"),
		),
	);
	return readable as ReadableStream<Uint8Array>;
}

/** Bytes passed on as they are: a read the worker consumes itself still counts its bytes. */
const UNCHANGED: Rewriter = { push: (chunk) => chunk, flush: () => new Uint8Array(0) };

/**
 * A body read by the worker itself (the record page), counted for its audit
 * record, which is written when it ends, is cut, or is cancelled.
 *
 * @example
 * const body = await new Response(countedBody(upstream.body, audit)).json();
 */
export function countedBody(source: ReadableStream<Uint8Array>, audit: FhirAudit): ReadableStream<Uint8Array> {
	return rewrittenBody(source, audit, UNCHANGED);
}
