/*
 * The sandbox's test logins and the health records each can open, defined
 * once: the sign-in and "Select a health record" pages, `/_sandbox/patients`,
 * the clinical data (data.ts looks a record up by its patient id) and the
 * test suites (the sandbox's, the worker's and the browser's) all take them
 * from here. The people are fictional.
 *
 * At athena a login is not a patient: after the (Okta) login page, athena
 * shows "Select a health record", where the person picks whose record to
 * share and at which practice (their own, at each practice that knows them,
 * or a dependent's). The token response's `patient` is the picked record's
 * id, `a-{practice}.E-{enterprise id}` (shared/athena-observed.md). An
 * enterprise id is per practice, so the same person has a different id at
 * each practice.
 */

/** A login at athena's sign-in page. */
export interface TestLogin {
	readonly username: string;
	readonly password: string;
}

/** One entry of a login's "Select a health record" page. */
export interface HealthRecord {
	/** athena's patient id, `a-{practice}.E-{enterprise id}`: the token response's `patient`. */
	readonly patient: string;
	/** The practice id inside `patient`. */
	readonly practice: string;
	/** The person's current name, as the picker shows it ("(you)" is added for `self`). */
	readonly display: string;
	readonly given: string;
	readonly family: string;
	/** `self`: the login's own record; `dependent`: someone the login may act for (a child). */
	readonly relationship: "self" | "dependent";
	/** The `username` of the login that can open this record. */
	readonly login: string;
}

/** The preview login athena documents (shared/athena-observed.md: practice 80000, "Jake Medlock (you)"). */
const PREVIEW_LOGIN: TestLogin = { username: "phrtest_preview@mailinator.com", password: "Password1" };
/** A second, unrelated login at another practice, for isolation tests. */
const SECOND_LOGIN: TestLogin = { username: "sandbox_second@mailinator.com", password: "Password2" };
/** A third login whose one record is very large (LARGE_RECORD), for the record export and its benchmark. */
const LARGE_LOGIN: TestLogin = { username: "sandbox_large@mailinator.com", password: "Password3" };

export const LOGINS: readonly TestLogin[] = [PREVIEW_LOGIN, SECOND_LOGIN, LARGE_LOGIN];

/**
 * The large test record: an ordinary chart plus `generatedObservations`
 * lab and vital-sign Observations made by index on demand (never held), read
 * through the sandbox's normal searches and cursor paging. The counts are
 * what the searches `?patient=<id>` (every page; MedicationRequest with every
 * intent) return in all, per type: the sandbox's tests hold the chart to
 * them, and the worker's export tests and the bench assert against them.
 */
export const LARGE_RECORD = {
	patient: "a-80000.E-17000",
	generatedObservations: 110_000,
	searchCounts: {
		AllergyIntolerance: 4,
		CarePlan: 1,
		CareTeam: 1,
		Condition: 40,
		Coverage: 1,
		Device: 5,
		DiagnosticReport: 46,
		DocumentReference: 22,
		Encounter: 12,
		Goal: 10,
		Immunization: 4,
		MedicationRequest: 5,
		Observation: 110_491,
		Procedure: 6,
		ServiceRequest: 1,
	},
	/** The Observation search split by `category` (the codes sum to `searchCounts.Observation`). */
	observationCategories: { laboratory: 71_919, "vital-signs": 38_570, "social-history": 2 },
} as const;

/** Every resource an export of the large record holds: its Patient plus everything its searches return. */
export const LARGE_RECORD_RESOURCES: number =
	1 + Object.values(LARGE_RECORD.searchCounts).reduce((sum: number, count: number) => sum + count, 0);

/** Every record a test login can open, in the order its picker lists them. */
export const RECORDS: readonly HealthRecord[] = [
	{
		patient: "a-80000.E-14545",
		practice: "80000",
		display: "Jake Medlock",
		given: "Jake",
		family: "Medlock",
		relationship: "self",
		login: PREVIEW_LOGIN.username,
	},
	{
		// The same person as a patient of a second practice: another enterprise id.
		patient: "a-195900.E-5112",
		practice: "195900",
		display: "Jake Medlock",
		given: "Jake",
		family: "Medlock",
		relationship: "self",
		login: PREVIEW_LOGIN.username,
	},
	{
		patient: "a-80000.E-14600",
		practice: "80000",
		display: "Lily Medlock",
		given: "Lily",
		family: "Medlock",
		relationship: "dependent",
		login: PREVIEW_LOGIN.username,
	},
	{
		patient: "a-195900.E-3001",
		practice: "195900",
		display: "Rowan Fixturepatient",
		given: "Rowan",
		family: "Fixturepatient",
		relationship: "self",
		login: SECOND_LOGIN.username,
	},
	{
		patient: LARGE_RECORD.patient,
		practice: "80000",
		display: "Avery Longchart",
		given: "Avery",
		family: "Longchart",
		relationship: "self",
		login: LARGE_LOGIN.username,
	},
];

const sameUsername = (a: string, b: string) => a.trim().toLowerCase() === b.trim().toLowerCase();

/** The login with this username (Okta usernames are case-insensitive). */
export function findLogin(username: string): TestLogin | undefined {
	return LOGINS.find((login) => sameUsername(login.username, username));
}

/** The records the login's picker offers, in order. */
export function recordsFor(username: string): HealthRecord[] {
	return RECORDS.filter((record) => sameUsername(record.login, username));
}

/** The record with this patient id. */
export function findRecord(patient: string): HealthRecord | undefined {
	return RECORDS.find((record) => record.patient === patient);
}

/** A login together with one record it can open: the shape most tests sign in with. */
export interface TestUser {
	/** The record's patient id, `a-{practice}.E-{enterprise id}`. */
	readonly id: string;
	readonly practiceId: string;
	readonly username: string;
	readonly password: string;
	readonly given: string;
	readonly family: string;
}

function testUser(patient: string): TestUser {
	const record = findRecord(patient);
	const login = record && findLogin(record.login);
	if (!record || !login) throw new Error(`no test record ${patient}`);
	return {
		id: record.patient,
		practiceId: record.practice,
		username: login.username,
		password: login.password,
		given: record.given,
		family: record.family,
	};
}

/** The preview login with its own record at practice 80000. */
export const JAKE: TestUser = testUser("a-80000.E-14545");
/** The preview login with Jake's record at the second practice. */
export const JAKE_SECOND_PRACTICE: TestUser = testUser("a-195900.E-5112");
/** The preview login with the dependent's record (Jake's child). */
export const LILY: TestUser = testUser("a-80000.E-14600");
/** The second login with its one record. */
export const ROWAN: TestUser = testUser("a-195900.E-3001");
/** The third login with its one, very large record (LARGE_RECORD). */
export const AVERY: TestUser = testUser(LARGE_RECORD.patient);

/**
 * The preview login's own record under its older name here (the record was
 * "Jane Testpatient" before the sandbox followed athena's recorded data).
 * @deprecated use {@link JAKE}.
 */
export const JANE: TestUser = JAKE;
