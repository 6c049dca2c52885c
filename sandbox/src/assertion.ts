import {
	decodeJwt,
	decodeProtectedHeader,
	errors,
	importJWK,
	type JSONWebKeySet,
	type JWTPayload,
	jwtVerify,
	type ProtectedHeaderParameters,
} from "jose";
import { OAuthError } from "./errors";

export const CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/** RFC 7523 §3 / athena: exp at most 5 minutes ahead. */
export const MAX_ASSERTION_LIFETIME_SECONDS = 300;
/** Tolerated clock difference between the client and the sandbox. */
export const CLOCK_SKEW_SECONDS = 10;

export interface AssertionCheck {
	assertion: string;
	clientId: string;
	jwksUrl: string;
	/** Accepted `aud` values: the token URL, and for revoke/introspect also their own URL. */
	audiences: readonly string[];
	/** The sandbox's clock, in seconds: exp, nbf and iat are judged against it. */
	nowSeconds: number;
	jwks: () => Promise<JSONWebKeySet>;
	/** Records the jti; resolves false when it was already seen. */
	consumeJti: (jti: string, expiresAtMs: number) => Promise<boolean>;
}

export interface DecodedAssertion {
	header: ProtectedHeaderParameters | null;
	claims: JWTPayload | null;
}

/** Decodes without verifying, for the `/_sandbox/received` log. */
export function decodeAssertion(assertion: string): DecodedAssertion {
	let header: ProtectedHeaderParameters | null = null;
	let claims: JWTPayload | null = null;
	try {
		header = decodeProtectedHeader(assertion);
	} catch {}
	try {
		claims = decodeJwt(assertion);
	} catch {}
	return { header, claims };
}

/** Where Okta words a cause (kid, signature, aud, expiry), the sandbox uses Okta's description. */
function refuse(description: string): never {
	throw new OAuthError("invalid_client", description, 401);
}

/**
 * Verifies a private_key_jwt client assertion the way SMART's
 * client-confidential-asymmetric profile and athena require. Throws
 * {@link OAuthError} `invalid_client` naming the first rule broken.
 */
export async function verifyClientAssertion(check: AssertionCheck): Promise<JWTPayload> {
	const { header } = decodeAssertion(check.assertion);
	if (!header) refuse("client_assertion is not a JWT");
	if (header.typ !== "JWT") refuse("client_assertion header typ must be JWT");
	if (header.alg !== "RS384") refuse("client_assertion header alg must be RS384");
	if (typeof header.kid !== "string" || header.kid === "") refuse("client_assertion header kid is required");
	if (header.jku !== undefined && header.jku !== check.jwksUrl) {
		refuse("client_assertion header jku must be the registered JWKS URL");
	}
	if (header.jwk !== undefined || header.x5u !== undefined) {
		refuse("client_assertion must not carry its own key");
	}

	const jwks = await check.jwks();
	const jwk = jwks.keys.find((key) => key.kid === header.kid);
	if (!jwk) refuse("The client_assertion JWT kid is invalid.");
	// athena requires the published key to say alg RS384 and use sig.
	if (jwk.kty !== "RSA" || jwk.alg !== "RS384" || jwk.use !== "sig") {
		refuse("the published key must be an RSA key with alg RS384 and use sig");
	}
	let key: CryptoKey | Uint8Array;
	try {
		key = await importJWK(jwk, "RS384");
	} catch {
		refuse("the published key could not be imported");
	}

	let payload: JWTPayload;
	try {
		({ payload } = await jwtVerify(check.assertion, key, {
			algorithms: ["RS384"],
			typ: "JWT",
			issuer: check.clientId,
			subject: check.clientId,
			requiredClaims: ["iss", "sub", "aud", "exp", "jti"],
			clockTolerance: CLOCK_SKEW_SECONDS,
			currentDate: new Date(check.nowSeconds * 1000),
		}));
	} catch (error) {
		if (error instanceof errors.JWSSignatureVerificationFailed) refuse("The client_assertion signature is invalid.");
		if (error instanceof errors.JWTExpired) refuse("The client_assertion token has an expired time");
		if (error instanceof errors.JWTClaimValidationFailed) {
			refuse(`client_assertion claim ${error.claim} is invalid: ${error.reason}`);
		}
		refuse("client_assertion could not be verified");
	}
	// "aud = the token endpoint URL exactly": a string, not an array containing it.
	if (typeof payload.aud !== "string" || !check.audiences.includes(payload.aud)) {
		refuse("The audience claim for client_assertion must be the endpoint invoked for the request.");
	}
	const exp = payload.exp as number;
	if (!Number.isInteger(exp)) refuse("client_assertion exp must be an integer");
	if (exp > check.nowSeconds + MAX_ASSERTION_LIFETIME_SECONDS + CLOCK_SKEW_SECONDS) {
		refuse("client_assertion exp is more than 5 minutes ahead");
	}
	// RFC 7523 §3 lets a server refuse an iat unreasonably far in the past: no
	// assertion may live longer than 5 minutes, so an older iat is stale. An iat
	// ahead of the sandbox's clock is not refused (exp already bounds it): tests
	// freeze that clock near, not at, the real time the client signs with.
	const iat = payload.iat;
	if (iat !== undefined) {
		if (iat > exp) refuse("client_assertion iat is after its exp");
		if (iat < check.nowSeconds - MAX_ASSERTION_LIFETIME_SECONDS - CLOCK_SKEW_SECONDS) {
			refuse("client_assertion iat is more than 5 minutes ago");
		}
	}
	if (typeof payload.jti !== "string" || payload.jti === "") refuse("client_assertion jti is required");
	const fresh = await check.consumeJti(payload.jti, (exp + CLOCK_SKEW_SECONDS) * 1000);
	if (!fresh) refuse("client_assertion jti was already used");
	return payload;
}
