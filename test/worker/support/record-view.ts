import type { RecordView } from "../../../src/pages/read-record";

/** A section that was read and holds nothing. */
export const EMPTY_SECTION = { ok: true as const, items: [], more: false };

/** A record read whole with every section empty, for page tests to fill in what they look at. */
export function emptyRecord(who: Pick<RecordView, "patientId" | "name" | "birthDate" | "practiceId">): RecordView {
	return {
		...who,
		practiceName: undefined,
		problems: EMPTY_SECTION,
		medications: EMPTY_SECTION,
		allergies: EMPTY_SECTION,
		labs: EMPTY_SECTION,
		vitals: EMPTY_SECTION,
		reports: EMPTY_SECTION,
		encounters: EMPTY_SECTION,
		documents: EMPTY_SECTION,
		immunizations: EMPTY_SECTION,
	};
}
