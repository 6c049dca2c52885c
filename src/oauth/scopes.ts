/**
 * SMART scopes for reading a patient's record, in both versions (SMART App
 * Launch 2.2 §3.1): v1 `patient/Observation.read` / `patient/*.read`, v2
 * `patient/Observation.rs` (any of c, r, u, d, s in that order) / `patient/*.rs`,
 * with optional v2 query constraints (`patient/Observation.rs?category=laboratory`).
 */
const PATIENT_SCOPE = /^patient\/(\*|[A-Z][A-Za-z]+)\.(read|write|\*|c?r?u?d?s?)(?:\?.*)?$/;

/** What a granted scope lets this worker do with a type: read an instance, search, or both. */
export interface ReadGrant {
	read: boolean;
	search: boolean;
}

/**
 * What `granted` (the token response's scopes) allows on `resourceType`.
 *
 * @example
 * readGrant(["patient/Observation.rs"], "Observation"); // { read: true, search: true }
 * readGrant(["patient/*.read"], "Condition");           // { read: true, search: true }
 * readGrant(["patient/Patient.r"], "Patient");          // { read: true, search: false }
 */
export function readGrant(granted: readonly string[], resourceType: string): ReadGrant {
	const grant = { read: false, search: false };
	for (const scope of granted) {
		const match = PATIENT_SCOPE.exec(scope);
		if (!match || (match[1] !== "*" && match[1] !== resourceType)) continue;
		const permissions = match[2] ?? "";
		// v1 `.read` and `.*` grant reading and searching; v2 spells them r and s.
		if (permissions === "read" || permissions === "*") return { read: true, search: true };
		if (permissions.includes("r")) grant.read = true;
		if (permissions.includes("s")) grant.search = true;
	}
	return grant;
}

/**
 * The resource types `granted` names for patient reads, for a person to read
 * ("all of your record" for a wildcard).
 *
 * @example
 * readableTypes(["openid", "patient/Observation.rs", "patient/Condition.read"]); // ["Condition", "Observation"]
 */
export function readableTypes(granted: readonly string[]): string[] | "all" {
	const types = new Set<string>();
	for (const scope of granted) {
		const match = PATIENT_SCOPE.exec(scope);
		if (!match?.[1]) continue;
		const permissions = match[2] ?? "";
		if (permissions !== "read" && permissions !== "*" && !/[rs]/.test(permissions)) continue;
		if (match[1] === "*") return "all";
		types.add(match[1]);
	}
	return [...types].sort();
}
