import { describe, expect, it } from "vitest";
import { type ConnectionPart, groupByPerson } from "../../src/pages/people";
import { type RecordView, UNNAMED } from "../../src/pages/read-record";
import { peoplePage } from "../../src/pages/record";
import { emptyRecord } from "./support/record-view";

function record(patientId: string, name: string, birthDate: string | undefined, practiceId: string): RecordView {
	return emptyRecord({ patientId, name, birthDate, practiceId });
}

function part(id: string, view: RecordView): ConnectionPart {
	const { patientId: patient, practiceId: practice } = view;
	return { connectionId: id, patient, practice, server: "athenahealth", outcome: { state: "record", record: view } };
}

describe("the people of a record page", () => {
	it("puts one person's records at two practices together, in the order they were connected", () => {
		const jake = part("aaaaaaaa", record("a-80000.E-14545", "Jake Medlock", "1952-01-28", "80000"));
		const lily = part("bbbbbbbb", record("a-80000.E-14600", "Lily Medlock", "2015-04-02", "80000"));
		const jakeElsewhere = part("cccccccc", record("a-195900.E-5112", "Jake Medlock", "1952-01-28", "195900"));
		const people = groupByPerson([jake, lily, jakeElsewhere]);
		expect(people.map((p) => [p.name, p.parts.map((x) => x.connectionId)])).toEqual([
			["Jake Medlock", ["aaaaaaaa", "cccccccc"]],
			["Lily Medlock", ["bbbbbbbb"]],
		]);
	});

	it("keeps two people of the same name apart by birth date, and a record it could not read on its own", () => {
		const father = part("aaaaaaaa", record("a-1.E-1", "Sam Lee", "1960-01-01", "1"));
		const son = part("bbbbbbbb", record("a-1.E-2", "Sam Lee", "1990-01-01", "1"));
		const revoked: ConnectionPart = {
			connectionId: "cccccccc",
			patient: "a-1.E-3",
			practice: "1",
			server: "athenahealth",
			outcome: { state: "revoked" },
		};
		const people = groupByPerson([father, son, revoked]);
		expect(people.map((p) => p.parts.length)).toEqual([1, 1, 1]);
		expect(people[2]?.name).toBe("Record a-1.E-3");
	});

	it("renders each person once with their records labelled by practice, names escaped", async () => {
		const hostile = part("aaaaaaaa", record("a-80000.E-1", "Ada <b>Example</b>", "1980-02-03", "80000"));
		const other = part("bbbbbbbb", record("a-195900.E-2", "Ada <b>Example</b>", "1980-02-03", "195900"));
		const page = String(await peoplePage(groupByPerson([hostile, other])));
		expect(page).not.toContain("<b>Example</b>");
		expect(page.match(/<section class="person"/g)).toHaveLength(1);
		expect([...page.matchAll(/<h3 id="connection-[^"]+">([^<]+)<\/h3>/g)].map((m) => m[1])).toEqual([
			"Practice 80000",
			"Practice 195900",
		]);
	});

	it("keeps records apart that lack a birth date or a name, however alike they read", () => {
		const one = part("aaaaaaaa", record("a-80000.E-1", "Ada Example", undefined, "80000"));
		const two = part("bbbbbbbb", record("a-195900.E-2", "Ada Example", undefined, "195900"));
		const unnamedA = part("cccccccc", record("a-80000.E-3", UNNAMED, "2001-01-01", "80000"));
		const unnamedB = part("dddddddd", record("a-80000.E-4", UNNAMED, "2001-01-01", "80000"));
		expect(groupByPerson([one, two, unnamedA, unnamedB]).map((p) => p.parts.length)).toEqual([1, 1, 1, 1]);
	});
});
