import { createPrivateKey, generateKeyPairSync } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type EnvironmentSettings, settingsFrom } from "../../scripts/keys/config.mjs";
import { type PublicJwk, publicJwkOf, rsaThumbprint } from "../../scripts/keys/key-material.mjs";
import type { KeysContext } from "../../scripts/keys/keys.mjs";
import { environmentStore, type Wrangler } from "../../scripts/keys/wrangler.mjs";

export type Environment = "local" | "preview" | "production";

/** The three environments as wrangler.toml shapes them, with a small max-age by default. */
export function configs(overrides: Partial<Record<Environment, Record<string, unknown>>> = {}) {
	const make = (env: Environment, origin: string, kvId: string) => ({
		name: `connector-${env}`,
		vars: {
			ENVIRONMENT: env,
			PUBLIC_ORIGIN: origin,
			REDIRECT_URI: `${origin}/api/auth/smart/callback`,
			CLIENT_ID: `${env}-client`,
			SCOPES: "openid fhirUser offline_access launch/patient patient/Patient.read",
			FHIR_BASE_URL: `https://athena.example/${env}/fhir/r4`,
			ATHENA_TOKEN_URL: `https://athena.example/${env}/oauth2/v1/token`,
			JWKS_MAX_AGE_SECONDS: "300",
			...overrides[env],
		},
		kv_namespaces: [{ binding: "JWKS_KV", id: kvId }],
	});
	return {
		local: make("local", "http://localhost:3000", "kv-local"),
		preview: make("preview", "https://preview.example.com", "kv-preview"),
		production: make("production", "https://connector.example.com", "kv-production"),
	};
}

export function settings(env: Environment, overrides: Parameters<typeof configs>[0] = {}): EnvironmentSettings {
	return settingsFrom(env, configs(overrides));
}

export interface WranglerCall {
	args: string[];
	stdin?: string;
}

/**
 * A stand-in for remote wrangler: KV namespaces and secrets per environment in
 * memory, every call recorded. It understands exactly the commands the CLI
 * runs, so a new command shows up as a failure here rather than passing silently.
 */
export function recordingWrangler(options: { loggedIn?: boolean } = {}) {
	const kv: Record<string, Record<string, string>> = { local: {}, preview: {}, production: {} };
	const secrets: Record<string, string> = {};
	const calls: WranglerCall[] = [];
	const state = { loggedIn: options.loggedIn ?? true };
	const targetOf = (args: string[]) => {
		if (args.includes("--local")) return "local";
		const i = args.indexOf("--env");
		if (i < 0) throw new Error(`no target in ${args.join(" ")}`);
		return args[i + 1] as string;
	};
	const ok = (stdout = "") => ({ code: 0, stdout, stderr: "" });
	const wrangler: Wrangler = async (args, opts = {}) => {
		calls.push({ args, ...(opts.stdin !== undefined ? { stdin: opts.stdin } : {}) });
		const [a, b, c, file] = args;
		if (a === "whoami") {
			return ok(
				state.loggedIn
					? "You are logged in with an API Token."
					: "You are not authenticated. Please run `wrangler login`.",
			);
		}
		if (!state.loggedIn) return { code: 1, stdout: "", stderr: "Not logged in." };
		if (a === "kv" && b === "bulk" && c === "get" && file) {
			const names = JSON.parse(readFileSync(file, "utf8")) as string[];
			const ns = kv[targetOf(args)] ?? {};
			return ok(JSON.stringify(Object.fromEntries(names.map((n) => [n, { value: ns[n] ?? null }]))));
		}
		if (a === "kv" && b === "bulk" && c === "put" && file) {
			const ns = kv[targetOf(args)] ?? {};
			for (const { key, value } of JSON.parse(readFileSync(file, "utf8")) as { key: string; value: string }[]) {
				ns[key] = value;
			}
			return ok("Success!");
		}
		if (a === "secret" && b === "put" && c === "SIGNING_KEY") {
			secrets[targetOf(args)] = opts.stdin ?? "";
			return ok("Success! Uploaded secret SIGNING_KEY");
		}
		return { code: 1, stdout: "", stderr: `recordingWrangler: unexpected command ${args.join(" ")}` };
	};
	return { wrangler, kv, secrets, calls, state };
}

