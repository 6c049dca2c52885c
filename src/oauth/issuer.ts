import { AppError } from "../errors";

const discovered = new Map<string, Promise<string>>();

/**
 * The authorization server's issuer. athena's is an Okta URL, not the FHIR
 * base, so unless configured it is read from `{FHIR base}/.well-known/smart-configuration`
 * (athena serves discovery under the FHIR base only) and cached per isolate.
 */
export function expectedIssuer(
	configured: string | undefined,
	fhirBaseUrl: string,
	fetcher: typeof fetch,
): Promise<string> {
	if (configured) return Promise.resolve(configured);
	let issuer = discovered.get(fhirBaseUrl);
	if (!issuer) {
		issuer = (async () => {
			const response = await fetcher(`${fhirBaseUrl}/.well-known/smart-configuration`, {
				headers: { Accept: "application/json" },
				signal: AbortSignal.timeout(5000),
			});
			const body = response.ok ? ((await response.json()) as { issuer?: unknown }) : undefined;
			if (typeof body?.issuer !== "string" || !body.issuer) {
				throw new AppError({
					code: "issuer_unknown",
					status: 503,
					message: "athenahealth's sign-in settings could not be read. Please try again shortly.",
					detail: `smart-configuration answered ${response.status} without an issuer`,
					retryAfterSeconds: 30,
				});
			}
			return body.issuer;
		})();
		discovered.set(fhirBaseUrl, issuer);
		issuer.catch(() => discovered.delete(fhirBaseUrl));
	}
	return issuer;
}
