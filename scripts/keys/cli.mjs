#!/usr/bin/env node
// @ts-check
// `npm run keys -- <command> --env <local|preview|production>`: the app's
// signing keys, from first key to zero-downtime rotation. See README.md,
// "Going live with athena". Run `npm run keys -- help` for the commands.
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";
import { assertEnvironment, loadSettings } from "./config.mjs";
import { KeysError } from "./errors.mjs";
import { isKid } from "./key-material.mjs";
import { init, readPublishedState, rotateActivate, rotateAdd, rotateRetire, status } from "./keys.mjs";
import { liveCheck } from "./live-check.mjs";
import { environmentStore, wranglerProcess } from "./wrangler.mjs";

const USAGE = `Usage: npm run keys -- <command> --env <local|preview|production> [options]

Commands:
  init                      generate the environment's first key, set SIGNING_KEY, publish the JWKS
  rotate add                generate the next key and publish it beside the current one
  rotate activate [--kid=<kid>]
                            make a published key the signer (default: the newest one waiting)
  rotate retire --kid=<kid> unpublish an old key and delete its local private copy
  list | status             published kids, which one signs, when each was published
  live check --url <origin> check a deployed worker the way athena will see it

Options:
  --env <name>        local, preview or production (required)
  --kid=<kid>         the key, as status lists it; --kid <kid> works too. A bare
                      <kid> after the command works only if it does not start
                      with "-" (one kid in 64 does)
  --force             activate/retire before the safe time (failed sign-ins possible)
  --url <origin>      the deployed worker's origin, for live check
  --no-token-call     live check without its one client_credentials token request
                      (it spends one of athena's per-minute token requests)
  --config <path>     wrangler config (default: wrangler.toml)
  --persist-to <dir>  local KV persistence, as for wrangler dev (default: .wrangler/state)
  --keys-dir <dir>    local private copies (default: .keys)
  --dev-vars <path>   local secrets file (default: .dev.vars)`;

/**
 * @typedef {{
 *   cwd?: string,
 *   wrangler?: import("./wrangler.mjs").Wrangler,
 *   fetch?: import("./live-check.mjs").Fetch,
 *   now?: () => number,
 *   out?: (line: string) => void,
 *   err?: (line: string) => void,
 *   settings?: import("./config.mjs").EnvironmentSettings,
 *   env?: NodeJS.ProcessEnv,
 * }} CliDeps
 */

/** The commands that name a key. */
const KID_COMMANDS = ["rotate activate", "rotate retire"];

/**
 * `npm run keys -- ... --kid=<kid>`: the form that works for every kid, so
 * every command this CLI prints uses it. kids are base64url thumbprints, and
 * one in 64 starts with "-", which an argument parser reads as an option.
 * @param {string} command @param {string} kid @param {string} environment
 */
function kidCommand(command, kid, environment) {
	return `npm run keys -- ${command} --kid=${kid} --env ${environment}`;
}

/**
 * parseArgs refuses `--kid -abc…` as ambiguous, since the value looks like an
 * option. A kid is never one of this CLI's options, so a kid-shaped word after
 * a bare `--kid` is joined to it as `--kid=<kid>`.
 * @param {string[]} argv
 */
function joinKidValues(argv) {
	const args = [];
	for (let i = 0; i < argv.length; i++) {
		const arg = /** @type {string} */ (argv[i]);
		const next = argv[i + 1];
		if (arg === "--") {
			args.push(...argv.slice(i));
			break;
		}
		if (arg === "--kid" && next !== undefined && isKid(next)) {
			args.push(`--kid=${next}`);
			i++;
		} else args.push(arg);
	}
	return args;
}

/**
 * Why the arguments did not parse, with the way out when the cause is a kid
 * that starts with "-" given on its own (it reads as an unknown option).
 * @param {unknown} error @param {string[]} argv
 */
function parseProblem(error, argv) {
	const message = error instanceof Error ? error.message : String(error);
	const dashKid = argv.find((arg) => arg.startsWith("-") && isKid(arg));
	return dashKid ? `${message}\nA kid that starts with "-" must be given as --kid=${dashKid}.` : message;
}

