import { beforeAll, describe, expect, it } from "vitest";
import { browserFetch, type CookieJar, sandbox, signIn } from "./support/sign-in";

const MIB = 1024 * 1024;
const encoder = new TextEncoder();
const UPSTREAM_HOST = encoder.encode("localhost:3001");
const PROXY_BASE = encoder.encode("localhost:3000/fhir/r4");

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
	for (let at = haystack.indexOf(needle[0] as number); at !== -1; at = haystack.indexOf(needle[0] as number, at + 1)) {
		let k = 1;
		while (k < needle.length && haystack[at + k] === needle[k]) k++;
		if (k === needle.length) return true;
	}
	return false;
}

let jar: CookieJar;

beforeAll(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
	({ jar } = await signIn());
});

describe("FHIR proxy: large bodies", () => {
	it("streams a 256 MiB search with URL rewriting on, chunk by chunk, without holding the body", async () => {
		const size = 256 * MIB;
		const started = performance.now();
		const response = await browserFetch(jar, `/fhir/r4/Observation?_sandbox_bytes=${size}`);
		expect(response.status).toBe(200);
		expect(response.headers.get("Content-Length")).toBeNull();
		const reader = (response.body as ReadableStream<Uint8Array>).getReader();
		let bytes = 0;
		let chunks = 0;
		let rewrittenSeen = false;
		let upstreamSeen = false;
		// The last few bytes of the previous chunk, so a URL split between chunks is still checked.
		let carry = new Uint8Array(0);
		let last = new Uint8Array(0);
		for (let read = await reader.read(); !read.done; read = await reader.read()) {
			const chunk = read.value;
			bytes += chunk.byteLength;
			chunks++;
			const window = new Uint8Array(carry.length + chunk.length);
			window.set(carry, 0);
			window.set(chunk, carry.length);
			if (contains(window, UPSTREAM_HOST)) upstreamSeen = true;
			if (!rewrittenSeen && contains(window, PROXY_BASE)) rewrittenSeen = true;
			carry = window.slice(Math.max(0, window.length - 32));
			last = carry;
		}
		const seconds = (performance.now() - started) / 1000;
		console.log(`256 MiB through the proxy: ${chunks} chunks in ${seconds.toFixed(1)} s`);
		// The sandbox's URLs and the proxy's have the same length, so the size is exact.
		expect(bytes).toBe(size);
		expect(upstreamSeen).toBe(false);
		expect(rewrittenSeen).toBe(true);
		expect(new TextDecoder().decode(last).endsWith("]}")).toBe(true);
	}, 300_000);
});
