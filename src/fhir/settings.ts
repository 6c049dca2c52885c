/** How long athena may take to send response headers before the client gets a 504. */
const DEFAULT_TIMEOUT_MS = 20_000;
const MAX_TIMEOUT_MS = 120_000;

/**
 * The FHIR reads' header timeout from the `FHIR_TIMEOUT_MS` var: a whole
 * number of milliseconds up to 2 minutes, else 20 s. The proxy and the record
 * page read it here, so both wait for athena equally long.
 *
 * @example
 * fhirTimeoutMs({ FHIR_TIMEOUT_MS: "5000" }); // 5000
 * fhirTimeoutMs({}); // 20000
 */
export function fhirTimeoutMs(env: unknown): number {
	const raw = (env as Record<string, unknown>).FHIR_TIMEOUT_MS;
	const value = typeof raw === "string" ? Number(raw) : Number.NaN;
	return Number.isInteger(value) && value > 0 && value <= MAX_TIMEOUT_MS ? value : DEFAULT_TIMEOUT_MS;
}