/**
 * Runs one CLI invocation and returns its exit code: 0 done, 1 refused or
 * failed (the reason on stderr), 2 bad usage.
 * @param {string[]} argv arguments after `keys`
 * @param {CliDeps} [deps]
 */
export async function run(argv, deps = {}) {
	const out = deps.out ?? ((line) => process.stdout.write(`${line}\n`));
	const err = deps.err ?? ((line) => process.stderr.write(`${line}\n`));
	const cwd = deps.cwd ?? process.cwd();
	let parsed;
	try {
		parsed = parseArgs({
			args: joinKidValues(argv),
			allowPositionals: true,
			options: {
				env: { type: "string" },
				kid: { type: "string" },
				force: { type: "boolean", default: false },
				url: { type: "string" },
				"no-token-call": { type: "boolean", default: false },
				config: { type: "string", default: "wrangler.toml" },
				"persist-to": { type: "string", default: ".wrangler/state" },
				"keys-dir": { type: "string", default: ".keys" },
				"dev-vars": { type: "string", default: ".dev.vars" },
				help: { type: "boolean", default: false },
			},
		});
	} catch (error) {
		err(`${parseProblem(error, argv)}\n\n${USAGE}`);
		return 2;
	}
	const { values, positionals } = parsed;
	const command = positionals.join(" ");
	if (values.help || command === "" || command === "help") {
		out(USAGE);
		return command === "" && !values.help ? 2 : 0;
	}
	const known = /^(init|rotate add|rotate activate( \S+)?|rotate retire( \S+)?|list|status|live check)$/;
	if (!known.test(command)) {
		err(`Unknown command "${command}".\n\n${USAGE}`);
		return 2;
	}
	const [verb, sub, positionalKid] = positionals;
	const named = `${verb} ${sub}`;
	if (values.kid !== undefined && !KID_COMMANDS.includes(named)) {
		err(`--kid applies only to ${KID_COMMANDS.join(" and ")}.\n\n${USAGE}`);
		return 2;
	}
	if (values.kid !== undefined && positionalKid !== undefined && values.kid !== positionalKid) {
		err(`Two different kids given (${positionalKid} and --kid=${values.kid}); name one.\n\n${USAGE}`);
		return 2;
	}
	const kid = values.kid ?? positionalKid;
	try {
		const environment = assertEnvironment(values.env ?? "");
		const configPath = resolve(cwd, values.config);
		const settings = deps.settings ?? (await loadSettings(configPath, environment));
		const processEnv = deps.env ?? process.env;
		const store = environmentStore({
			environment,
			wrangler: deps.wrangler ?? wranglerProcess({ cwd, env: processEnv }),
			configPath,
			persistTo: resolve(cwd, values["persist-to"]),
			devVarsPath: resolve(cwd, values["dev-vars"]),
			hasApiToken: Boolean(processEnv.CLOUDFLARE_API_TOKEN),
		});
		const ctx = {
			settings,
			store,
			keysDir: resolve(cwd, values["keys-dir"]),
			now: deps.now ?? Date.now,
			warn: err,
		};
		if (verb === "init") printInit(out, settings, await init(ctx));
		else if (verb === "rotate" && sub === "add") {
			const added = await rotateAdd(ctx);
			out(`Published key ${added.kid} beside the current one for ${environment}.`);
			out(`Private copy: ${added.keyFile} (0600). It does not sign yet.`);
			out(
				`Activate it after ${added.activatableAt.toISOString()}: ${kidCommand("rotate activate", added.kid, environment)}`,
			);
		} else if (verb === "rotate" && sub === "activate") {
			const activated = await rotateActivate(ctx, { kid, force: values.force });
			out(`Key ${activated.kid} now signs for ${environment} (set as ${activated.secret}).`);
			if (environment === "local") out("A running `npm run dev` reloads with it (wrangler.toml was touched).");
			out(
				`Key ${activated.previousKid} stays published; retire it with: ${kidCommand("rotate retire", activated.previousKid, environment)}`,
			);
		} else if (verb === "rotate" && sub === "retire") {
			const retired = await rotateRetire(ctx, { kid: kid ?? "", force: values.force });
			out(`Key ${retired.kid} is no longer published for ${environment}.`);
			out(
				retired.deletedFile ? `Deleted its private copy ${retired.deletedFile}.` : "No local private copy to delete.",
			);
		} else if (verb === "list" || verb === "status") {
			printStatus(out, await status(ctx), ctx.now());
		} else if (verb === "live") {
			if (!values.url) throw new KeysError("usage", "live check needs --url <the deployed worker's origin>");
			const { meta } = await readPublishedState(ctx);
			const checks = await liveCheck({
				url: values.url,
				settings,
				activeKid: meta?.activeKid,
				fetch: deps.fetch,
				keysDir: ctx.keysDir,
				tokenCall: !values["no-token-call"],
				now: ctx.now,
			});
			for (const check of checks) out(`${check.ok ? "ok  " : "FAIL"}  ${check.name}: ${check.detail}`);
			const failed = checks.filter((c) => !c.ok).length;
			out(failed === 0 ? "All checks passed." : `${failed} check(s) failed.`);
			return failed === 0 ? 0 : 1;
		}
		return 0;
	} catch (error) {
		if (error instanceof KeysError) {
			err(`keys: ${error.message}`);
			return error.code === "usage" ? 2 : 1;
		}
		// Unexpected: the class and message only, never a stack that could hold key material.
		err(`keys: unexpected ${error instanceof Error ? `${error.name}: ${error.message}` : "error"}`);
		return 1;
	}
}

