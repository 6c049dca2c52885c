import type { Context } from "hono";
import { deleteCookie } from "hono/cookie";
import { Hono } from "hono/tiny";
import type { AppEnv } from "../app-env";
import { AppError } from "../errors";
import { FhirAudit } from "../fhir/audit-record";
import { countedBody } from "../fhir/body-streams";
import { FHIR_JSON } from "../fhir/headers";
import { connectionFhirBase, readServers } from "../fhir/read-servers";
import { isolateTokenCache } from "../fhir/token-cache";
import { type UpstreamRead, upstreamReader } from "../fhir/upstream-read";
import { requireConfig } from "../middleware/require-config";
import { homePage } from "../pages/home";
import { type ListedServer, pageHeaders } from "../pages/layout";
import { type ConnectionPart, groupByPerson } from "../pages/people";
import { noteHeaders, readNote } from "../pages/read-note";
import { type FhirReader, readRecord, type SessionState } from "../pages/read-record";
import { peoplePage, recordPage } from "../pages/record";
import { noteMissingPage, revokedPage, unavailablePage } from "../pages/states";
import { type ConnectionView, SESSION_COOKIE, type SessionView, sessionTag } from "../session/contract";
import { type SessionHandle, sessionFor } from "../session/lookup";

/** The connected view's path; `/` sends a connected browser here. */
export const RECORD_PATH = "/record";
/** One clinical note from the record, by its DocumentReference id. */
const NOTE_ROUTE = `${RECORD_PATH}/documents/:id`;
/** When the session's Durable Object itself could not be reached. */
const SESSION_RETRY_SECONDS = 5;

/**
 * Page headers that let the connect form's redirect reach athena's authorize
 * endpoint; `signedIn` pages carry the sign-out POST form.
 */
function headersFor(c: Context<AppEnv>, signedIn: boolean): Record<string, string> {
	const { authorizeUrl, logoutUrl } = c.get("config").athena;
	// Form submissions may end on athena's authorize (connect) or end-session (sign out) endpoint.
	const origins = [authorizeUrl, logoutUrl].flatMap((url) => (url ? [new URL(url).origin] : []));
	return pageHeaders({ authorizeOrigin: [...new Set(origins)].join(" ") || undefined, postsForms: signedIn });
}

function redirect(c: Context<AppEnv>, to: string): Response {
	c.header("Cache-Control", "no-store");
	return c.redirect(to, 302);
}

/** The session's own view; a Durable Object failure is "try again shortly", never a 500. */
async function viewOf(session: SessionHandle): Promise<SessionView | undefined> {
	try {
		return await session.api.view();
	} catch {
		return undefined;
	}
}

function sessionUnreachable(c: Context<AppEnv>): Response | Promise<Response> {
	c.header("Retry-After", String(SESSION_RETRY_SECONDS));
	return c.html(
		unavailablePage({ reason: "down", retryAfterSeconds: SESSION_RETRY_SECONDS }),
		503,
		headersFor(c, true),
	);
}

/** The SMART_SERVERS entries the home and record pages offer, by id and name. */
function listedServers(c: Context<AppEnv>): ListedServer[] {
	return c.get("config").smartServers.map(({ id, name }) => ({ id, name }));
}

/**
 * GETs of FHIR JSON for a page or the export, through the FHIR proxy's own
 * upstream reader: the isolate's token cache, the configured timeout, the
 * single-flight refresh and the outbound rules.
 */
export function sessionReader(c: Context<AppEnv>, session: SessionHandle): FhirReader {
	const config = c.get("config");
	const read = upstreamReader({
		session,
		...readServers(config),
		tokenCache: isolateTokenCache,
		fetch: (input, init) => fetch(input, init),
		timeoutMs: config.fhirTimeoutMs,
		requestId: c.get("requestId"),
	});
	return (target, signal) => read({ ...target, method: "GET", headers: new Headers({ Accept: FHIR_JSON }), signal });
}

/**
 * The record's reads from athena: the FHIR proxy's own upstream reader (same
 * token cache, timeout, refresh and outbound rules), each read logged with its
 * own audit record, as the proxy's reads are.
 */
export function recordReader(c: Context<AppEnv>, session: SessionHandle, route: string): FhirReader {
	const requestId = c.get("requestId");
	const read = sessionReader(c, session);
	return async function readForRecord(target) {
		const audit = new FhirAudit({ requestId, method: "GET", route });
		audit.session = sessionTag(session.idHash);
		let result: UpstreamRead;
		try {
			result = await read(target);
		} catch (error) {
			audit.error = error instanceof AppError ? error.code : "internal_error";
			audit.write(0, "no-body");
			throw error;
		}
		audit.noteRead(result);
		const body = result.kind === "response" ? result.response.body : null;
		if (result.kind === "state" || body === null) {
			audit.write(0, "no-body");
			return result;
		}
		return { ...result, response: new Response(countedBody(body, audit), result.response) };
	};
}

/** A session that may read a record: the handle reads `patient`'s connection; `connections` lists them all. */
export interface ConnectedSession {
	session: SessionHandle;
	patient: string;
	practice: string | undefined;
	scopes: string[] | undefined;
	connections: ConnectionView[];
}

/**
 * A session that may read the record, or the response that stands in its way
 * (no session, signed out, every record revoked). Without `connectionId` the
 * handle reads the session's first connection; with one, that connection (an
 * id the session does not hold sends the browser to the record page).
 */
