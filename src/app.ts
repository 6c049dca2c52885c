import { HTTPException } from "hono/http-exception";
import { Hono } from "hono/tiny";
import type { AppEnv } from "./app-env";
import { configFor } from "./config";
import { AppError } from "./errors";
import { log } from "./log";
import { requestIdentity, requestLog } from "./middleware/request-log";
import { requireConfig } from "./middleware/require-config";
import { sameOriginOnly } from "./middleware/same-origin";
import { limitSignInAttempts } from "./middleware/sign-in-attempts";
import { pageHeaders, STYLESHEET } from "./pages/layout";
import { outcomePage } from "./pages/outcome";
import { authRoutes } from "./routes/auth";
import { callback } from "./routes/callback";
import { exportRoutes } from "./routes/export";
import { fhirRoutes } from "./routes/fhir";
import { healthRoutes } from "./routes/health";
import { jwksRoutes } from "./routes/jwks";
import { pageRoutes } from "./routes/pages";

/** The worker's HTTP surface: sub-apps joined here, errors turned into responses in one place. */
export const app = new Hono<AppEnv>()
	.use(requestIdentity())
	.use(requestLog())
	.use(sameOriginOnly())
	.route("/", jwksRoutes)
	.route("/", healthRoutes)
	.route("/", authRoutes)
	.route("/", fhirRoutes)
	.route("/", pageRoutes())
	.route("/", exportRoutes())
	.get("/assets/app.css", (c) =>
		c.body(STYLESHEET, 200, {
			"Content-Type": "text/css; charset=utf-8",
			"Cache-Control": "public, max-age=3600",
			"X-Content-Type-Options": "nosniff",
		}),
	);

const limitCallbacks = limitSignInAttempts("callback");

// The callback lives at the path of the configured redirect URI (e.g. /callback
// locally, /api/auth/smart/callback in production), known only at request time.
app.get("*", async (c, next) => {
	const result = configFor(c.env);
	if (!result.ok || c.req.path !== result.config.callbackPath) return next();
	// Limited per client before the callback touches a Durable Object or the token budget.
	await limitCallbacks(c, () => Promise.resolve());
	await requireConfig()(c, () => Promise.resolve());
	return callback(c);
});

function wantsPage(accept: string | undefined): boolean {
	return accept?.includes("text/html") ?? false;
}

app.notFound((c) => c.json({ error: "not_found", message: "No such route" }, 404));

app.onError((error, c) => {
	const requestIdValue = c.get("requestId");
	c.header("Cache-Control", "no-store");
	if (error instanceof AppError) {
		log(error.status >= 500 ? "error" : "warn", "request failed", {
			requestId: requestIdValue,
			code: error.code,
			detail: error.detail,
		});
		c.get("logFields").error = error.code;
		if (error.retryAfterSeconds) c.header("Retry-After", String(error.retryAfterSeconds));
		if (wantsPage(c.req.header("Accept"))) {
			const retryPostTo = c.req.method === "POST" ? c.req.path : undefined;
			return c.html(outcomePage(error, retryPostTo), error.status as 400, pageHeaders());
		}
		return c.json({ error: error.code, message: error.message, requestId: requestIdValue }, error.status as 400);
	}
	if (error instanceof HTTPException) {
		return c.json({ error: "bad_request", message: error.message, requestId: requestIdValue }, error.status);
	}
	// Unexpected: log the class and message only (a stack could carry request data), answer generically.
	log("error", "unhandled error", { requestId: requestIdValue, name: error.name, detail: error.message });
	return c.json(
		{ error: "internal_error", message: "Something went wrong on our side", requestId: requestIdValue },
		500,
	);
});
