import { createRemoteJWKSet, errors, jwtVerify } from "jose";
import { AppError } from "../errors";

const remoteSets = new Map<string, ReturnType<typeof createRemoteJWKSet>>();

/**
 * athena's JWKS, fetched and cached per isolate by jose (refetched on an
 * unknown kid). athena documents `client_id` as required on its keys endpoint:
 * without it the set may be refused or lack the id_token's key.
 */
function issuerKeys(jwksUrl: string, clientId: string | undefined) {
	const url = new URL(jwksUrl);
	if (clientId && !url.searchParams.has("client_id")) url.searchParams.set("client_id", clientId);
	let set = remoteSets.get(url.href);
	if (!set) {
		set = createRemoteJWKSet(url, { timeoutDuration: 5000, cooldownDuration: 30_000 });
		remoteSets.set(url.href, set);
	}
	return set;
}

/**
 * Verifies an id_token (OpenID Connect Core §3.1.3.7): signature from the
 * issuer's JWKS, `iss`, `aud` = our client_id, `exp`, and the `nonce` we sent.
 *
 * @example
 * await verifyIdToken(tokens.idToken, { jwksUrl, issuer, clientId, nonce });
 */
export async function verifyIdToken(
	idToken: string,
	expected: {
		jwksUrl: string;
		/** athena's keys endpoint wants `?client_id=` (src/ehr-profile.ts); default true. */
		addClientId?: boolean;
		issuer: string;
		clientId: string;
		nonce: string;
		now?: number;
	},
): Promise<{ fhirUser: string | undefined; subject: string | undefined }> {
	try {
		const { payload } = await jwtVerify(
			idToken,
			issuerKeys(expected.jwksUrl, expected.addClientId === false ? undefined : expected.clientId),
			{
				issuer: expected.issuer,
				audience: expected.clientId,
				algorithms: ["RS256", "RS384", "RS512", "ES256", "PS256"],
				requiredClaims: ["exp", "iat", "sub"],
				currentDate: expected.now === undefined ? undefined : new Date(expected.now),
				clockTolerance: 60,
			},
		);
		if (payload.nonce !== expected.nonce)
			throw new AppError({ code: "id_token_invalid", status: 502, message: "", detail: "nonce mismatch" });
		return {
			fhirUser: typeof payload.fhirUser === "string" ? payload.fhirUser : undefined,
			subject: payload.sub,
		};
	} catch (error) {
		const detail =
			error instanceof AppError
				? error.detail
				: error instanceof errors.JOSEError
					? `id_token ${error.code}`
					: "id_token verification failed";
		throw new AppError({
			code: "id_token_invalid",
			status: 502,
			message: "athenahealth's sign-in confirmation could not be verified. Please try connecting again.",
			detail,
		});
	}
}
