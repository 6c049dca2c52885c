// The worker and the sandbox, as rows 2 and 4–8 use them. wrangler dev puts a
// proxy workerd in front of each worker; the bench talks to the workers' own
// workerd processes (`inner` origins), and the worker talks to the sandbox's,
// so no figure carries wrangler's dev proxy. The public origins only serve
// what must be known before a process starts (the worker's redirect URI and
// JWKS URL, registered at the sandbox).
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { directAccessToken, signInThroughWorker } from "../lib/signin.mjs";
import { freePort, HOST, innerWorkerd, ROOT, startWrangler, writeSecrets } from "../lib/stack.mjs";

export const CLIENT_ID = "local-dev-client";
/** The scopes the local worker asks for: wrangler.toml's first (top-level) SCOPES. */
export const WORKER_SCOPES = /^SCOPES = "([^"]+)"$/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))?.[1] ?? "";
/** The worker's per-minute token budget, at its configured maximum (src/config.ts allows 1..10000). */
const TOKEN_BUDGET = "10000";

export async function mainStack({ tree, dir, log }) {
	const secrets = writeSecrets(dir);
	const [workerPort, sandboxPort] = [await freePort(), await freePort()];
	const workerPublic = `http://${HOST}:${workerPort}`;
	const redirectUri = `${workerPublic}/callback`;

	log("starting the sandbox (wrangler dev)");
	const sandbox = await startWrangler({
		name: "sandbox",
		cwd: tree,
		config: "sandbox/wrangler.toml",
		port: sandboxPort,
		persistTo: join(dir, "sandbox-state"),
		readyPath: "/_sandbox/config",
		vars: {
			SANDBOX_REDIRECT_URIS: redirectUri,
			SANDBOX_CLIENT_JWKS_URL: `${workerPublic}/.well-known/jwks.json`,
			SANDBOX_TOKEN_RATE_LIMIT: "0",
		},
	});
	const sandboxInner = await innerWorkerd(sandbox, "/fhir/r4/.well-known/smart-configuration");
	const S = sandboxInner.origin;

	log("starting the worker (wrangler dev)");
	const worker = await startWrangler({
		name: "worker",
		cwd: tree,
		config: "wrangler.toml",
		port: workerPort,
		envFile: secrets.path,
		persistTo: join(dir, "worker-state"),
		readyPath: "/health",
		vars: {
			PUBLIC_ORIGIN: workerPublic,
			REDIRECT_URI: redirectUri,
			ATHENA_AUTHORIZE_URL: `${S}/oauth2/v1/authorize`,
			ATHENA_TOKEN_URL: `${S}/oauth2/v1/token`,
			ATHENA_REVOKE_URL: `${S}/oauth2/v1/revoke`,
			// The sandbox's Okta-style issuer (sandbox/src/config.ts DEFAULT_ISSUER): a name, not where this sandbox listens.
			ATHENA_ISSUER: "http://127.0.0.1:3001/oauth2/aus5sandbox0preview",
			ATHENA_JWKS_URL: `${S}/oauth2/v1/keys`,
			FHIR_BASE_URL: `${S}/fhir/r4`,
			TOKEN_REQUESTS_PER_MINUTE: TOKEN_BUDGET,
		},
	});
	const workerInner = await innerWorkerd(worker, "/health");
	const health = await (await fetch(`${workerInner.origin}/health`)).json();
	if (!health.ok) throw new Error(`worker not healthy: ${JSON.stringify(health)}`);

	// The sandbox's own limit, lifted at run time too (belt and braces with the var).
	await fetch(`${S}/_sandbox/config`, {
		method: "POST",
		headers: { "Content-Type": "application/json" },
		body: JSON.stringify({ tokenRateLimit: 0 }),
	});

	const stack = {
		secrets,
		sandbox,
		worker,
		sandboxPid: sandboxInner.pid,
		workerPid: workerInner.pid,
		S,
		W: workerInner.origin,
		redirectUri,
		/** A signed-in browser's cookie jar, made on first use. */
		async session() {
			stack.jar ??= (await signInThroughWorker(stack.W)).jar;
			return stack.jar;
		},
		/** A sandbox access token redeemed by the bench itself, for the direct reads. */
		async directToken() {
			stack.token ??= await directAccessToken({
				sandboxOrigin: S,
				pem: secrets.pem,
				clientId: CLIENT_ID,
				redirectUri,
				scope: "openid fhirUser offline_access launch/patient patient/Patient.read patient/Observation.read",
			});
			return stack.token;
		},
		/** A new signed-in session for another test user (the export row's large record). */
		sessionOf: async (user) => (await signInThroughWorker(stack.W, user)).jar,
		/** A direct sandbox token for another test user, with the scopes the worker asks for (wrangler.toml SCOPES). */
		directTokenOf: (user) =>
			directAccessToken({
				sandboxOrigin: S,
				pem: secrets.pem,
				clientId: CLIENT_ID,
				redirectUri,
				scope: WORKER_SCOPES,
				user,
			}),
	};
	log(`worker ${stack.W} (workerd pid ${stack.workerPid}), sandbox ${S} (workerd pid ${stack.sandboxPid})`);
	return stack;
}
