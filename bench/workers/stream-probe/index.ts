// Diagnostics for row 5 (bench only): the same upstream body relayed by
// workerd four ways, to show which layer of the proxy costs what.
//   native        return the upstream body as is (workerd pumps it, no JS per chunk)
//   pull          through a pull ReadableStream like the proxy's audit counter
//   rewrite       through src/fhir/rewrite-stream.ts's TransformStream
//   rewrite+pull  both, as the proxy does for JSON
// GET /?mode=...&url=<upstream URL>, Authorization passed on. GET /chunks: the
// last relay's chunk count and mean size, as the worker saw them.
import { rewriteStream } from "../../../src/fhir/rewrite-stream";

let last = { chunks: 0, bytes: 0 };

function counted(source: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
	const reader = source.getReader();
	last = { chunks: 0, bytes: 0 };
	return new ReadableStream<Uint8Array>(
		{
			async pull(controller) {
				const read = await reader.read();
				if (read.done) {
					controller.close();
					return;
				}
				last.chunks += 1;
				last.bytes += read.value.byteLength;
				controller.enqueue(read.value);
			},
			cancel(reason) {
				return reader.cancel(reason);
			},
		},
		{ highWaterMark: 0 },
	);
}

export default {
	async fetch(request: Request): Promise<Response> {
		const url = new URL(request.url);
		if (url.pathname === "/chunks") return Response.json(last);
		const mode = url.searchParams.get("mode");
		const upstreamUrl = url.searchParams.get("url");
		if (!upstreamUrl || !["native", "pull", "rewrite", "rewrite+pull"].includes(mode ?? "")) {
			return new Response("mode=native|pull|rewrite|rewrite+pull&url=...", { status: 400 });
		}
		const upstream = await fetch(upstreamUrl, {
			headers: { Authorization: request.headers.get("Authorization") ?? "", Accept: "application/fhir+json" },
		});
		if (!upstream.body) return new Response(null, { status: upstream.status });
		const base = new URL(upstreamUrl).origin;
		let body: ReadableStream<Uint8Array> = upstream.body;
		if (mode === "rewrite" || mode === "rewrite+pull") {
			body = body.pipeThrough(rewriteStream(`${base}/fhir/r4`, "http://127.0.0.1:1/fhir/r4"));
		}
		if (mode === "pull" || mode === "rewrite+pull") body = counted(body);
		return new Response(body, { status: upstream.status, headers: { "Content-Type": "application/octet-stream" } });
	},
};
