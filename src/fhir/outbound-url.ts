import { AppError } from "../errors";

/**
 * What a proxied request does, in FHIR's words (R4 §3.1.0 RESTful API). Only
 * read interactions exist here: the proxy never writes to a record.
 */
export type FhirInteraction = "capabilities" | "read" | "vread" | "history-instance" | "search-type";

/** The patient and practice the session's token belongs to, and where athena is. */
export interface OutboundContext {
	/** athena's FHIR base, e.g. `https://api.platform.athenahealth.com/fhir/r4` (no trailing slash needed). */
	fhirBaseUrl: string;
	/** athena patient ID from the token response, e.g. `a-80000.E-14545`. */
	patient: string;
	/** athena: the practice ID, digits, e.g. `80000`; other servers: none. */
	practice: string | undefined;
	/**
	 * athena's profile (src/ehr-profile.ts): searches get `ah-practice` and, on
	 * compartment types, the session's patient when they lack them. Other
	 * servers get the app's query as it is (an unknown parameter is a 400 there).
	 * Default: athena's (true).
	 */
	completeSearches?: boolean;
}

/** The upstream request the proxy may make, and what to write in its audit line. */
export interface OutboundRequest {
	/** Absolute URL under the FHIR base. */
	url: string;
	interaction: FhirInteraction;
	/** Undefined for `/metadata`. */
	resourceType: string | undefined;
}

const RESOURCE_TYPE = /^[A-Z][A-Za-z]+$/;
/** FHIR R4 `id` (§2.24.0.1) is `[A-Za-z0-9\-\.]{1,64}`; athena's look like `a-80000.E-14545`. */
const RESOURCE_ID = /^[A-Za-z0-9.-]{1,64}$/;
/** FHIR search parameter names, with modifiers and chains: `_count`, `code:text`, `subject:Patient.name`, `ah-practice`. */
const PARAMETER_NAME = /^[A-Za-z0-9_.:-]{1,128}$/;
/**
 * Query bytes that can travel literally (RFC 3986 §3.4 `pchar / "/" / "?"`,
 * with `&` as the separator, less `'`, which the WHATWG URL parser would
 * encode for http(s) and so change the URL after our checks). Everything else
 * is percent-encoded; a valid
 * `%XX` is kept as it came, so a well-formed query reaches athena byte for byte.
 */
const LITERAL_QUERY_BYTE = /^[A-Za-z0-9\-._~!$()*+,;=:@/?]$/;

/**
 * Searches on these types are confined to one patient's compartment; athena
 * answers `forbidden` unless they name the patient (athena's documented search rules), so
 * the proxy names the session's patient when the app did not.
 */
export const PATIENT_COMPARTMENT_TYPES: ReadonlySet<string> = new Set([
	"AllergyIntolerance",
	"CarePlan",
	"CareTeam",
	"Condition",
	"Coverage",
	"Device",
	"DiagnosticReport",
	"DocumentReference",
	"Encounter",
	"Goal",
	"Immunization",
	"MedicationRequest",
	"Observation",
	"Procedure",
	"ServiceRequest",
]);

/** Parameters that already pin a compartment search to a patient (or to named resources). */
const PATIENT_PINNING_PARAMETERS = new Set(["patient", "subject", "_id"]);

function refusePath(detail: string): never {
	throw new AppError({
		code: "fhir_path_refused",
		status: 400,
		message: "This FHIR path is not one the proxy forwards",
		detail,
	});
}

function refuseQuery(detail: string): never {
	throw new AppError({
		code: "fhir_query_refused",
		status: 400,
		message: "This FHIR query is not one the proxy forwards",
		detail,
	});
}

/** Rejects every byte below 0x20 and DEL, whether raw or percent-encoded (`%00`, `%0a`, `%7F`). */
function hasControlCharacter(raw: string): boolean {
	// biome-ignore lint/suspicious/noControlCharactersInRegex: detecting them is the point
	return /[\u0000-\u001f\u007f]/.test(raw) || /%(?:[01][0-9a-f]|7f)/i.test(raw);
}

/**
 * Path checks, most specific first so the log names the real reason. The
 * shape allowlist after them would refuse all of these too; naming them keeps
 * the refusal explainable and guards against a future loosening of the shapes.
 */
