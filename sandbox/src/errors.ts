/**
 * The one error type for expected OAuth failures. `code` is the RFC 6749 §5.2
 * error code the client sees; `description` is safe to show.
 */
export class OAuthError extends Error {
	constructor(
		readonly code: string,
		readonly description: string,
		readonly status = 400,
		readonly headers: Record<string, string> = {},
	) {
		super(`${code}: ${description}`);
		this.name = "OAuthError";
	}
}

/** RFC 6749 §5.2 error body; token responses are never cacheable (§5.1). */
export function oauthErrorResponse(error: OAuthError): Response {
	return Response.json(
		{ error: error.code, error_description: error.description },
		{
			status: error.status,
			headers: {
				"Cache-Control": "no-store",
				Pragma: "no-cache",
				...error.headers,
			},
		},
	);
}
