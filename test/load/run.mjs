// `npm run test:load`: the worker and the local athena sandbox under load, on
// loopback only, bounded in count and time, as every load run here must be. Not part of `npm test`.
//
//   1. sign-ins driven like a browser: /launch → sandbox login → "Select a
//      health record" → consent (sandbox/sign-in-script.ts) → /callback
//      (default 1,000, concurrency 16);
//   2. "Connect another record" in 50 of Jake's sessions (LOAD_TWO_CONNECTION_SESSIONS):
//      /launch?connect=1 from the signed-in browser → athena's record picker
//      straight away (athena's browser session from step 1 is kept) → consent
//      → /callback, adding Lily or Jake at his second practice;
//   3. FHIR reads from 200 of those sessions (both test patients, every
//      two-connection session among them), a mix of Patient read, Observation
//      search and Condition search (default 20,000, concurrency 64); a
//      two-connection session's reads alternate between /fhir/r4 (its first
//      record) and /fhir/{second id}/r4;
//   4. the same again while every access token is expired every few seconds
//      (LOAD_EXPIRE_EVERY_MS, default 5 s).
//
// Bounded: at most LOAD_MAX_MINUTES (default 15; a full run takes about 11 on
// a 2-core box). The steady phase gets half of what is left after the
// sign-ins, the churn phase whatever is left after that.
//
// Every answer is checked against the connection it was read through (its
// patient's id and references): naming the session's other record is a
// cross-connection answer, naming any other patient a cross-session one;
// either fails the run. Token calls are counted at the sandbox and compared with
// the fewest the run could have made. The figures are printed and written to
// RELIABILITY.md between the load-run markers.
//
// Knobs (environment): LOAD_SIGNINS, LOAD_READS, LOAD_SESSIONS,
// LOAD_TWO_CONNECTION_SESSIONS, LOAD_SIGNIN_CONCURRENCY,
// LOAD_READ_CONCURRENCY, LOAD_EXPIRE_EVERY_MS, LOAD_MAX_MINUTES,
// LOAD_NO_WRITE=1 (print only).
import { spawn } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { cpSync, createWriteStream, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import http from "node:http";
import { createServer } from "node:net";
import { cpus, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { asFetch } from "../../bench/lib/http.mjs";
import { nextClientAddress } from "../../bench/lib/signin.mjs";
import { signInAtSandbox } from "../../sandbox/sign-in-script.ts";
import { JAKE, JAKE_SECOND_PRACTICE, LILY, ROWAN } from "../../sandbox/src/users.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const WRANGLER = join(ROOT, "node_modules/wrangler/bin/wrangler.js");
const REPORT = join(ROOT, "RELIABILITY.md");
const MARK_START = "<!-- load-run:start -->";
const MARK_END = "<!-- load-run:end -->";

const setting = (name, fallback, least = 1) => {
	const value = Number(process.env[name] || Number.NaN);
	return Number.isFinite(value) && value >= least ? value : fallback;
};
const SIGNINS = setting("LOAD_SIGNINS", 1000);
const READS = setting("LOAD_READS", 20_000);
const SESSIONS = setting("LOAD_SESSIONS", 200);
/** Of the reading sessions, how many also connect a second record (at most Jake's half of them; 0 for none). */
const TWO_CONNECTION_SESSIONS = Math.min(setting("LOAD_TWO_CONNECTION_SESSIONS", 50, 0), Math.ceil(SESSIONS / 2));
const SIGNIN_CONCURRENCY = setting("LOAD_SIGNIN_CONCURRENCY", 16);
const READ_CONCURRENCY = setting("LOAD_READ_CONCURRENCY", 64);
const EXPIRE_EVERY_MS = setting("LOAD_EXPIRE_EVERY_MS", 5000);
const MAX_MS = setting("LOAD_MAX_MINUTES", 15) * 60_000;
const REQUEST_TIMEOUT_MS = 30_000;

/** One login with its own record at each practice (sandbox/src/users.ts). */
const PATIENTS = [JAKE, ROWAN];
/** The records a two-connection session adds to Jake's, alternately: his dependent's and his own at a second practice. */
const SECOND_RECORDS = [LILY, JAKE_SECOND_PRACTICE];
/** The first connection, which the proxy also serves at its original mount. */
const FIRST_BASE = "/fhir/r4";

const started = Date.now();
const deadline = started + MAX_MS;
const children = [];
const tempDir = mkdtempSync(join(tmpdir(), "athena-load-"));

// ---------------------------------------------------------------- processes

/** What the two workers are built from: their sources and configs (node_modules is linked, not copied). */
const TREE_PARTS = ["src", "sandbox/src", "sandbox/wrangler.toml", "wrangler.toml", "package.json", "tsconfig.json"];

/**
 * A copy of the worker's and the sandbox's sources as they are when the run
 * starts. `wrangler dev` watches the files it builds from and reloads on any
 * change, dropping the requests in flight; in a tree others edit while a run
 * goes on, that made reads fail ("response aborted") and cut refreshes off
 * mid-rotation. The copy is what the run measures, from start to end.
 */
function snapshotTree() {
	const tree = join(tempDir, "tree");
	for (const part of TREE_PARTS) cpSync(join(ROOT, part), join(tree, part), { recursive: true });
	symlinkSync(join(ROOT, "node_modules"), join(tree, "node_modules"), "dir");
	return tree;
}

function freePort() {
	return new Promise((resolve, reject) => {
		const server = createServer();
		server.once("error", reject);
		server.listen(0, "127.0.0.1", () => {
			const { port } = server.address();
			server.close(() => resolve(port));
		});
	});
}

async function wranglerDev(tree, name, args, port, readyPath) {
	const inspector = await freePort();
	const logPath = join(tempDir, `${name}.log`);
	const log = createWriteStream(logPath);
	const child = spawn(
		process.execPath,
		[
			WRANGLER,
			"dev",
			...args,
			"--port",
			String(port),
			"--ip",
			"127.0.0.1",
			"--inspector-port",
			String(inspector),
			"--show-interactive-dev-session=false",
		],
		{
			cwd: tree,
			env: { ...process.env, WRANGLER_SEND_METRICS: "false", NO_COLOR: "1" },
			stdio: ["ignore", "pipe", "pipe"],
		},
	);
	children.push(child);
	// The child may still write while the run is being torn down.
	log.on("error", () => undefined);
	child.stdout.pipe(log);
	child.stderr.pipe(log);
	const url = `http://127.0.0.1:${port}`;
	const until = Date.now() + 120_000;
	while (Date.now() < until) {
		if (child.exitCode !== null) throw new Error(`${name}: wrangler dev exited early:\n${tail(logPath)}`);
		const answer = await request(`${url}${readyPath}`).catch(() => undefined);
		if (answer && answer.status < 500) return url;
		if (answer && answer.status >= 500 && Date.now() > until - 100_000) {
			throw new Error(`${name}: ${readyPath} answered ${answer.status}: ${answer.body.slice(0, 500)}`);
		}
		await sleep(500);
	}
	throw new Error(`${name}: not ready within 120 s:\n${tail(logPath)}`);
}

function tail(path) {
	try {
		return readFileSync(path, "utf8").split("\n").slice(-40).join("\n");
	} catch {
		return "(no log)";
	}
}

function stopAll() {
	for (const child of children) if (child.exitCode === null) child.kill("SIGTERM");
}

function cleanUp() {
	stopAll();
	if (process.exitCode) {
		// Keep the two wrangler logs to look into a failed run; the secrets and states go.
		for (const name of ["worker.env", "sandbox.env", "state-worker", "state-sandbox", "tree"]) {
			rmSync(join(tempDir, name), { recursive: true, force: true });
		}
		console.error(`[load] logs kept in ${tempDir} (worker.log, sandbox.log)`);
		return;
	}
	// The temp dir holds the throwaway secrets, both wrangler states and the copied sources.
	rmSync(tempDir, { recursive: true, force: true });
}
process.on("SIGINT", () => {
	cleanUp();
	process.exit(130);
});

// --------------------------------------------------------------------- HTTP

const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });

