import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import {
	BASE_SCOPES,
	parseScopeInput,
	ScopeInputError,
	selectScopes,
	toScopeString,
} from "../../tools/athena-scopes/scopes.mjs";

const CLI = new URL("../../tools/athena-scopes/scope-string.mjs", import.meta.url).pathname;
const TICKED_FILE = new URL("./fixtures/ticked-scopes.txt", import.meta.url).pathname;
const BASE = BASE_SCOPES.join(" ");

function runCli(args: string[], input = "") {
	const result = spawnSync(process.execPath, [CLI, ...args], {
		input,
		encoding: "utf8",
		timeout: 20_000,
	});
	if (result.error) throw result.error;
	return result;
}

describe("toScopeString", () => {
	it("starts with the launch scopes in a fixed order, then patient read scopes by resource", () => {
		expect(toScopeString(["patient/Patient.read", "patient/AllergyIntolerance.read", "patient/Observation.read"])).toBe(
			`${BASE} patient/AllergyIntolerance.read patient/Observation.read patient/Patient.read`,
		);
	});

	it("keeps the launch scopes in front even when the input lists them elsewhere", () => {
		expect(toScopeString(["patient/Patient.read", "launch/patient", "offline_access", "openid", "fhirUser"])).toBe(
			`${BASE} patient/Patient.read`,
		);
	});

	it("removes duplicates", () => {
		expect(toScopeString(["patient/Patient.read", "patient/Patient.read", "openid", "openid"])).toBe(
			`${BASE} patient/Patient.read`,
		);
	});

	it("gives the same string whatever the input order", () => {
		const scopes = [
			"patient/Observation.read",
			"patient/Condition.read",
			"patient/Patient.read",
			"patient/Binary.read",
		];
		expect(toScopeString([...scopes].reverse())).toBe(toScopeString(scopes));
	});

	it("keeps only SMART v2 read/search scopes with version v2", () => {
		expect(
			toScopeString(
				[
					"patient/Patient.rs",
					"patient/Observation.r",
					"patient/Condition.s",
					"patient/Patient.read",
					"patient/Encounter.cruds",
				],
				{ version: "v2" },
			),
		).toBe(`${BASE} patient/Condition.s patient/Observation.r patient/Patient.rs`);
	});

	it("returns only the launch scopes when nothing usable was ticked", () => {
		expect(toScopeString(["user/Patient.read"])).toBe(BASE);
	});
});

describe("selectScopes", () => {
	it("drops other products' scopes and says why", () => {
		const { kept, dropped } = selectScopes([
			"patient/Patient.read",
			"user/Patient.read",
			"system/Group.read",
			"athena/service/Athenanet.MDP.1",
			"athena/dstu2/Patient.read",
			"patient/Patient.write",
			"patient/*.read",
			"patient/Patient.rs",
		]);
		expect(kept).toEqual([...BASE_SCOPES, "patient/Patient.read"]);
		expect(dropped).toEqual([
			{ scope: "user/Patient.read", reason: "not a patient-context scope" },
			{ scope: "system/Group.read", reason: "not a patient-context scope" },
			{
				scope: "athena/service/Athenanet.MDP.1",
				reason: "not a SMART patient scope (another product)",
			},
			{
				scope: "athena/dstu2/Patient.read",
				reason: "not a SMART patient scope (another product)",
			},
			{ scope: "patient/Patient.write", reason: "write access is not used" },
			{ scope: "patient/*.read", reason: "wildcard or malformed resource" },
			{ scope: "patient/Patient.rs", reason: "SMART v2 scope; pass --v2" },
		]);
	});

	it("refuses text that is not an OAuth scope", () => {
		expect(() => selectScopes(["patient/Patient.read", "│"])).toThrow(expect.objectContaining({ code: "not_a_scope" }));
	});

	it("refuses an unknown SMART version", () => {
		// @ts-expect-error: checking the runtime guard for JavaScript callers
		expect(() => selectScopes([], { version: "v3" })).toThrow(ScopeInputError);
	});
});

