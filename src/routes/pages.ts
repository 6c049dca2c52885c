import { type Context, type ExecutionContext, Hono } from "hono";
import { deleteCookie } from "hono/cookie";
import type { AppEnv } from "../app-env";
import { homePage } from "../pages/home";
import { pageHeaders } from "../pages/layout";
import { type FhirReader, readRecord } from "../pages/read-record";
import { recordPage } from "../pages/record";
import { revokedPage, unavailablePage } from "../pages/states";
import type { SessionView } from "../session/contract";
import { SESSION_COOKIE } from "../session/contract";
import { sessionFor } from "../session/lookup";
import { requireConfig } from "./require-config";

/** The connected view's path; `/` sends a connected browser here. */
export const RECORD_PATH = "/record";
/** When the session's Durable Object itself could not be reached. */
const SESSION_RETRY_SECONDS = 5;

export interface PageRouteOptions {
	/**
	 * The whole worker, called in-process for the record's FHIR reads (the
	 * composition passes `app.fetch`), so pages read through the proxy's own
	 * session, refresh and athena rules rather than a copy of them.
	 */
	worker: (request: Request, env: Env, executionCtx: ExecutionContext) => Response | Promise<Response>;
}

/**
 * Page headers that let the connect form's redirect reach athena's authorize
 * endpoint; `signedIn` pages carry the sign-out POST form.
 */
function headersFor(c: Context<AppEnv>, signedIn: boolean): Record<string, string> {
	return pageHeaders({ authorizeOrigin: new URL(c.get("config").athena.authorizeUrl).origin, postsForms: signedIn });
}

function redirect(c: Context<AppEnv>, to: string): Response {
	c.header("Cache-Control", "no-store");
	return c.redirect(to, 302);
}

/** The session's own view; a Durable Object failure is "try again shortly", never a 500. */
async function viewOf(session: NonNullable<Awaited<ReturnType<typeof sessionFor>>>): Promise<SessionView | undefined> {
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

/**
 * The patient's pages: `/` (what the app does, connect), `/record` (the
 * connected view) and the states a session can be in (revoked, ended, athena
 * busy). Everything is server-rendered; the pages carry no script.
 *
 * @example
 * app.route("/", pageRoutes({ worker: (request, env, ctx) => app.fetch(request, env, ctx) }));
 */
export function pageRoutes(options: PageRouteOptions): Hono<AppEnv> {
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
			return c.html(
				homePage({ defaultPractice: config.defaultPractice, ended, sandbox: config.environment === "local" }),
				200,
				headersFor(c, false),
			);
		})
		.get(RECORD_PATH, requireConfig(), async (c) => {
			const config = c.get("config");
			const session = await sessionFor(c);
			if (!session) return redirect(c, "/");
			const view = await viewOf(session);
			if (!view) return sessionUnreachable(c);
			if (view.status === "signed_out" || !view.patient || !view.practice) return redirect(c, "/");
			if (view.status === "revoked") return c.html(revokedPage({ practice: view.practice }), 200, headersFor(c, true));

			const cookie = c.req.header("Cookie");
			const reader: FhirReader = async (path) => {
				const headers = new Headers({ Accept: "application/fhir+json" });
				if (cookie) headers.set("Cookie", cookie);
				return options.worker(new Request(new URL(path, config.publicOrigin), { headers }), c.env, c.executionCtx);
			};
			const outcome = await readRecord(reader, { patient: view.patient, practice: view.practice });
			switch (outcome.state) {
				case "record":
					return c.html(recordPage(outcome.record), 200, headersFor(c, true));
				case "revoked":
					return c.html(revokedPage({ practice: view.practice }), 200, headersFor(c, true));
				case "signed_out":
					return redirect(c, "/");
				case "unavailable":
					c.header("Retry-After", String(outcome.retryAfterSeconds));
					return c.html(unavailablePage(outcome), 503, headersFor(c, true));
			}
		});
}