function request(url, { method = "GET", headers = {}, body } = {}) {
	return new Promise((resolve, reject) => {
		const req = http.request(url, { method, headers, agent }, (res) => {
			const chunks = [];
			res.on("data", (chunk) => chunks.push(chunk));
			res.on("end", () =>
				resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }),
			);
			res.on("error", reject);
			res.on("aborted", () => reject(new Error("response aborted")));
		});
		req.on("error", reject);
		req.setTimeout(REQUEST_TIMEOUT_MS, () => req.destroy(new Error("request timed out")));
		req.end(body);
	});
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function storeCookies(jar, response) {
	for (const header of response.headers["set-cookie"] ?? []) {
		const [pair] = header.split(";");
		const at = pair.indexOf("=");
		if (at < 0) continue;
		const name = pair.slice(0, at).trim();
		const value = pair.slice(at + 1).trim();
		if (/max-age=0/i.test(header) || value === "") jar.delete(name);
		else jar.set(name, value);
	}
}

const cookieHeader = (jar) => [...jar].map(([name, value]) => `${name}=${value}`).join("; ");

// ------------------------------------------------------------------ figures

function percentile(sorted, p) {
	if (sorted.length === 0) return 0;
	return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

function summarize(name, durations, wallMs, errors, extra = {}) {
	const sorted = [...durations].sort((a, b) => a - b);
	return {
		name,
		count: durations.length,
		wallSeconds: Math.round(wallMs / 100) / 10,
		perSecond: Math.round((durations.length / wallMs) * 1000 * 10) / 10,
		p50: Math.round(percentile(sorted, 50)),
		p99: Math.round(percentile(sorted, 99)),
		max: Math.round(sorted.at(-1) ?? 0),
		errors: errors.length,
		errorKinds: countBy(errors),
		...extra,
	};
}

function countBy(values) {
	const counts = {};
	for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
	return counts;
}

/** Runs `task(i)` for i < total with `concurrency` at a time, stopping early at `until`. */
async function pool(total, concurrency, until, task) {
	let next = 0;
	const runners = Array.from({ length: concurrency }, async () => {
		while (next < total && Date.now() < until) {
			const i = next++;
			await task(i);
		}
	});
	await Promise.all(runners);
	return next;
}

/** A small seeded PRNG (mulberry32), so runs pick sessions the same way. */
function random(seed) {
	let a = seed;
	return () => {
		a = (a + 0x6d2b79f5) | 0;
		let t = Math.imul(a ^ (a >>> 15), 1 | a);
		t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
		return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
	};
}

// -------------------------------------------------------------------- flows

/**
 * The sandbox as one browser meets it: athena's cookies (its browser session)
 * kept in `athena` and sent back, so a second authorize skips the login page.
 */
function sandboxBrowser(athena) {
	return asFetch(async (url, init) => {
		const headers = athena.size > 0 ? { ...init.headers, Cookie: cookieHeader(athena) } : init.headers;
		const answer = await request(url, { ...init, headers });
		storeCookies(athena, answer);
		return answer;
	});
}

/** A simulated browser's sign-in: the worker's cookies, athena's, its address and the records it reads through. */
async function signIn(worker, patient) {
	const jar = new Map();
	const athena = new Map();
	// Each simulated patient signs in from its own address (a header only): the
	// worker limits launches and callbacks per client address.
	const client = { "CF-Connecting-IP": nextClientAddress() };
	const launch = await request(`${worker}/launch?practice=${patient.practiceId}`, { headers: client });
	if (launch.status !== 302) throw new Error(`launch ${launch.status}`);
	storeCookies(jar, launch);
	// Every simulated patient is a new browser and types the password; athena's
	// cookies are kept for a later "Connect another record".
	const redirect = await signInAtSandbox({
		authorizeUrl: launch.headers.location,
		login: patient,
		record: patient.id,
		fetch: sandboxBrowser(athena),
	});
	const callback = await request(redirect.toString(), { headers: { ...client, Cookie: cookieHeader(jar) } });
	if (callback.status !== 302) throw new Error(`callback ${callback.status}`);
	storeCookies(jar, callback);
	if (!jar.get("__Host-athena_session")) throw new Error("callback set no session cookie");
	return {
		cookie: sessionCookie(jar),
		patient,
		jar,
		athena,
		client,
		connections: [{ base: FIRST_BASE, patient }],
		reads: 0,
	};
}

/** The worker's session cookie in `jar`, as the reads send it. */
const sessionCookie = (jar) => `__Host-athena_session=${jar.get("__Host-athena_session")}`;

/**
 * "Connect another record" as the signed-in browser does it: /launch?connect=1
 * from the record page with its cookies, athena's record picker straight away
 * (its browser session is kept, so no password is given), consent, the
 * callback, which ends with a new session id as every sign-in does. Then
 * `/session` under the new cookie must list the first record and `record`,
 * whose mount the session reads through from then on.
 */
async function connectRecord(worker, session, record) {
	const launch = await request(`${worker}/launch?connect=1`, {
		// A click on the record page's link: the worker refuses a connect started from another site.
		headers: { ...session.client, Cookie: cookieHeader(session.jar), "Sec-Fetch-Site": "same-origin" },
	});
	if (launch.status !== 302) throw new Error(`connect launch ${launch.status}`);
	storeCookies(session.jar, launch);
	const redirect = await signInAtSandbox({
		authorizeUrl: launch.headers.location,
		// athena remembers the browser: its login page must not come up.
		login: { ...session.patient, password: "athena-must-not-ask" },
		record: record.id,
		fetch: sandboxBrowser(session.athena),
	});
	const callback = await request(redirect.toString(), {
		headers: { ...session.client, Cookie: cookieHeader(session.jar) },
	});
	if (callback.status !== 302) throw new Error(`connect callback ${callback.status}${diagnostics(callback.body)}`);
	storeCookies(session.jar, callback);
	const renewed = sessionCookie(session.jar);
	if (renewed === session.cookie) throw new Error("connect: the callback kept the session id");
	session.cookie = renewed;
	const view = JSON.parse((await request(`${worker}/session`, { headers: { Cookie: session.cookie } })).body);
	const listed = (view.connections ?? []).map((c) => c.patient);
	if (listed.length !== 2 || listed[0] !== session.patient.id || listed[1] !== record.id) {
		throw new Error(`connect: /session lists ${listed.length} connections, not the first record and the new one`);
	}
	session.connections.push({ base: view.connections[1].fhirBase, patient: record });
}

const READ_KINDS = [
	{ kind: "Patient read", path: (base, p) => `${base}/Patient/${p.id}` },
	{ kind: "Observation search", path: (base) => `${base}/Observation?category=vital-signs&_count=20` },
	{ kind: "Condition search", path: (base) => `${base}/Condition?_count=20` },
];

/** The proxy's own OperationOutcome text (never PHI), to tell a 502 for athena's 5xx from one for its second 401. */
function diagnostics(body) {
	try {
		const text = JSON.parse(body).issue?.[0]?.diagnostics;
		return typeof text === "string" ? ` (${text.replace(/\d{3}/, "NNN").slice(0, 60)})` : "";
	} catch {
		return "";
	}
}

/** The patient references a FHIR answer names: a Patient's own, or every searchset entry's subject. */
function namedPatients(kind, json) {
	if (kind === "Patient read") return json.resourceType === "Patient" ? [`Patient/${json.id}`] : undefined;
	if (json.resourceType !== "Bundle" || !Array.isArray(json.entry) || json.entry.length === 0) return undefined;
	return json.entry.map((e) => String(e.resource?.subject?.reference));
}

/**
 * Whose a FHIR answer read through `connection` of `session` is: "own" (its
 * patient's only), "cross-connection" (it names the session's other record),
 * "cross-session" (it names a patient the session does not hold, or nobody),
 * or "unreadable".
 */
function ownership(kind, body, session, connection) {
	let json;
	try {
		json = JSON.parse(body);
	} catch {
		return "unreadable";
	}
	const named = namedPatients(kind, json);
	if (!named) return "unreadable";
	const own = `Patient/${connection.patient.id}`;
	const sessions = new Set(session.connections.map((c) => `Patient/${c.patient.id}`));
	if (named.some((reference) => !sessions.has(reference))) return "cross-session";
	return named.every((reference) => reference === own) ? "own" : "cross-connection";
}

async function sandboxCounts(sandbox) {
	const received = JSON.parse((await request(`${sandbox}/_sandbox/received`)).body);
	return received.counts;
}

async function readPhase(name, worker, sandbox, sessions, { expire, until }) {
	const durations = [];
	const errors = [];
	let crossSession = 0;
	let crossConnection = 0;
	let secondConnectionReads = 0;
	const pick = random(name.length * 7919);
	let epoch = 0;
	/**
	 * Per session, the expiry epochs in which one of its reads both started and
	 * succeeded: it used a token issued after that expiry, so the session
	 * refreshed at least once in each. A lower bound on the refreshes needed.
	 * Kept per connection: each holds its own grant and refreshes it alone.
	 */
	const epochsRead = sessions.map((s) => s.connections.map(() => new Set()));
	let expiries = 0;
	let expiring = true;
	const expirer = expire
		? (async () => {
				while (expiring) {
					await sleep(EXPIRE_EVERY_MS);
					if (!expiring) break;
					await request(`${sandbox}/_sandbox/expire-access-tokens`, { method: "POST" });
					epoch += 1;
					expiries += 1;
				}
			})()
		: Promise.resolve();
	const before = await sandboxCounts(sandbox);
	const phaseStart = performance.now();
	const done = await pool(READS, READ_CONCURRENCY, until, async (i) => {
		const index = Math.floor(pick() * sessions.length);
		const session = sessions[index];
		// A two-connection session's reads alternate between its records.
		const through = session.reads++ % session.connections.length;
		const connection = session.connections[through];
		if (through > 0) secondConnectionReads += 1;
		const { kind, path } = READ_KINDS[i % READ_KINDS.length];
		// Failures are counted by message: say which record a read went through.
		const label = through > 0 ? `${kind} (second record)` : kind;
		const startEpoch = epoch;
		const t0 = performance.now();
		try {
			const response = await request(`${worker}${path(connection.base, connection.patient)}`, {
				headers: { Cookie: session.cookie, Accept: "application/fhir+json" },
			});
			durations.push(performance.now() - t0);
			if (response.status !== 200) {
				errors.push(`${label}: HTTP ${response.status}${diagnostics(response.body)}`);
				return;
			}
			if (startEpoch > 0 && epoch === startEpoch) epochsRead[index][through].add(startEpoch);
			const owner = ownership(kind, response.body, session, connection);
			if (owner === "cross-session") crossSession += 1;
			else if (owner === "cross-connection") crossConnection += 1;
			else if (owner === "unreadable") errors.push(`${label}: unreadable body`);
		} catch (error) {
			durations.push(performance.now() - t0);
			errors.push(`${label}: ${error.message}`);
		}
	});
	const wall = performance.now() - phaseStart;
	expiring = false;
	await expirer;
	const after = await sandboxCounts(sandbox);
	const tokenCalls = (after.token ?? 0) - (before.token ?? 0);
	const minimumTokenCalls = epochsRead.flat().reduce((sum, epochs) => sum + epochs.size, 0);
	return summarize(name, durations, wall, errors, {
		requested: READS,
		completed: done,
		crossSession,
		crossConnection,
		secondConnectionReads,
		tokenCalls,
		minimumTokenCalls,
		expiries,
		upstreamFhirCalls: (after.fhir ?? 0) - (before.fhir ?? 0),
		refreshViaGrace: (after.refreshViaGrace ?? 0) - (before.refreshViaGrace ?? 0),
	});
}

/** Phase 2: each of `sessions` connects a second record, Lily and Jake at 195900 in turn. */
async function connectPhase(worker, sandbox, sessions) {
	const durations = [];
	const errors = [];
	const before = await sandboxCounts(sandbox);
	const start = performance.now();
	const attempted = await pool(
		sessions.length,
		SIGNIN_CONCURRENCY,
		deadline - Math.min(4 * 60_000, MAX_MS * 0.4),
		async (i) => {
			const t0 = performance.now();
			try {
				await connectRecord(worker, sessions[i], SECOND_RECORDS[i % SECOND_RECORDS.length]);
			} catch (error) {
				errors.push(error.message.replace(/\d{3,}/g, "N"));
			}
			durations.push(performance.now() - t0);
		},
	);
	const wall = performance.now() - start;
	const after = await sandboxCounts(sandbox);
	return summarize(
		"Second record connected (launch?connect=1 → record picker → consent → callback)",
		durations,
		wall,
		errors,
		{
			requested: TWO_CONNECTION_SESSIONS,
			completed: attempted,
			tokenCalls: (after.token ?? 0) - (before.token ?? 0),
			minimumTokenCalls: sessions.filter((s) => s.connections.length === 2).length,
		},
	);
}

/** Whether `/session` still lists every record of `session`, connected, in order, and no other. */
async function stillHolds(worker, session) {
	const view = JSON.parse((await request(`${worker}/session`, { headers: { Cookie: session.cookie } })).body);
	const listed = view.connections ?? [];
	return (
		view.status === "connected" &&
		view.patient === session.patient.id &&
		listed.length === session.connections.length &&
		listed.every((c, i) => c.status === "connected" && c.patient === session.connections[i].patient.id)
	);
}

// ---------------------------------------------------------------------- run

async function main() {
	const workerPort = await freePort();
	const sandboxPort = await freePort();
	const worker = `http://127.0.0.1:${workerPort}`;
	const sandbox = `http://127.0.0.1:${sandboxPort}`;

	// Throwaway secrets for this run only, in a 0600 file under the temp dir.
	const key = generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ type: "pkcs8", format: "pem" });
	const envFile = join(tempDir, "worker.env");
	writeFileSync(
		envFile,
		`SIGNING_KEY=${JSON.stringify(key.toString())}\nSESSION_ENCRYPTION_KEYS=v1:${randomBytes(32).toString("base64")}\n`,
		{ mode: 0o600 },
	);
	const sandboxEnvFile = join(tempDir, "sandbox.env");
	writeFileSync(sandboxEnvFile, "", { mode: 0o600 });

	const tree = snapshotTree();
	console.log(`[load] sandbox on ${sandbox}, worker on ${worker} (temp ${tempDir}, sources copied there)`);
	await wranglerDev(
		tree,
		"sandbox",
		[
			"--config",
			"sandbox/wrangler.toml",
			"--persist-to",
			join(tempDir, "state-sandbox"),
			"--env-file",
			sandboxEnvFile,
			"--var",
			`SANDBOX_REDIRECT_URIS:${worker}/callback`,
			"--var",
			`SANDBOX_CLIENT_JWKS_URL:${worker}/.well-known/jwks.json`,
			"--var",
			"SANDBOX_TOKEN_RATE_LIMIT:0",
		],
		sandboxPort,
		"/_sandbox/config",
	);
	const vars = {
		PUBLIC_ORIGIN: worker,
		REDIRECT_URI: `${worker}/callback`,
		ATHENA_AUTHORIZE_URL: `${sandbox}/oauth2/v1/authorize`,
		ATHENA_TOKEN_URL: `${sandbox}/oauth2/v1/token`,
		ATHENA_REVOKE_URL: `${sandbox}/oauth2/v1/revoke`,
		// The sandbox's Okta-style issuer (sandbox/src/config.ts DEFAULT_ISSUER): a name, not where this sandbox listens.
		ATHENA_ISSUER: "http://127.0.0.1:3001/oauth2/aus5sandbox0preview",
		ATHENA_JWKS_URL: `${sandbox}/oauth2/v1/keys`,
		FHIR_BASE_URL: `${sandbox}/fhir/r4`,
		// The config's ceiling; the sandbox's own limit is lifted (0 = unlimited).
		TOKEN_REQUESTS_PER_MINUTE: "10000",
		// Tokens expire every few seconds in the churn phase; production's limit of 3
		// refreshes a session a minute is for tokens that last an hour.
		SESSION_REFRESHES_PER_MINUTE: "1000",
	};
	await wranglerDev(
		tree,
		"worker",
		[
			"--config",
			"wrangler.toml",
			"--persist-to",
			join(tempDir, "state-worker"),
			"--env-file",
			envFile,
			...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
		],
		workerPort,
		"/health",
	);
	const health = await request(`${worker}/health`);
	if (health.status !== 200) throw new Error(`worker /health ${health.status}: ${health.body}`);
	const sandboxConfig = JSON.parse((await request(`${sandbox}/_sandbox/config`)).body);
	if (!sandboxConfig.redirectUris.includes(`${worker}/callback`) || sandboxConfig.tokenRateLimit !== 0) {
		throw new Error(`sandbox did not take the --var overrides: ${JSON.stringify(sandboxConfig)}`);
	}
	console.log(`[load] both up after ${Math.round((Date.now() - started) / 1000)} s`);

	// Phase 1: sign-ins, alternating the two test patients.
	const signInDurations = [];
	const signInErrors = [];
	const sessions = [];
	const before = await sandboxCounts(sandbox);
	const signInStart = performance.now();
	const attempted = await pool(SIGNINS, SIGNIN_CONCURRENCY, deadline - Math.min(5 * 60_000, MAX_MS / 2), async (i) => {
		const t0 = performance.now();
		try {
			sessions[i] = await signIn(worker, PATIENTS[i % PATIENTS.length]);
		} catch (error) {
			signInErrors.push(error.message.replace(/\d{3,}/g, "N"));
		}
		signInDurations.push(performance.now() - t0);
	});
	const signInWall = performance.now() - signInStart;
	const afterSignIns = await sandboxCounts(sandbox);
	const signedIn = sessions.filter(Boolean);
	const signIns = summarize(
		"Sign-ins (launch → sign-in form → consent → callback)",
		signInDurations,
		signInWall,
		signInErrors,
		{
			requested: SIGNINS,
			completed: attempted,
			tokenCalls: (afterSignIns.token ?? 0) - (before.token ?? 0),
			minimumTokenCalls: signedIn.length,
		},
	);
	console.log("[load]", JSON.stringify(signIns));

	// Phase 2: some of Jake's sessions connect a second record, as a browser would.
	const twoConnection = signedIn.filter((s) => s.patient === JAKE).slice(0, TWO_CONNECTION_SESSIONS);
	const connects = await connectPhase(worker, sandbox, twoConnection);
	console.log("[load]", JSON.stringify(connects));

	// The read phases use SESSIONS of them, half of each first patient, every two-connection session among Jake's.
	const perPatient = Math.ceil(SESSIONS / PATIENTS.length);
	const connected = twoConnection.filter((s) => s.connections.length === 2);
	const readers = [...connected];
	readers.push(
		...signedIn.filter((s) => s.patient === JAKE && s.connections.length === 1).slice(0, perPatient - connected.length),
	);
	readers.push(...signedIn.filter((s) => s.patient === ROWAN).slice(0, perPatient));
	if (readers.length < 2) throw new Error("too few sessions to read with");

	// Each read phase gets half of what time is left (less a margin for the report), so both run.
	const steadyUntil = Date.now() + (deadline - 30_000 - Date.now()) / 2;
	const steady = await readPhase("FHIR reads, tokens valid", worker, sandbox, readers, {
		expire: false,
		until: steadyUntil,
	});
	console.log("[load]", JSON.stringify(steady));
	const expiring = await readPhase(
		`FHIR reads, access tokens expired every ${EXPIRE_EVERY_MS / 1000} s`,
		worker,
		sandbox,
		readers,
		{ expire: true, until: deadline - 30_000 },
	);
	console.log("[load]", JSON.stringify(expiring));

	// Nothing lost: every session still answers connected, each of its records for its own patient.
	let stillConnected = 0;
	for (const session of readers) if (await stillHolds(worker, session)) stillConnected += 1;

	const result = {
		at: new Date().toISOString(),
		machine: `${cpus().length} cores (${cpus()[0]?.model ?? "unknown"}), Node ${process.version}`,
		totalSeconds: Math.round((Date.now() - started) / 1000),
		readSessions: readers.length,
		twoConnectionReaders: connected.length,
		stillConnected,
		phases: [signIns, connects, steady, expiring],
	};
	console.log(`\n${renderMarkdown(result)}`);
	if (!process.env.LOAD_NO_WRITE) writeReport(result);
	const failed =
		result.phases.some(
			(p) => p.errors > 0 || (p.crossSession ?? 0) > 0 || (p.crossConnection ?? 0) > 0 || p.completed < p.requested,
		) || stillConnected !== readers.length;
	return failed ? 1 : 0;
}

