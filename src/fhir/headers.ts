/**
 * Which headers cross the proxy, in each direction. Both lists are
 * allowlists: a header athena or a browser adds tomorrow does not cross until
 * someone decides it should.
 */

/** What a FHIR client may ask athena for; cookies and Authorization never cross. */
const FORWARDED_REQUEST_HEADERS = ["if-none-match", "if-modified-since", "prefer"] as const;

/** FHIR R4 §3.1.0.1.7: the JSON format's MIME type. */
export const FHIR_JSON = "application/fhir+json";

/**
 * Response headers that describe the body or its caching validators. Absent
 * on purpose: `set-cookie` (athena's cookies are not the app's), hop-by-hop
 * headers (RFC 9110 §7.6.1), `www-authenticate` (the proxy owns auth),
 * `location`/`content-location` (athena URLs), and `content-length`, which is
 * added back only when the body passes through unchanged.
 */
const FORWARDED_RESPONSE_HEADERS = [
	"content-type",
	"content-disposition",
	"content-language",
	"etag",
	"last-modified",
	"retry-after",
	// athena's rate limit as it counts it (IETF RateLimit fields and the older X- form):
	// an app that reads them can slow down before athena answers 429.
	"ratelimit-limit",
	"ratelimit-remaining",
	"ratelimit-reset",
	"x-ratelimit-limit",
	"x-ratelimit-remaining",
] as const;

/**
 * Headers for the upstream request: the client's conditional and preference
 * headers, its `Accept` (FHIR JSON when it sent none), and the session's token.
 *
 * @example
 * const headers = upstreamRequestHeaders(c.req.raw.headers, "eyJ...");
 * headers.get("Authorization"); // "Bearer eyJ..."
 * headers.get("Cookie");        // null
 */
export function upstreamRequestHeaders(incoming: Headers, accessToken: string): Headers {
	const headers = new Headers({ Accept: incoming.get("accept") || FHIR_JSON });
	for (const name of FORWARDED_REQUEST_HEADERS) {
		const value = incoming.get(name);
		if (value !== null) headers.set(name, value);
	}
	headers.set("Authorization", `Bearer ${accessToken}`);
	return headers;
}

/** True when the body is JSON (`application/fhir+json`, `application/json`, `...+json`) and so gets URLs rewritten. */
export function isJsonBody(contentType: string | null): boolean {
	return contentType !== null && /json/i.test(contentType);
}

/**
 * Headers for the client's response: the allowlisted upstream headers, never
 * cached by a shared cache or kept by the browser, tagged with our request id.
 * `bodyUnchanged` says whether the body reaches the client byte for byte (so
 * athena's `Content-Length` still holds).
 *
 * @example
 * clientResponseHeaders(upstream.headers, "req-1", { bodyUnchanged: false }).get("Cache-Control");
 * // "private, no-store"
 */
export function clientResponseHeaders(
	upstream: Headers,
	requestId: string,
	options: { bodyUnchanged: boolean },
): Headers {
	const headers = new Headers();
	for (const name of FORWARDED_RESPONSE_HEADERS) {
		const value = upstream.get(name);
		if (value !== null) headers.set(name, value);
	}
	const length = upstream.get("content-length");
	// workerd decodes a compressed body for us, so athena's length then describes other bytes.
	if (options.bodyUnchanged && length !== null && !upstream.has("content-encoding")) {
		headers.set("content-length", length);
	}
	headers.set("Cache-Control", "private, no-store");
	// athena's bytes are served on our origin: a Binary that is HTML or SVG must
	// never run as a page of this site (it could read the patient's record).
	headers.set("Content-Security-Policy", "default-src 'none'; sandbox");
	headers.set("X-Content-Type-Options", "nosniff");
	headers.set("X-Request-Id", requestId);
	return headers;
}
