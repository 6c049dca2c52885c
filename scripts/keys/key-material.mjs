// @ts-check
// Key material for the signing-key CLI: generation, public JWKs, RFC 7638
// thumbprints, and the local private-key copies in `.keys/<env>/<kid>.pem`.
// Private keys leave this module only as a PEM string handed to the
// environment's secret store, or as a 0600 file; they are never logged.
import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kidProblem, PRIVATE_MEMBERS, publicSigningJwk } from "../../src/keys/public-jwk.ts";
import { KeysError } from "./errors.mjs";

/** @typedef {import("../../src/keys/public-jwk.ts").PublicSigningJwk} PublicJwk */

export { PRIVATE_MEMBERS };

export const ENVIRONMENTS = /** @type {const} */ (["local", "preview", "production"]);
/** A kid is a base64url SHA-256 thumbprint: 43 characters. Checked before it ever names a file. */
const KID = /^[A-Za-z0-9_-]{43}$/;

/** @param {string} kid */
export function isKid(kid) {
	return KID.test(kid);
}

/**
 * RFC 7638 §3: SHA-256 over `{"e","kty","n"}` with members in lexicographic order.
 * @param {{ n: string, e: string }} jwk
 */
export function rsaThumbprint(jwk) {
	const canonical = JSON.stringify({ e: jwk.e, kty: "RSA", n: jwk.n });
	return createHash("sha256").update(canonical).digest("base64url");
}

/**
 * The public JWK exactly as athena wants it published: RS384, use sig, kid = thumbprint.
 * @param {import("node:crypto").KeyObject} key a private or public RSA key
 * @returns {PublicJwk}
 */
export function publicJwkOf(key) {
	const { n, e } = /** @type {{ n: string, e: string }} */ (createPublicKey(key).export({ format: "jwk" }));
	return { kty: "RSA", n, e, alg: "RS384", use: "sig", kid: rsaThumbprint({ n, e }) };
}

/**
 * A fresh RSA-2048 pair, generated on this machine.
 * @returns {{ privatePem: string, publicJwk: PublicJwk }}
 */
export function generateSigningKey() {
	const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
	const privatePem = privateKey.export({ type: "pkcs8", format: "pem" }).toString().trim();
	return { privatePem, publicJwk: publicJwkOf(privateKey) };
}

/**
 * `entry` rebuilt from its public members, or why it is not an acceptable
 * public signing key (the rules the worker applies too: src/keys/public-jwk.ts).
 * @param {unknown} entry
 * @returns {PublicJwk | string}
 */
export function publishableJwk(entry) {
	const jwk = publicSigningJwk(entry);
	if (typeof jwk === "string") return jwk;
	return kidProblem(jwk, rsaThumbprint(jwk)) ?? jwk;
}

/**
 * Why a published entry is not an acceptable public signing key, or undefined when it is.
 * @param {unknown} entry
 */
export function publicJwkProblem(entry) {
	const jwk = publishableJwk(entry);
	return typeof jwk === "string" ? jwk : undefined;
}

/** @param {string} keysDir @param {string} environment */
export function keyFolder(keysDir, environment) {
	return join(keysDir, environment);
}

/** @param {string} keysDir @param {string} environment @param {string} kid */
export function keyPath(keysDir, environment, kid) {
	if (!isKid(kid)) throw new KeysError("bad_kid", `"${kid}" is not a kid (a 43-character RFC 7638 thumbprint)`);
	return join(keysDir, environment, `${kid}.pem`);
}

/**
 * Kids of the private copies kept for one environment.
 * @param {string} keysDir @param {string} environment
 */
export function localKids(keysDir, environment) {
	const folder = keyFolder(keysDir, environment);
	if (!existsSync(folder)) return [];
	return readdirSync(folder)
		.filter((name) => name.endsWith(".pem"))
		.map((name) => name.slice(0, -4))
		.filter(isKid);
}

/**
 * Writes the local private copy: folder 0700, file 0600, never overwriting.
 * The header names the environment and kid, so a file moved to another
 * environment's folder is recognised and refused.
 * @param {string} keysDir @param {string} environment @param {string} kid @param {string} privatePem @param {Date} createdAt
 */
export function writeKeyFile(keysDir, environment, kid, privatePem, createdAt) {
	const path = keyPath(keysDir, environment, kid);
	mkdirSync(keysDir, { recursive: true, mode: 0o700 });
	chmodSync(keysDir, 0o700);
	mkdirSync(keyFolder(keysDir, environment), { recursive: true, mode: 0o700 });
	chmodSync(keyFolder(keysDir, environment), 0o700);
	const header = [
		`# athena-edge-connector signing key. environment=${environment} kid=${kid} created=${createdAt.toISOString()}`,
		"# Private: never commit or share it. The worker's copy is this environment's SIGNING_KEY secret.",
	].join("\n");
	writeFileSync(path, `${header}\n${privatePem}\n`, { mode: 0o600, flag: "wx" });
	chmodSync(path, 0o600);
	return path;
}

/**
 * Reads a local private copy and proves it belongs to `environment` and is `kid`:
 * its folder, its header and its own thumbprint must all agree, and no other
 * environment may hold the same key.
 * @param {string} keysDir @param {string} environment @param {string} kid
 * @returns {{ privatePem: string, path: string }}
 */
export function readKeyFile(keysDir, environment, kid) {
	const path = keyPath(keysDir, environment, kid);
	for (const other of ENVIRONMENTS) {
		if (other !== environment && existsSync(keyPath(keysDir, other, kid))) {
			throw new KeysError(
				"environment_mismatch",
				`Key ${kid} is also stored for the ${other} environment (${keyPath(keysDir, other, kid)}). A key belongs to one environment only; refusing to use it for ${environment}.`,
			);
		}
	}
	if (!existsSync(path)) {
		throw new KeysError(
			"key_file_missing",
			`No private copy of key ${kid} for ${environment} at ${path}. Keys are generated by \`npm run keys -- rotate add --env ${environment}\` on the machine that keeps .keys/.`,
		);
	}
	const text = readFileSync(path, "utf8");
	const header = /environment=(\S+) kid=(\S+)/.exec(text);
	if (!header || header[1] !== environment || header[2] !== kid) {
		throw new KeysError(
			"environment_mismatch",
			`${path} is not marked as ${environment} key ${kid}${header ? ` (it says environment=${header[1]} kid=${header[2]})` : ""}; refusing to use it.`,
		);
	}
	const block = /-----BEGIN PRIVATE KEY-----[\s\S]*?-----END PRIVATE KEY-----/.exec(text);
	let derivedKid;
	try {
		derivedKid = block ? publicJwkOf(createPrivateKey(block[0])).kid : undefined;
	} catch {
		derivedKid = undefined;
	}
	if (!block || derivedKid === undefined) {
		throw new KeysError("key_file_invalid", `${path} does not hold a readable PKCS#8 RSA private key.`);
	}
	if (derivedKid !== kid) {
		throw new KeysError("key_file_invalid", `${path} holds a different key than its name says (${derivedKid}).`);
	}
	return { privatePem: block[0], path };
}

/** @param {string} keysDir @param {string} environment @param {string} kid */
export function deleteKeyFile(keysDir, environment, kid) {
	const path = keyPath(keysDir, environment, kid);
	if (!existsSync(path)) return undefined;
	rmSync(path);
	return path;
}