/**
 * @param {(line: string) => void} out
 * @param {import("./config.mjs").EnvironmentSettings} settings
 * @param {Awaited<ReturnType<typeof init>>} result
 */
function printInit(out, settings, result) {
	const env = settings.environment;
	out(`Generated an RSA-2048 key on this machine for ${env}: kid ${result.kid}`);
	out(`  private key → ${result.secret}`);
	out(`  local copy  → ${result.keyFile} (0600, gitignored)`);
	out(`  public key  → ${env}'s JWKS_KV "jwks" (and "jwks-meta")`);
	out("");
	out(`JWKS URL: ${settings.jwksUrl}`);
	out("");
	if (env === "local") {
		out("Local: the sandbox (npm run dev) reads this JWKS; nothing to register.");
		return;
	}
	out(
		`Paste into athena's developer portal (the ${env} app${env === "production" ? ", its own entry, separate from preview" : ""}):`,
	);
	out("  API product:                Certified APIs only, 3-Legged OAuth for Patients");
	out("  Application Type:           Web");
	out(`  Redirect URI:               ${settings.redirectUri}`);
	out(`  JWKS URL:                   ${settings.jwksUrl}`);
	out("  Key algorithm:              RS384 (use: sig)");
	out(`  Key ID (kid):               ${result.kid}`);
	out(`  Scopes:                     ${settings.scopes}`);
	out("");
	out(
		`Then deploy (npx wrangler deploy --env ${env}), put athena's client ID in wrangler.toml [env.${env}.vars] CLIENT_ID,`,
	);
	out(`and check it: npm run keys -- live check --env ${env} --url ${settings.publicOrigin}`);
}

/**
 * @param {(line: string) => void} out
 * @param {Awaited<ReturnType<typeof status>>} result
 * @param {number} now
 */
function printStatus(out, result, now) {
	if (result.keys.length === 0) {
		out(`${result.environment}: no keys published. Run: npm run keys -- init --env ${result.environment}`);
		return;
	}
	out(`${result.environment}: ${result.keys.length} key(s) published at ${result.jwksUrl}`);
	for (const key of result.keys) {
		const role = key.active
			? `SIGNING since ${key.activatedAt}`
			: Date.parse(key.activatableAt) < now
				? "published, ready to activate"
				: `published, can be activated after ${key.activatableAt}`;
		out(`  ${key.kid}  published ${key.publishedAt}  ${role}${key.localCopy ? "" : "  (no local private copy)"}`);
	}
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
	process.exitCode = await run(process.argv.slice(2));
}
