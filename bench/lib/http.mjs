// A minimal HTTP client for measurements: node:http on a keep-alive agent,
// bodies counted and dropped, first-body-byte and end times taken with
// performance.now(). No retries, no decompression, loopback only.
import { Agent, request } from "node:http";

export function keepAliveAgent(maxSockets = 16) {
	return new Agent({ keepAlive: true, maxSockets });
}

const defaultAgent = keepAliveAgent();

/**
 * GET/POST `url`; resolves with status, headers, the body (when `keepBody`)
 * or its length, and timings in ms: `ttfb` (first body byte, or headers when
 * there is no body), `total`.
 */
export function send(
	url,
	{ method = "GET", headers = {}, body, agent = defaultAgent, keepBody = true, timeoutMs = 60_000 } = {},
) {
	return new Promise((resolve, reject) => {
		const started = performance.now();
		const req = request(url, { method, headers, agent }, (res) => {
			let ttfb;
			let bytes = 0;
			const chunks = [];
			res.on("data", (chunk) => {
				ttfb ??= performance.now() - started;
				bytes += chunk.length;
				if (keepBody) chunks.push(chunk);
			});
			res.on("end", () => {
				const total = performance.now() - started;
				resolve({
					status: res.statusCode,
					headers: res.headers,
					bytes,
					body: keepBody ? Buffer.concat(chunks).toString("utf8") : undefined,
					ttfb: ttfb ?? total,
					total,
				});
			});
			res.on("error", reject);
		});
		req.setTimeout(timeoutMs, () => req.destroy(new Error(`timeout after ${timeoutMs} ms: ${method} ${url}`)));
		// Name the request: "socket hang up" alone does not say which of a row's requests failed.
		req.on("error", (error) => reject(new Error(`${error.message}: ${method} ${url.split("?")[0]}`, { cause: error })));
		if (body !== undefined) req.write(body);
		req.end();
	});
}

/** `name=value` pairs from Set-Cookie headers, merged into `jar` (a Map). */
export function storeCookies(jar, response) {
	for (const line of response.headers["set-cookie"] ?? []) {
		const [pair] = line.split(";");
		const at = pair.indexOf("=");
		const name = pair.slice(0, at).trim();
		const value = pair.slice(at + 1).trim();
		if (/max-age=0/i.test(line) || value === "") jar.delete(name);
		else jar.set(name, value);
	}
	return jar;
}

export function cookieHeader(jar) {
	return [...jar].map(([k, v]) => `${k}=${v}`).join("; ");
}

/**
 * `send`, or a client answering in its shape (`{ status, headers, body }`), as
 * the fetch the sandbox sign-in script takes (sandbox/sign-in-script.ts): one
 * request, redirects not followed, the body already read.
 */
export function asFetch(client) {
	return async (url, { method, headers, body }) => {
		const answer = await client(url, { method, headers, body });
		return {
			status: answer.status,
			headers: {
				get(name) {
					const value = answer.headers[name.toLowerCase()];
					if (value === undefined) return null;
					return Array.isArray(value) ? value.join(", ") : String(value);
				},
			},
			text: async () => answer.body ?? "",
		};
	};
}