function checkPathSafety(path: string): void {
	if (hasControlCharacter(path)) refusePath("control character");
	if (path.includes("\\")) refusePath("backslash");
	if (/%(?:2f|5c)/i.test(path)) refusePath("encoded slash or backslash");
	if (/%25/i.test(path)) refusePath("double percent-encoding");
	if (/(?:^|\/)(?:\.|%2e){1,2}(?:\/|$)/i.test(path)) refusePath("dot segment");
	if (path.includes("%")) refusePath("percent-encoding in path");
	if (path.startsWith("//")) refusePath("network-path reference");
	if (/^\/*[A-Za-z][A-Za-z0-9+.-]*:/.test(path)) refusePath("absolute URL");
	if (path.includes("@")) refusePath("userinfo");
	if (/^\/+(?:oauth2|\.well-known)(?:\/|$)/i.test(path)) refusePath("OAuth path");
	if (path.includes("?") || path.includes("#")) refusePath("query or fragment in path");
}

function classifyPath(path: string): { interaction: FhirInteraction; resourceType: string | undefined } {
	if (path === "/metadata") return { interaction: "capabilities", resourceType: undefined };
	const segments = path.split("/");
	// A valid path starts with "/", so segments[0] is the empty string before it.
	if (segments[0] !== "" || segments.length < 2) refusePath("path does not start with /");
	const [type, id, history, versionId, ...rest] = segments.slice(1);
	if (type === undefined || !RESOURCE_TYPE.test(type)) refusePath("not a resource type");
	if (rest.length > 0) refusePath("too many segments");
	if (id === undefined) return { interaction: "search-type", resourceType: type };
	if (id === "_search" && history === undefined) return { interaction: "search-type", resourceType: type };
	// `..` and `.` match the id pattern's characters; they are never ids.
	if (!RESOURCE_ID.test(id) || /^\.+$/.test(id)) refusePath("not a resource id");
	if (history === undefined) return { interaction: "read", resourceType: type };
	if (history !== "_history") refusePath("unknown operation after the id");
	if (versionId === undefined) return { interaction: "history-instance", resourceType: type };
	if (!RESOURCE_ID.test(versionId) || /^\.+$/.test(versionId)) refusePath("not a version id");
	return { interaction: "vread", resourceType: type };
}

interface QueryParameter {
	name: string;
	/** Already safe to place in a URL. Undefined for a bare `name` with no `=`. */
	encodedValue: string | undefined;
}

/** Keeps `%XX` and literal-safe bytes as they are; percent-encodes the rest as UTF-8. */
function reencodeQueryValue(raw: string): string {
	let out = "";
	for (let i = 0; i < raw.length; i++) {
		const char = raw.charAt(i);
		if (char === "%") {
			if (!/^[0-9A-Fa-f]{2}$/.test(raw.slice(i + 1, i + 3))) refuseQuery("malformed percent-encoding");
			out += raw.slice(i, i + 3);
			i += 2;
		} else if (LITERAL_QUERY_BYTE.test(char)) {
			out += char;
		} else {
			const codePoint = raw.codePointAt(i) ?? 0;
			const whole = String.fromCodePoint(codePoint);
			// A lone surrogate cannot be encoded as UTF-8; encodeURIComponent throws URIError on it.
			try {
				// encodeURIComponent leaves `'` alone; the URL parser would not.
				out += encodeURIComponent(whole).replace(/'/g, "%27");
			} catch {
				refuseQuery("unpaired surrogate");
			}
			i += whole.length - 1;
		}
	}
	return out;
}

function parseQuery(rawQuery: string): QueryParameter[] {
	if (hasControlCharacter(rawQuery)) refuseQuery("control character");
	if (rawQuery.includes("#")) refuseQuery("fragment");
	const parameters: QueryParameter[] = [];
	for (const pair of rawQuery.split("&")) {
		if (pair === "") continue;
		const equals = pair.indexOf("=");
		const name = equals === -1 ? pair : pair.slice(0, equals);
		if (!PARAMETER_NAME.test(name)) refuseQuery("parameter name outside [A-Za-z0-9_.:-]");
		parameters.push({ name, encodedValue: equals === -1 ? undefined : reencodeQueryValue(pair.slice(equals + 1)) });
	}
	return parameters;
}

/** `patient:Patient`, `subject.name` and `_id:not` all count as naming the parameter they start with. */
function baseName(name: string): string {
	return name.split(/[:.]/, 1)[0] ?? name;
}

function checkBase(fhirBaseUrl: string): URL {
	const base = new URL(fhirBaseUrl);
	if (base.search || base.hash || base.username || base.password) {
		throw new AppError({
			code: "fhir_base_invalid",
			status: 500,
			message: "The FHIR base is misconfigured",
			detail: "base has query, hash or userinfo",
		});
	}
	return base;
}

/**
 * Builds the upstream athena URL for a proxied FHIR request, or throws an
 * `AppError` (400, `fhir_path_refused` / `fhir_query_refused`) for anything
 * that is not a plain read under the FHIR base.
 *
 * `path` is the raw request path after `/fhir/r4` (still percent-encoded, as
 * the client sent it) and `rawQuery` the raw query without `?`. The URL is
 * rebuilt from validated parts and checked again after parsing, so no input
 * can move it off the FHIR base's origin or path.
 *
 * athena's rules applied to searches:
 * - `ah-practice=Organization/a-1.Practice-{practice}` is added when missing,
 *   with its `/` unencoded because athena does not decode it.
 * - On patient-compartment types with no `patient`, `subject` or `_id`, the
 *   session's `patient` is added, so `Observation?category=laboratory` works.
 * - A search naming another patient (or another practice) is passed through
 *   unchanged: athena holds the token's patient compartment and answers 403,
 *   and refusing here would need a second, weaker copy of athena's reference
 *   matching (`Patient/x`, absolute URLs, comma lists, chains).
 *
 * @example
 * outboundFhirRequest("/Observation", "category=laboratory", {
 *   fhirBaseUrl: "https://api.platform.athenahealth.com/fhir/r4",
 *   patient: "a-80000.E-14545",
 *   practice: "80000",
 * });
 * // → { url: "https://api.platform.athenahealth.com/fhir/r4/Observation?category=laboratory
 * //        &ah-practice=Organization/a-1.Practice-80000&patient=a-80000.E-14545",
 * //      interaction: "search-type", resourceType: "Observation" }
 */
export function outboundFhirRequest(path: string, rawQuery: string, context: OutboundContext): OutboundRequest {
	checkPathSafety(path);
	const { interaction, resourceType } = classifyPath(path);
	const parameters = parseQuery(rawQuery);

	if (interaction === "search-type" && resourceType && context.completeSearches !== false) {
		const named = new Set(parameters.map((p) => baseName(p.name)));
		if (!named.has("ah-practice") && context.practice !== undefined) {
			if (!/^\d+$/.test(context.practice)) refuseQuery("session practice is not digits");
			// Literal, not URL-encoded: athena requires the slash as-is.
			parameters.push({ name: "ah-practice", encodedValue: `Organization/a-1.Practice-${context.practice}` });
		}
		const pinned = [...PATIENT_PINNING_PARAMETERS].some((name) => named.has(name));
		if (PATIENT_COMPARTMENT_TYPES.has(resourceType) && !pinned) {
			if (!RESOURCE_ID.test(context.patient)) refuseQuery("session patient is not a FHIR id");
			parameters.push({ name: "patient", encodedValue: context.patient });
		}
	}

	const base = checkBase(context.fhirBaseUrl);
	const basePath = base.pathname.replace(/\/+$/, "");
	const query = parameters
		.map((p) => (p.encodedValue === undefined ? p.name : `${p.name}=${p.encodedValue}`))
		.join("&");
	const built = `${base.origin}${basePath}${path}${query ? `?${query}` : ""}`;

	// Defence in depth: parsing must give back exactly what was built, on the base.
	const parsed = new URL(built);
	if (parsed.href !== built || parsed.origin !== base.origin || !parsed.pathname.startsWith(`${basePath}/`)) {
		refusePath("rebuilt URL left the FHIR base");
	}
	return { url: built, interaction, resourceType };
}