function renderMarkdown(result) {
	const rows = result.phases.map((p) =>
		[
			p.name,
			`${p.completed} / ${p.requested}`,
			p.wallSeconds,
			p.perSecond,
			p.p50,
			p.p99,
			p.max,
			p.errors === 0
				? "0"
				: `${p.errors} (${Object.entries(p.errorKinds)
						.map(([k, v]) => `${k}: ${v}`)
						.join("; ")})`,
			p.crossSession ?? "–",
			p.crossConnection ?? "–",
			`${p.tokenCalls} / ${p.minimumTokenCalls}`,
		].join(" | "),
	);
	const [, , steady, expiring] = result.phases;
	return [
		`Last run: ${result.at}, ${result.machine}; ${result.totalSeconds} s in all (including start-up).`,
		"",
		"| phase | done / asked | seconds | per second | p50 ms | p99 ms | max ms | errors | cross-session answers | cross-connection answers | token calls / minimum |",
		"|---|---|---|---|---|---|---|---|---|---|---|",
		...rows.map((r) => `| ${r} |`),
		"",
		`Reads came from ${result.readSessions} sessions (both test patients, half each by first record), concurrency ${READ_CONCURRENCY}; sign-ins and connects at concurrency ${SIGNIN_CONCURRENCY}.`,
		`${result.twoConnectionReaders} of those sessions held two records (Jake at 80000 first, then Lily or Jake at 195900) and alternated their reads between \`/fhir/r4\` and \`/fhir/{second id}/r4\`: ${steady.secondConnectionReads} reads with valid tokens and ${expiring.secondConnectionReads} under churn went through a second connection.`,
		`In the last phase the sandbox expired every access token ${expiring.expiries} times; athena's FHIR saw ${expiring.upstreamFhirCalls} requests for ${expiring.completed} reads (after a 401 the proxy refreshes and retries, at most twice per read); ${expiring.refreshViaGrace} refreshes presented the previous refresh token within the sandbox's rotation grace period.`,
		`The minimum token calls is one code exchange per sign-in or connected record, and in the last phase a lower bound: one refresh per connection per expiry in which one of its reads started and succeeded.`,
		`After the run ${result.stillConnected} of ${result.readSessions} sessions still answered \`connected\` for each of their records, with their own patients.`,
	].join("\n");
}

function writeReport(result) {
	let text;
	try {
		text = readFileSync(REPORT, "utf8");
	} catch {
		text = `# Reliability\n\n## Load run\n\n${MARK_START}\n${MARK_END}\n`;
	}
	const start = text.indexOf(MARK_START);
	const end = text.indexOf(MARK_END);
	if (start < 0 || end < start) {
		console.error(`[load] ${REPORT} has no ${MARK_START} … ${MARK_END} block; not written`);
		return;
	}
	const block = `${MARK_START}\n${renderMarkdown(result)}\n${MARK_END}`;
	writeFileSync(REPORT, text.slice(0, start) + block + text.slice(end + MARK_END.length));
	console.log(`[load] figures written to ${REPORT}`);
}

main()
	.then(
		(code) => {
			process.exitCode = code;
		},
		(error) => {
			console.error(`[load] failed: ${error.stack ?? error}`);
			process.exitCode = 1;
		},
	)
	.finally(cleanUp);
