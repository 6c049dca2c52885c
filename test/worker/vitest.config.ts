import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { sandboxWorkerOptions } from "../../sandbox/miniflare";

// Keys are made fresh for every run, never committed. Node's crypto writes the
// PKCS#1 form independently of our own PKCS#1→PKCS#8 wrapping, so the tests
// compare two real encodings of one key.
const rsa = generateKeyPairSync("rsa", { modulusLength: 2048 });
const rsaPkcs8 = rsa.privateKey.export({ type: "pkcs8", format: "pem" }).toString();
const rsaPkcs1 = rsa.privateKey.export({ type: "pkcs1", format: "pem" }).toString();
const small = generateKeyPairSync("rsa", { modulusLength: 1024 });
const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
const second = generateKeyPairSync("rsa", { modulusLength: 2048 });

/** The worker under test is renamed to this by @cloudflare/vitest-plugin (its getRunnerName). */
const WORKER_UNDER_TEST = "vitest-plugin-runner-worker";

export default defineConfig({
	plugins: [
		cloudflareTest({
			wrangler: { configPath: "../../wrangler.toml" },
			miniflare: {
				bindings: {
					SIGNING_KEY: rsaPkcs8,
					SESSION_ENCRYPTION_KEYS: `v1:${randomBytes(32).toString("base64")}`,
					// Tests sign in far more than 5 times a minute; the budget test sets its own limit.
					TOKEN_REQUESTS_PER_MINUTE: "1000",
					// A second SMART server for test/worker/smart-servers.test.ts: the sandbox itself under another
					// id (the only server in this pool), with its own client id, name and token budget.
					SMART_SERVERS: JSON.stringify([
						{
							id: "sandbox-twin",
							name: "Sandbox Twin Clinic",
							fhirBaseUrl: "http://localhost:3001/fhir/r4",
							clientId: "local-dev-client",
							profile: "athena",
							tokenRequestsPerMinute: 900,
						},
					]),
					// Tests rewrite KV between requests; one test checks the cache with its own value.
					JWKS_KV_CACHE_SECONDS: "0",
					TEST_RSA_PKCS1_PEM: rsaPkcs1,
					TEST_RSA_PKCS8_PEM: rsaPkcs8,
					TEST_RSA_1024_PEM: small.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
					TEST_EC_PEM: ec.privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
					TEST_EC_SEC1_PEM: ec.privateKey.export({ type: "sec1", format: "pem" }).toString(),
					TEST_SECOND_RSA_PEM: second.privateKey.export({ type: "pkcs1", format: "pem" }).toString(),
				},
				// Every outbound fetch of the worker (athena's token, revoke, JWKS, FHIR
				// URLs on http://localhost:3001) is answered by the real local sandbox.
				outboundService: "athena-sandbox",
				serviceBindings: { SANDBOX: "athena-sandbox" },
				workers: [
					// The sandbox fetches our JWKS through the worker under test itself.
					sandboxWorkerOptions({ serviceBindings: { CLIENT: WORKER_UNDER_TEST } }),
				],
			},
		}),
	],
	test: {
		name: "worker",
		include: ["**/*.test.ts"],
		testTimeout: 30_000,
	},
});
