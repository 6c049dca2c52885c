import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { rewriteAll, rewriteStream } from "../../src/fhir/rewrite-stream";

const UPSTREAM = "http://localhost:3001/fhir/r4";
const PUBLIC = "http://localhost:3000/fhir/r4";
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Runs `body` through the streaming rewriter cut at the given offsets and joins what comes out. */
async function streamed(body: Uint8Array, cuts: number[], from = UPSTREAM, to = PUBLIC): Promise<Uint8Array> {
	const offsets = [...new Set(cuts.filter((c) => c > 0 && c < body.length))].sort((a, b) => a - b);
	const pieces: Uint8Array[] = [];
	let start = 0;
	for (const offset of [...offsets, body.length]) {
		pieces.push(body.slice(start, offset));
		start = offset;
	}
	const source = new ReadableStream<Uint8Array>({
		start(controller) {
			for (const piece of pieces) controller.enqueue(piece);
			controller.close();
		},
	});
	const output: Uint8Array[] = [];
	const reader = source.pipeThrough(rewriteStream(from, to)).getReader();
	for (let read = await reader.read(); !read.done; read = await reader.read()) output.push(read.value);
	const joined = new Uint8Array(output.reduce((n, c) => n + c.length, 0));
	let at = 0;
	for (const chunk of output) {
		joined.set(chunk, at);
		at += chunk.length;
	}
	return joined;
}

const bundle = JSON.stringify({
	resourceType: "Bundle",
	link: [{ relation: "next", url: `${UPSTREAM}/Observation?cursor=abc&ah-practice=Organization/a-1.Practice-80000` }],
	entry: [
		{ fullUrl: `${UPSTREAM}/Observation/a-1.O-1`, resource: { note: [{ text: "Déjà vu — 心拍 ✓" }] } },
		{ fullUrl: `${UPSTREAM}/Observation/a-1.O-2`, resource: { subject: { reference: "Patient/a-1.E-2" } } },
	],
});

describe("rewriteAll", () => {
	it("replaces every occurrence of the upstream base and nothing else", () => {
		const out = decoder.decode(rewriteAll(encoder.encode(bundle), UPSTREAM, PUBLIC));
		expect(out).toBe(bundle.replaceAll(UPSTREAM, PUBLIC));
		expect(out).not.toContain(UPSTREAM);
		expect(out.split(PUBLIC).length - 1).toBe(3);
	});

	it("leaves a body without the upstream base unchanged", () => {
		const body = encoder.encode('{"resourceType":"Patient","id":"a-1.E-2"}');
		expect(rewriteAll(body, UPSTREAM, PUBLIC)).toEqual(body);
	});
});

describe("rewriteStream", () => {
	it("rewrites a URL split at every possible byte boundary exactly once", async () => {
		const body = encoder.encode(`{"url":"${UPSTREAM}/Patient/a-80000.E-14545"}`);
		const expected = encoder.encode(`{"url":"${PUBLIC}/Patient/a-80000.E-14545"}`);
		for (let cut = 0; cut <= body.length; cut++) {
			expect(decoder.decode(await streamed(body, [cut]))).toBe(decoder.decode(expected));
		}
	});

	it("rewrites correctly when every byte arrives in its own chunk", async () => {
		const body = encoder.encode(bundle);
		const everyByte = Array.from({ length: body.length }, (_, i) => i);
		expect(await streamed(body, everyByte)).toEqual(rewriteAll(body, UPSTREAM, PUBLIC));
	});

	it("handles back-to-back URLs and a URL at the very end of the body", async () => {
		const body = encoder.encode(`${UPSTREAM}${UPSTREAM}x${UPSTREAM}`);
		for (let cut = 0; cut <= body.length; cut++) {
			expect(decoder.decode(await streamed(body, [cut]))).toBe(`${PUBLIC}${PUBLIC}x${PUBLIC}`);
		}
	});

	it("does not split multi-byte UTF-8 characters (it never decodes them)", async () => {
		const body = encoder.encode(bundle);
		for (let cut = 0; cut <= body.length; cut += 7) {
			expect(decoder.decode(await streamed(body, [cut, cut + 1, cut + 2]))).toBe(bundle.replaceAll(UPSTREAM, PUBLIC));
		}
	});

	it("equals rewriteAll for any body and any chunking", async () => {
		const fragments = fc.constantFrom(
			UPSTREAM,
			"http://localhost:3001/fhir",
			"http://",
			"h",
			"/",
			"é",
			"心",
			"\u0000",
			"",
		);
		const body = fc
			.array(fc.oneof(fragments, fc.string({ unit: "grapheme", maxLength: 6 })), { maxLength: 30 })
			.map((parts) => encoder.encode(parts.join("")));
		await fc.assert(
			fc.asyncProperty(body, fc.array(fc.nat({ max: 400 }), { maxLength: 40 }), async (bytes, cuts) => {
				expect(await streamed(bytes, cuts)).toEqual(rewriteAll(bytes, UPSTREAM, PUBLIC));
			}),
			{ numRuns: 500 },
		);
	});

	it("equals rewriteAll when the replacement is shorter than the URL it replaces", async () => {
		const body = encoder.encode(bundle);
		for (let cut = 0; cut <= body.length; cut += 3) {
			expect(await streamed(body, [cut], UPSTREAM, "/r4")).toEqual(rewriteAll(body, UPSTREAM, "/r4"));
		}
	});

	it("propagates an upstream error instead of ending the stream cleanly", async () => {
		let pulls = 0;
		const source = new ReadableStream<Uint8Array>({
			pull(controller) {
				pulls++;
				if (pulls === 1) controller.enqueue(encoder.encode(`{"url":"${UPSTREAM}`));
				else controller.error(new Error("connection reset"));
			},
		});
		const reader = source.pipeThrough(rewriteStream(UPSTREAM, PUBLIC)).getReader();
		await expect(
			(async () => {
				for (let read = await reader.read(); !read.done; read = await reader.read()) {}
			})(),
		).rejects.toThrow("connection reset");
	});
});
