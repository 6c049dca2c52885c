import { FHIR_JSON } from "./headers";

/** FHIR R4 issue-type codes (valueset-issue-type) the proxy reports with. */
export type IssueCode = "exception" | "timeout" | "not-supported" | "transient" | "security" | "required";

/**
 * A FHIR R4 OperationOutcome response for failures the proxy itself reports
 * (athena down, slow, or a method the proxy does not forward), so FHIR
 * clients can read every error the same way. `text` must be safe to show:
 * never upstream body text, a URL or a token.
 *
 * @example
 * operationOutcome(504, "timeout", "athena did not answer in time", "req-1");
 * // 504 {"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"timeout",...}]}
 */
export function operationOutcome(
	status: number,
	code: IssueCode,
	text: string,
	requestId: string,
	headers: Record<string, string> = {},
): Response {
	const body = JSON.stringify({
		resourceType: "OperationOutcome",
		issue: [{ severity: "error", code, diagnostics: text, details: { text } }],
	});
	return new Response(body, {
		status,
		headers: {
			"Content-Type": `${FHIR_JSON}; charset=utf-8`,
			"Cache-Control": "private, no-store",
			"X-Request-Id": requestId,
			...headers,
		},
	});
}
