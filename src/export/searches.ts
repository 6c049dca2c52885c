import { PATIENT_COMPARTMENT_TYPES } from "../fhir/outbound-url";
import { readableTypes, readGrant } from "../oauth/scopes";

/**
 * The patient-compartment types an export searches, in the order the file
 * lists them: the proxy's list of athena's patient-access types searched by
 * patient (src/fhir/outbound-url.ts). Binary is read by reference only,
 * Provenance needs `target`, and Organization, Practitioner, Location and
 * Medication belong to the practice, not the patient, so none of those is
 * searched.
 */
export const EXPORT_TYPES: readonly string[] = [...PATIENT_COMPARTMENT_TYPES];

/**
 * Every MedicationRequest intent (FHIR R4 medicationrequest-intent): athena
 * refuses a MedicationRequest search without `intent` (athena-observed.md),
 * and naming them all asks for the whole list.
 */
const ALL_INTENTS = "proposal,plan,order,original-order,reflex-order,filler-order,instance-order,option";

/** Page size asked for: athena honours at least 50; fewer pages mean fewer requests against its rate limits. */
export const EXPORT_PAGE_SIZE = 100;

/** One search of an export: the type, and its raw query (no `?`). */
export interface ExportSearch {
	type: string;
	query: string;
}

export interface ExportPlan {
	/** Whether the granted scopes let the Patient resource itself be read. */
	readsPatient: boolean;
	searches: ExportSearch[];
	/** Types of EXPORT_TYPES the scopes do not cover: not asked for, and named in the file's last entry. */
	notShared: string[];
}

/**
 * What an export of `patient`'s record asks for, given the granted scopes
 * (undefined: the session predates kept scopes, so ask for everything and let
 * the server refuse what it will). Every search names the patient and the
 * page size; MedicationRequest names every intent, which athena requires and
 * any other server accepts.
 *
 * @example
 * exportPlan("a-80000.E-14545", ["patient/Condition.read", "patient/Patient.read"]);
 * // { readsPatient: true, searches: [{ type: "Condition", query: "patient=a-80000.E-14545&_count=100" }], notShared: [...14 types] }
 */
export function exportPlan(patient: string, scopes: readonly string[] | undefined): ExportPlan {
	const all = scopes === undefined || readableTypes(scopes) === "all";
	const searchable = (type: string) => all || readGrant(scopes ?? [], type).search;
	const patientParam = `patient=${encodeURIComponent(patient)}`;
	const searches = EXPORT_TYPES.filter(searchable).map((type) => ({
		type,
		query:
			type === "MedicationRequest"
				? `${patientParam}&intent=${ALL_INTENTS}&_count=${EXPORT_PAGE_SIZE}`
				: `${patientParam}&_count=${EXPORT_PAGE_SIZE}`,
	}));
	return {
		readsPatient: all || readGrant(scopes ?? [], "Patient").read,
		searches,
		notShared: EXPORT_TYPES.filter((type) => !searchable(type)),
	};
}