export function tempDir(prefix = "keys-test-") {
	const dir = mkdtempSync(join(tmpdir(), prefix));
	return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A KeysContext for one environment over a recording (or real) wrangler, with a settable clock. */
export function context(
	env: Environment,
	wrangler: Wrangler,
	dir: string,
	opts: { settings?: EnvironmentSettings; clock?: { now: number }; warnings?: string[] } = {},
): KeysContext {
	const clock = opts.clock ?? { now: Date.parse("2026-11-28T10:00:00Z") };
	return {
		settings: opts.settings ?? settings(env),
		store: environmentStore({
			environment: env,
			wrangler,
			configPath: join(dir, "wrangler.toml"),
			persistTo: join(dir, "state"),
			devVarsPath: join(dir, ".dev.vars"),
		}),
		keysDir: join(dir, ".keys"),
		now: () => clock.now,
		warn: (line) => opts.warnings?.push(line),
	};
}

const bigint = (base64url: string) => BigInt(`0x${Buffer.from(base64url, "base64url").toString("hex") || "0"}`);
function base64url(value: bigint): string {
	const hex = value.toString(16);
	return Buffer.from(hex.length % 2 ? `0${hex}` : hex, "hex").toString("base64url");
}
function gcd(a: bigint, b: bigint): bigint {
	while (b) [a, b] = [b, a % b];
	return a;
}
function modInverse(a: bigint, m: bigint): bigint {
	let [r0, r1, s0, s1] = [a % m, m, 1n, 0n];
	while (r1) {
		const q = r0 / r1;
		[r0, r1, s0, s1] = [r1, r0 - q * r1, s1, s0 - q * s1];
	}
	return ((s0 % m) + m) % m;
}

/**
 * A fresh RSA-2048 key whose RFC 7638 kid starts with `prefix`, built on
 * purpose instead of generating keys until one happens to fit. The thumbprint
 * covers `e` as well as `n`, so the key keeps its primes and the public
 * exponent steps through odd values coprime to λ(n) until the kid fits: about
 * 64 tries for one character and 4,096 for two, each one SHA-256. The loop's
 * bound makes a miss astronomically unlikely, not a matter of luck.
 */
export function signingKeyWithKidStartingWith(prefix: string): { privatePem: string; publicJwk: PublicJwk } {
	const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
	const jwk = privateKey.export({ format: "jwk" }) as Record<"n" | "p" | "q" | "qi", string>;
	const p = bigint(jwk.p);
	const q = bigint(jwk.q);
	const lambda = ((p - 1n) * (q - 1n)) / gcd(p - 1n, q - 1n);
	for (let e = 65_537n; e < 65_537n + 4_000_000n; e += 2n) {
		if (gcd(e, lambda) !== 1n || !rsaThumbprint({ n: jwk.n, e: base64url(e) }).startsWith(prefix)) continue;
		const d = modInverse(e, lambda);
		const key = createPrivateKey({
			format: "jwk",
			key: {
				kty: "RSA",
				n: jwk.n,
				e: base64url(e),
				d: base64url(d),
				p: jwk.p,
				q: jwk.q,
				dp: base64url(d % (p - 1n)),
				dq: base64url(d % (q - 1n)),
				qi: jwk.qi,
			},
		});
		return {
			privatePem: key.export({ type: "pkcs8", format: "pem" }).toString().trim(),
			publicJwk: publicJwkOf(key),
		};
	}
	throw new Error(`no public exponent gave a kid starting with ${JSON.stringify(prefix)}`);
}

/**
 * Publishes `publicJwk` beside an environment's keys in the recording
 * wrangler's KV, as `rotate add` does, for a key made by the test (such as
 * one whose kid starts with "-"), which `rotate add` cannot be handed.
 */
export function publishBeside(kv: Record<string, string>, publicJwk: PublicJwk, publishedAt: string): void {
	const jwks = JSON.parse(kv.jwks ?? "") as { keys: PublicJwk[] };
	const meta = JSON.parse(kv["jwks-meta"] ?? "") as { keys: { kid: string; publishedAt: string }[] };
	kv.jwks = JSON.stringify({ keys: [...jwks.keys, publicJwk] });
	kv["jwks-meta"] = JSON.stringify({ ...meta, keys: [...meta.keys, { kid: publicJwk.kid, publishedAt }] });
}
