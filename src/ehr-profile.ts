import { AppError } from "./errors";

/**
 * What a record server adds to SMART App Launch. Everything else (PKCE,
 * state, the client assertion, id_token checks, sessions, refresh, streaming,
 * the proxy's outbound rules) is the same for every server; the few rules that
 * are athena's own live here and nowhere else.
 */
export interface EhrProfile {
	readonly name: "athena" | "smart";
	/** Whether a launch may name a practice (`?practice=`, DEFAULT_PRACTICE) to be checked against the patient. */
	readonly knowsPractices: boolean;
	/**
	 * Whether the proxy completes searches the way athena expects: its
	 * `ah-practice` parameter, and the session's patient on compartment searches
	 * that name none.
	 */
	readonly completesSearches: boolean;
	/**
	 * Whether `offline_access` is asked for with `prompt=consent`: OpenID Connect
	 * Core §11 lets a server ignore offline_access without it (oidc-provider does).
	 * athena's Okta grants it on its own consent page, so athena is not sent one.
	 */
	readonly consentForOffline: boolean;
	/** Whether the server's JWKS (to verify id_tokens) wants `?client_id=`: athena documents it as required. */
	readonly keysNeedClientId: boolean;
	/**
	 * Checks the token response's patient and reads the practice it names, or
	 * throws an AppError. `expectedPractice`: the one the launch named, if any.
	 */
	acceptPatient(patient: string, expectedPractice: string | undefined): { practice: string | undefined };
}

/** athena patient IDs: `a-{practice}.E-{enterprise id}`. */
const ATHENA_PATIENT = /^a-(\d+)\.E-(\d+)$/;
/** FHIR R4 `id` (§2.24.0.1). */
const FHIR_ID = /^[A-Za-z0-9.-]{1,64}$/;

const athena: EhrProfile = {
	name: "athena",
	knowsPractices: true,
	completesSearches: true,
	consentForOffline: false,
	keysNeedClientId: true,
	acceptPatient(patient, expectedPractice) {
		const practice = ATHENA_PATIENT.exec(patient)?.[1];
		if (!practice) {
			throw new AppError({
				code: "token_response_invalid",
				status: 502,
				message: "athenahealth named the patient in a way this app does not understand. Please try connecting again.",
				detail: "patient id is not a-{practice}.E-{id}",
			});
		}
		// The patient picks the record, and so the practice, inside athena's sign-in. A deployment
		// that was told its practice still checks it: a patient of another practice means a mix-up.
		if (expectedPractice !== undefined && practice !== expectedPractice) {
			throw new AppError({
				code: "practice_mismatch",
				status: 400,
				message:
					"The signed-in patient does not belong to the practice you chose. Please check the practice and connect again.",
				detail: "patient id does not match practice from state",
			});
		}
		return { practice };
	},
};

const smart: EhrProfile = {
	name: "smart",
	knowsPractices: false,
	completesSearches: false,
	consentForOffline: true,
	keysNeedClientId: false,
	acceptPatient(patient) {
		if (!FHIR_ID.test(patient)) {
			throw new AppError({
				code: "token_response_invalid",
				status: 502,
				message: "The record server named the patient in a way this app does not understand.",
				detail: "patient is not a FHIR id",
			});
		}
		return { practice: undefined };
	},
};

/** The profile named by `EHR_PROFILE` (config). */
export function ehrProfile(name: "athena" | "smart"): EhrProfile {
	return name === "smart" ? smart : athena;
}
