#!/usr/bin/env node
// Prints the SCOPES value the worker should request, from the scopes ticked
// on athena's developer portal, and the wrangler.toml lines to set it.
//
//   node tools/athena-scopes/scope-string.mjs [--v1 | --v2] [--plain] [FILE]
//
// FILE (or stdin when absent or "-") holds scopes one per line, separated by
// whitespace or commas, or the JSON of window.__athenaScopeResults.
import { readFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { parseScopeInput, ScopeInputError, selectScopes } from "./scopes.mjs";

const USAGE = `usage: scope-string.mjs [--v1 | --v2] [--plain] [FILE]

Reads the scopes ticked on athena's developer portal from FILE (or stdin):
one per line, whitespace/comma separated, or the JSON of
window.__athenaScopeResults. Prints the SCOPES value the worker requests:
openid fhirUser offline_access launch/patient plus patient/<Resource> read
scopes of one SMART version. Dropped scopes are listed on stderr.

  --v1     keep SMART v1 scopes, patient/<Resource>.read (default)
  --v2     keep SMART v2 scopes, patient/<Resource>.rs, .r or .s
  --plain  print only the scope string
  -h, --help`;

// wrangler does not inherit [vars] into [env.*], so each table needs the line.
const TABLES = [
	["[vars]", "local development against the sandbox"],
	["[env.preview.vars]", "athena preview"],
	["[env.production.vars]", "athena production"],
];

function fail(message, exitCode) {
	process.stderr.write(`scope-string: ${message}\n`);
	process.exit(exitCode);
}

const OPTIONS = {
	v1: { type: "boolean" },
	v2: { type: "boolean" },
	plain: { type: "boolean" },
	help: { type: "boolean", short: "h" },
};

function parseArguments(argv) {
	// Not strict, so an unknown option is reported in this tool's own words, by name.
	const { values, positionals, tokens } = parseArgs({
		args: argv,
		options: OPTIONS,
		allowPositionals: true,
		strict: false,
		tokens: true,
	});
	for (const token of tokens) {
		if (token.kind !== "option") continue;
		if (!Object.hasOwn(OPTIONS, token.name)) fail(`unknown option ${token.rawName}\n${USAGE}`, 2);
		if (token.value !== undefined) fail(`${token.rawName} takes no value\n${USAGE}`, 2);
	}
	if (values.help) {
		process.stdout.write(`${USAGE}\n`);
		process.exit(0);
	}
	if (values.v1 && values.v2) fail("choose one of --v1 and --v2", 2);
	if (positionals.length > 1) fail("give at most one input file", 2);
	return { version: values.v2 ? "v2" : "v1", plain: values.plain === true, file: positionals[0] };
}

function readInput(file) {
	if ((file === undefined || file === "-") && process.stdin.isTTY) {
		fail(`no input: pipe the ticked scopes in or name a file\n${USAGE}`, 2);
	}
	try {
		return readFileSync(file === undefined || file === "-" ? 0 : file, "utf8");
	} catch (error) {
		fail(`cannot read ${file ?? "stdin"}: ${error.message}`, 1);
	}
}

const args = parseArguments(process.argv.slice(2));
let selection;
try {
	selection = selectScopes(parseScopeInput(readInput(args.file)), {
		version: args.version,
	});
} catch (error) {
	if (error instanceof ScopeInputError) fail(error.message, 1);
	throw error;
}

const { kept, dropped } = selection;
if (dropped.length > 0) {
	const width = Math.max(...dropped.map((d) => d.scope.length));
	process.stderr.write(
		`dropped ${dropped.length} scope(s) the worker does not request:\n${dropped
			.map((d) => `  ${d.scope.padEnd(width)}  ${d.reason}`)
			.join("\n")}\n`,
	);
}
const resourceCount = kept.length - 4;
if (resourceCount === 0) {
	fail(
		`none of the input scopes is a SMART ${args.version} patient read scope (patient/<Resource>.${args.version === "v1" ? "read" : "rs"}); tick the "FHIR R4 SMART ${args.version.toUpperCase()}" product, or pass ${args.version === "v1" ? "--v2" : "--v1"}`,
		1,
	);
}

const value = kept.join(" ");
if (args.plain) {
	process.stdout.write(`${value}\n`);
} else {
	const line = `SCOPES = ${JSON.stringify(value)}`;
	process.stdout.write(
		`${value}\n\n# ${resourceCount} SMART ${args.version} patient scope(s). In wrangler.toml, replace the SCOPES line in each table, then redeploy:\n${TABLES.map(
			([table, note]) => `\n# ${note}\n${table}\n${line}\n`,
		).join("")}`,
	);
}
