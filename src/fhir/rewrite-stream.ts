/**
 * Replaces athena's FHIR base with the proxy's own inside JSON bodies, so the
 * app follows Bundle `next` links, `fullUrl`s and absolute references through
 * the proxy (which holds the token) rather than straight to athena.
 *
 * The search works on bytes: the needle is ASCII (a URL), and UTF-8 never
 * uses ASCII byte values inside a multi-byte character, so a byte match is a
 * character match and no chunk is ever decoded.
 */

const encoder = new TextEncoder();

/** Where `needle` starts in `haystack` at or after `from`, or -1. */
function indexOfBytes(haystack: Uint8Array, needle: Uint8Array, from: number): number {
	const first = needle[0];
	const last = haystack.length - needle.length;
	let at = from;
	while (at <= last) {
		// Uint8Array.indexOf is native: it skips to candidates far faster than a JS loop.
		at = haystack.indexOf(first as number, at);
		if (at === -1 || at > last) return -1;
		let k = 1;
		while (k < needle.length && haystack[at + k] === needle[k]) k++;
		if (k === needle.length) return at;
		at++;
	}
	return -1;
}

/**
 * `data[0, end)` with every match in `matches` replaced, in one new buffer:
 * one allocation and one enqueue per chunk, however many URLs it holds.
 */
function spliceReplacements(
	data: Uint8Array,
	end: number,
	matches: number[],
	needleLength: number,
	replacement: Uint8Array,
): Uint8Array {
	const out = new Uint8Array(end + matches.length * (replacement.length - needleLength));
	let read = 0;
	let write = 0;
	for (const at of matches) {
		out.set(data.subarray(read, at), write);
		write += at - read;
		out.set(replacement, write);
		write += replacement.length;
		read = at + needleLength;
	}
	out.set(data.subarray(read, end), write);
	return out;
}

function findMatches(data: Uint8Array, needle: Uint8Array): number[] {
	const matches: number[] = [];
	for (let at = indexOfBytes(data, needle, 0); at !== -1; at = indexOfBytes(data, needle, at + needle.length)) {
		matches.push(at);
	}
	return matches;
}

function joinBytes(a: Uint8Array, b: Uint8Array): Uint8Array {
	const joined = new Uint8Array(a.length + b.length);
	joined.set(a, 0);
	joined.set(b, a.length);
	return joined;
}

function encodeNeedle(from: string, to: string): { needle: Uint8Array; replacement: Uint8Array } {
	const needle = encoder.encode(from);
	if (needle.length === 0) throw new RangeError("the URL to replace is empty");
	return { needle, replacement: encoder.encode(to) };
}

/**
 * Every occurrence of `from` in `body` replaced by `to`, scanning left to
 * right without overlap. The whole-body reference the streaming version is
 * tested against.
 *
 * @example
 * rewriteAll(new TextEncoder().encode('{"url":"https://athena/fhir/r4/Patient/1"}'),
 *   "https://athena/fhir/r4", "https://proxy/fhir/r4");
 * // → bytes of '{"url":"https://proxy/fhir/r4/Patient/1"}'
 */
export function rewriteAll(body: Uint8Array, from: string, to: string): Uint8Array {
	const { needle, replacement } = encodeNeedle(from, to);
	return spliceReplacements(body, body.length, findMatches(body, needle), needle.length, replacement);
}

/** Incremental rewriting: feed chunks in order, then flush once. */
export interface Rewriter {
	/** The rewritten bytes that are final so far (possibly empty). */
	push(chunk: Uint8Array): Uint8Array;
	/** The bytes held back for a possible match across the last boundary. */
	flush(): Uint8Array;
}

/**
 * Replaces `from` with `to` chunk by chunk, holding at most `from.length - 1`
 * bytes between chunks so a URL split across any chunk boundary is still
 * found, and found once. Memory stays at one chunk plus that tail, whatever
 * the body's size.
 *
 * @example
 * const rewriter = createRewriter("https://athena/fhir/r4", "https://proxy/fhir/r4");
 * const out = [rewriter.push(chunk1), rewriter.push(chunk2), rewriter.flush()];
 */
export function createRewriter(from: string, to: string): Rewriter {
	const { needle, replacement } = encodeNeedle(from, to);
	const keep = needle.length - 1;
	let tail: Uint8Array = new Uint8Array(0);
	return {
		push(chunk) {
			const data = tail.length > 0 ? joinBytes(tail, chunk) : chunk;
			const matches = findMatches(data, needle);
			const lastMatchEnd = matches.length > 0 ? (matches.at(-1) as number) + needle.length : 0;
			// Bytes that could begin a needle completed by the next chunk stay behind.
			const hold = Math.max(lastMatchEnd, data.length - keep);
			tail = data.slice(Math.max(hold, 0));
			if (hold <= 0) return new Uint8Array(0);
			if (matches.length === 0) return data.subarray(0, hold);
			return spliceReplacements(data, hold, matches, needle.length, replacement);
		},
		flush() {
			const rest = tail;
			tail = new Uint8Array(0);
			return rest;
		},
	};
}

/**
 * `createRewriter` as a TransformStream.
 *
 * @example
 * const rewritten = upstream.body.pipeThrough(
 *   rewriteStream("https://api.platform.athenahealth.com/fhir/r4", "https://connector.example.com/fhir/r4"),
 * );
 */
export function rewriteStream(from: string, to: string): TransformStream<Uint8Array, Uint8Array> {
	const rewriter = createRewriter(from, to);
	return new TransformStream<Uint8Array, Uint8Array>({
		transform(chunk, controller) {
			const out = rewriter.push(chunk);
			if (out.length > 0) controller.enqueue(out);
		},
		flush(controller) {
			const rest = rewriter.flush();
			if (rest.length > 0) controller.enqueue(rest);
		},
	});
}