export async function connectedSession(
	c: Context<AppEnv>,
	connectionId?: string,
): Promise<ConnectedSession | Response> {
	const session = await sessionFor(c);
	if (!session) return redirect(c, "/");
	const view = await viewOf(session);
	if (!view) return sessionUnreachable(c);
	if (view.status === "signed_out" || !view.patient) return redirect(c, "/");
	const connections = view.connections ?? [];
	const anyConnected = view.status === "connected" || connections.some((x) => x.status === "connected");
	if (!anyConnected) return c.html(revokedPage(), 200, headersFor(c, true));
	if (connectionId === undefined) {
		return { session, patient: view.patient, practice: view.practice, scopes: view.scopes, connections };
	}
	const chosen = connections.find((x) => x.id === connectionId);
	if (!chosen) return redirect(c, RECORD_PATH);
	if (chosen.status === "revoked") return c.html(revokedPage(), 200, headersFor(c, true));
	const { patient, practice, scopes } = chosen;
	return { session: { ...session, connectionId }, patient, practice, scopes, connections };
}

/** Each connection's record, read in parallel: a part of the page of several records. */
async function connectionPart(c: Context<AppEnv>, connected: ConnectedSession, connection: ConnectionView) {
	const { id, patient, practice, server, scopes, serverId } = connection;
	const part = { connectionId: id, patient, practice, server, ...(serverId ? { serverId } : {}) };
	if (connection.status === "revoked") return { ...part, outcome: { state: "revoked" } as const };
	const reader = recordReader(c, { ...connected.session, connectionId: id }, RECORD_PATH);
	const outcome = await readRecord(reader, {
		patient,
		practice,
		fhirBaseUrl: connectionFhirBase(c.get("config"), serverId),
		today: new Date().toISOString().slice(0, 10),
		scopes,
	});
	return { ...part, outcome };
}

/** `/record` for a session with several connections: one section per person, each record labelled by practice. */
async function severalRecords(c: Context<AppEnv>, connected: ConnectedSession): Promise<Response> {
	const read = await Promise.all(connected.connections.map((x) => connectionPart(c, connected, x)));
	if (read.some((part) => part.outcome.state === "signed_out")) return redirect(c, "/");
	const parts = read.filter((part): part is ConnectionPart => part.outcome.state !== "signed_out");
	// Nothing readable at all (athena busy or down for every record): the page for that state.
	if (!parts.some((part) => part.outcome.state === "record")) {
		const blocking = parts.find((part) => part.outcome.state === "unavailable") ?? parts[0];
		return stateResponse(c, blocking?.outcome.state === "unavailable" ? blocking.outcome : { state: "revoked" });
	}
	return c.html(peoplePage(groupByPerson(parts), listedServers(c)), 200, headersFor(c, true));
}

/** The page for a session state met while reading athena. */
export function stateResponse(c: Context<AppEnv>, state: SessionState): Response | Promise<Response> {
	if (state.state === "revoked") return c.html(revokedPage(), 200, headersFor(c, true));
	if (state.state === "signed_out") return redirect(c, "/");
	c.header("Retry-After", String(state.retryAfterSeconds));
	return c.html(unavailablePage(state), 503, headersFor(c, true));
}

/**
 * The patient's pages: `/` (what the app does, connect), `/record` (the
 * connected view), `/record/documents/:id` (one clinical note, served under a
 * CSP sandbox) and the states a session can be in (revoked, ended, athena
 * busy). Everything is server-rendered; the pages carry no script.
 *
 * @example
 * app.route("/", pageRoutes());
 */
export function pageRoutes(): Hono<AppEnv> {
	return new Hono<AppEnv>()
		.get("/", requireConfig(), async (c) => {
			const config = c.get("config");
			const session = await sessionFor(c);
			let ended = false;
			if (session) {
				const view = await viewOf(session);
				if (!view) return sessionUnreachable(c);
				if (view.status !== "signed_out") return redirect(c, RECORD_PATH);
				// The cookie names a session the server no longer has (idle or absolute expiry): say so once, then forget it.
				ended = true;
				deleteCookie(c, SESSION_COOKIE, { path: "/", secure: true, httpOnly: true, sameSite: "Lax" });
			}
			// After a sign-out at a server without revocation (`/?signed_out=grant_kept`): say its access stays there.
			const grantKept = c.req.query("signed_out") === "grant_kept";
			const sandbox = config.environment === "local";
			const home = homePage({ ended, grantKept, sandbox, servers: listedServers(c) });
			return c.html(home, 200, headersFor(c, false));
		})
		.get(RECORD_PATH, requireConfig(), async (c) => {
			const connected = await connectedSession(c);
			if (connected instanceof Response) return connected;
			if (connected.connections.length > 1) return severalRecords(c, connected);
			const outcome = await readRecord(recordReader(c, connected.session, RECORD_PATH), {
				patient: connected.patient,
				practice: connected.practice,
				fhirBaseUrl: c.get("config").athena.fhirBaseUrl,
				today: new Date().toISOString().slice(0, 10),
				scopes: connected.scopes,
			});
			if (outcome.state !== "record") return stateResponse(c, outcome);
			return c.html(recordPage(outcome.record, listedServers(c)), 200, headersFor(c, true));
		})
		.get(NOTE_ROUTE, requireConfig(), async (c) => {
			// `?connection=`: a note of a record other than the session's first (the record page of several links so).
			const connected = await connectedSession(c, c.req.query("connection"));
			if (connected instanceof Response) return connected;
			const reader = recordReader(c, connected.session, NOTE_ROUTE);
			const note = await readNote(reader, { id: c.req.param("id"), patient: connected.patient });
			if (note.state === "note") return c.body(note.body, 200, noteHeaders(note.contentType));
			if (note.state === "missing") return c.html(noteMissingPage(), 404, headersFor(c, true));
			return stateResponse(c, note);
		});
}
