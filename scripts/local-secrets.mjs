// Makes the throwaway local secrets `wrangler dev` reads from .dev.vars: an
// RSA-2048 signing key and a session-encryption key, generated on this
// machine the first time and never committed (.dev.vars is gitignored).
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { chmodSync, existsSync, readFileSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { parseArgs } from "node:util";

const NEEDED = ["SIGNING_KEY", "SESSION_ENCRYPTION_KEYS"];

function parseDevVars(text) {
	const names = new Set();
	for (const line of text.split("\n")) {
		const match = /^\s*([A-Z0-9_]+)\s*=/.exec(line);
		if (match) names.add(match[1]);
	}
	return names;
}

/** Ensures `path` defines every local secret; returns the names it added. */
export function ensureLocalSecrets(path = ".dev.vars") {
	const existing = existsSync(path) ? readFileSync(path, "utf8") : "";
	const present = parseDevVars(existing);
	const lines = [];
	if (!present.has("SIGNING_KEY")) {
		const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
		const pem = privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim();
		lines.push(`SIGNING_KEY="${pem.split("\n").join("\\n")}"`);
	}
	if (!present.has("SESSION_ENCRYPTION_KEYS")) {
		lines.push(`SESSION_ENCRYPTION_KEYS="v1:${randomBytes(32).toString("base64")}"`);
	}
	if (lines.length > 0) {
		const header = existing ? "" : "# Throwaway local secrets made by `npm run dev`. Never commit this file.\n";
		const separator = existing && !existing.endsWith("\n") ? "\n" : "";
		writeFileSync(path, `${existing}${separator}${header}${lines.join("\n")}\n`, { mode: 0o600 });
		chmodSync(path, 0o600);
	}
	return NEEDED.filter((name) => !present.has(name));
}

const USAGE = "usage: node scripts/local-secrets.mjs [FILE]   (FILE defaults to .dev.vars)";

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
	let file;
	try {
		const { positionals } = parseArgs({ args: process.argv.slice(2), allowPositionals: true });
		if (positionals.length > 1) throw new Error("give at most one file");
		[file] = positionals;
	} catch (error) {
		console.error(`local-secrets: ${error instanceof Error ? error.message : error}\n${USAGE}`);
		process.exit(2);
	}
	const added = ensureLocalSecrets(file);
	console.log(added.length ? `generated local ${added.join(", ")}` : "local secrets present");
}