describe("parseScopeInput", () => {
	it("splits on newlines, spaces and commas", () => {
		expect(parseScopeInput("a/b.read\nc/d.read, e/f.read\t g/h.read\n")).toEqual([
			"a/b.read",
			"c/d.read",
			"e/f.read",
			"g/h.read",
		]);
	});

	it("reads checkedScopes from the helper's results JSON", () => {
		const results = {
			dryRun: false,
			products: [],
			checkedScopes: ["patient/Patient.read", "user/Patient.read"],
		};
		expect(parseScopeInput(JSON.stringify(results))).toEqual(["patient/Patient.read", "user/Patient.read"]);
	});

	it("reads a JSON array of scopes", () => {
		expect(parseScopeInput('["patient/Patient.read"]')).toEqual(["patient/Patient.read"]);
	});

	it.each([
		["", "empty_input"],
		["{not json", "invalid_json"],
		['{"products": []}', "unknown_json"],
		["[1, 2]", "unknown_json"],
	])("rejects %j with code %s", (text, code) => {
		expect(() => parseScopeInput(text)).toThrow(expect.objectContaining({ code }));
	});
});

describe("scope-string command", () => {
	it("prints the scope string and a SCOPES line for each wrangler.toml vars table", () => {
		const { status, stdout } = runCli([TICKED_FILE]);
		const expected = `${BASE} patient/Condition.read patient/Observation.read patient/Patient.read`;
		expect(status).toBe(0);
		expect(stdout.split("\n")[0]).toBe(expected);
		for (const table of ["[vars]", "[env.preview.vars]", "[env.production.vars]"]) {
			expect(stdout).toContain(`${table}\nSCOPES = "${expected}"\n`);
		}
	});

	it("lists dropped scopes on stderr, not stdout", () => {
		const { status, stdout, stderr } = runCli([TICKED_FILE]);
		expect(status).toBe(0);
		expect(stderr).toContain("dropped 4 scope(s)");
		for (const scope of [
			"user/Observation.read",
			"system/Group.read",
			"athena/service/Athenanet.MDP.1",
			"patient/Encounter.rs",
		]) {
			expect(stderr).toContain(scope);
			expect(stdout).not.toContain(scope);
		}
	});

	it("reads stdin and keeps SMART v2 scopes with --v2", () => {
		const { status, stdout } = runCli(["--v2", "--plain"], "patient/Patient.rs\npatient/Patient.read\n");
		expect(status).toBe(0);
		expect(stdout).toBe(`${BASE} patient/Patient.rs\n`);
	});

	it("reads the helper's results JSON from stdin", () => {
		const results = {
			checkedScopes: ["patient/Observation.read", "user/Patient.read"],
		};
		const { status, stdout } = runCli(["--plain"], JSON.stringify(results));
		expect(status).toBe(0);
		expect(stdout).toBe(`${BASE} patient/Observation.read\n`);
	});

	it("fails with a clear message on empty input", () => {
		const { status, stdout, stderr } = runCli([], "");
		expect(status).toBe(1);
		expect(stdout).toBe("");
		expect(stderr).toContain("no scopes in the input");
	});

	it("fails when no scope of the chosen version was ticked", () => {
		const { status, stdout, stderr } = runCli([], "user/Patient.read\n");
		expect(status).toBe(1);
		expect(stdout).toBe("");
		expect(stderr).toContain("none of the input scopes is a SMART v1");
	});

	it("fails on JSON it does not understand", () => {
		const { status, stderr } = runCli([], '{"hello": "world"}');
		expect(status).toBe(1);
		expect(stderr).toContain("__athenaScopeResults");
	});

	it("fails on an unknown option with usage and exit code 2", () => {
		const { status, stderr } = runCli(["--v3"], "patient/Patient.read");
		expect(status).toBe(2);
		expect(stderr).toContain("unknown option --v3");
		expect(stderr).toContain("usage:");
	});

	it("fails on a missing input file", () => {
		const { status, stderr } = runCli(["/nonexistent/scopes.txt"]);
		expect(status).toBe(1);
		expect(stderr).toContain("cannot read /nonexistent/scopes.txt");
	});
});
