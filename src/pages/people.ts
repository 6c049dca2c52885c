import { type RecordOutcome, UNNAMED } from "./read-record";

/** One connection of a session as the record page shows it. */
export interface ConnectionPart {
	connectionId: string;
	/** The server's patient id. */
	patient: string;
	/** athena's practice id; other servers: none. */
	practice: string | undefined;
	/** Who holds the record ("athenahealth", or another server's host): the label when there is no practice. */
	server: string;
	/** The SMART_SERVERS id of its server, where connecting it again starts; absent: the environment's athena. */
	serverId?: string | undefined;
	/** Its record, or the state that stands in its way (`signed_out` never reaches the page). */
	outcome: Exclude<RecordOutcome, { state: "signed_out" }>;
}

/** A person on the record page: their name and every connected record of theirs. */
export interface Person {
	name: string;
	parts: ConnectionPart[];
}

/**
 * A record's owner as far as the page can tell: the name and birth date read
 * from it (the same person at two practices has two patient ids, one a
 * practice); a record that could not be read stands alone under its patient id.
 */
function personKey(part: ConnectionPart): { key: string; name: string } {
	if (part.outcome.state !== "record") return { key: `id:${part.patient}`, name: `Record ${part.patient}` };
	const { name, birthDate } = part.outcome.record;
	// Without both a name and a birth date, records are not taken to be one person's.
	if (!birthDate || name === UNNAMED) return { key: `id:${part.patient}`, name };
	return { key: `person:${name}|${birthDate}`, name };
}

/**
 * The session's connections grouped by person, in the order they were
 * connected (the first connection's person first), each person's records in
 * that order too.
 *
 * @example
 * groupByPerson([jakeAt80000, lily, jakeAt195900]); // [{ name: "Jake Medlock", parts: [2] }, { name: "Lily Medlock", parts: [1] }]
 */
export function groupByPerson(parts: readonly ConnectionPart[]): Person[] {
	const people = new Map<string, Person>();
	for (const part of parts) {
		const { key, name } = personKey(part);
		const person = people.get(key) ?? { name, parts: [] };
		person.parts.push(part);
		people.set(key, person);
	}
	return [...people.values()];
}
