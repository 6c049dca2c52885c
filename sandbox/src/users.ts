/*
 * The sandbox's test logins, defined once: the clinical data (data.ts), the
 * sign-in page, `/_sandbox/patients` and the test suites (the sandbox's, the
 * worker's and the browser's) all take them from here. The people are
 * fictional.
 */

export interface TestUser {
	/** athena's patient id, `a-{practice}.E-{enterprise id}`. */
	readonly id: string;
	readonly practiceId: string;
	readonly username: string;
	readonly password: string;
	readonly given: string;
	readonly family: string;
}

/** The preview login athena documents (practice 80000; shared/athena-reference.md). */
export const JANE: TestUser = {
	id: "a-80000.E-14545",
	practiceId: "80000",
	username: "phrtest_preview@mailinator.com",
	password: "Password1",
	given: "Jane",
	family: "Testpatient",
};

/** A second patient at another practice, for isolation tests. */
export const ROWAN: TestUser = {
	id: "a-195900.E-3001",
	practiceId: "195900",
	username: "sandbox_second@mailinator.com",
	password: "Password2",
	given: "Rowan",
	family: "Fixturepatient",
};
