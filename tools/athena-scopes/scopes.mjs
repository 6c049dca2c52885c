// Which of the scopes ticked on athena's developer portal the worker should
// request. The worker does 3-legged patient access only (SMART App Launch,
// standalone patient launch), so it needs the launch scopes plus read-only
// patient/ resource scopes from ONE SMART version; scopes of other products
// (user/, system/, DSTU2, athenaOne, event notifications, ...) are dropped.

/** Always requested, first, in this order. */
export const BASE_SCOPES = Object.freeze(["openid", "fhirUser", "offline_access", "launch/patient"]);

export const SMART_VERSIONS = Object.freeze(["v1", "v2"]);

// RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;
const PATIENT_SCOPE = /^patient\/([A-Za-z*]+)\.([A-Za-z*]+)(\?\S*)?$/;
const RESOURCE = /^[A-Z][A-Za-z]*$/;
// SMART v2 permissions are a subset of "cruds", in that order.
const V2_PERMISSIONS = /^c?r?u?d?s?$/;

/** An input the command cannot make sense of; `code` is stable. */
export class ScopeInputError extends Error {
	/**
	 * @param {string} code
	 * @param {string} message
	 */
	constructor(code, message) {
		super(message);
		this.name = "ScopeInputError";
		this.code = code;
	}
}

/**
 * Why the worker would not request `scope` under `version`, or null if it
 * would. Base scopes are handled by the caller.
 * @param {string} scope
 * @param {"v1" | "v2"} version
 * @returns {string | null}
 */
function rejection(scope, version) {
	if (/^(user|system)\//.test(scope)) {
		return "not a patient-context scope";
	}
	const match = PATIENT_SCOPE.exec(scope);
	if (!match) return "not a SMART patient scope (another product)";
	const [, resource, permission, query] = match;
	if (!RESOURCE.test(resource)) return "wildcard or malformed resource";
	if (permission === "read") {
		if (query) return "malformed SMART v1 scope";
		return version === "v1" ? null : "SMART v1 scope; pass --v1";
	}
	if (permission === "write" || permission === "*") {
		return "write access is not used";
	}
	if (V2_PERMISSIONS.test(permission)) {
		if (/[cud]/.test(permission)) return "write access is not used";
		return version === "v2" ? null : "SMART v2 scope; pass --v2";
	}
	return "unknown permission";
}

/**
 * Splits ticked scopes into those the worker requests and those it drops.
 * Duplicates are removed; the kept list is base scopes first, then resource
 * scopes sorted by resource then by scope.
 *
 * @param {Iterable<string>} list
 * @param {{ version?: "v1" | "v2" }} [options]
 * @returns {{ kept: string[], dropped: { scope: string, reason: string }[] }}
 * @example
 * selectScopes(["patient/Patient.read", "user/Patient.read"]).dropped
 * // [{ scope: "user/Patient.read", reason: "not a patient-context scope" }]
 */
export function selectScopes(list, { version = "v1" } = {}) {
	if (!SMART_VERSIONS.includes(version)) {
		throw new ScopeInputError("unknown_version", `unknown SMART version "${version}" (use v1 or v2)`);
	}
	const resourceScopes = new Set();
	const dropped = new Map();
	for (const raw of list) {
		const scope = String(raw).trim();
		if (scope === "") continue;
		if (!SCOPE_TOKEN.test(scope)) {
			throw new ScopeInputError("not_a_scope", `"${scope}" is not an OAuth scope (RFC 6749 §3.3)`);
		}
		if (BASE_SCOPES.includes(scope)) continue;
		const reason = rejection(scope, version);
		if (reason === null) resourceScopes.add(scope);
		else if (!dropped.has(scope)) dropped.set(scope, reason);
	}
	const resourceOf = (scope) => PATIENT_SCOPE.exec(scope)?.[1] ?? "";
	const byResource = (a, b) => {
		const ra = resourceOf(a);
		const rb = resourceOf(b);
		if (ra !== rb) return ra < rb ? -1 : 1;
		return a < b ? -1 : a > b ? 1 : 0;
	};
	return {
		kept: [...BASE_SCOPES, ...[...resourceScopes].sort(byResource)],
		dropped: [...dropped].map(([scope, reason]) => ({ scope, reason })),
	};
}

/**
 * The space-separated SCOPES value the worker should request.
 *
 * @param {Iterable<string>} list scopes ticked on the portal
 * @param {{ version?: "v1" | "v2" }} [options] SMART version, default v1
 * @returns {string}
 * @example
 * toScopeString(["user/Patient.read", "patient/Patient.read"])
 * // "openid fhirUser offline_access launch/patient patient/Patient.read"
 */
export function toScopeString(list, options) {
	return selectScopes(list, options).kept.join(" ");
}

/**
 * Reads the command's input: the JSON of window.__athenaScopeResults, a JSON
 * array of scopes, or plain text with scopes separated by whitespace or
 * commas.
 *
 * @param {string} text
 * @returns {string[]}
 */
export function parseScopeInput(text) {
	const trimmed = text.trim();
	if (trimmed === "") {
		throw new ScopeInputError("empty_input", "no scopes in the input");
	}
	if (trimmed.startsWith("{") || trimmed.startsWith("[")) {
		let data;
		try {
			data = JSON.parse(trimmed);
		} catch (error) {
			throw new ScopeInputError("invalid_json", `input looks like JSON but does not parse: ${error.message}`);
		}
		const list = Array.isArray(data) ? data : data?.checkedScopes;
		if (!Array.isArray(list) || !list.every((s) => typeof s === "string")) {
			throw new ScopeInputError(
				"unknown_json",
				"JSON input must be an array of scope strings or window.__athenaScopeResults (with checkedScopes)",
			);
		}
		return list;
	}
	return trimmed.split(/[\s,]+/).filter((s) => s !== "");
}
