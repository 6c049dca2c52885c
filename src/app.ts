import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import type { AppEnv } from "./app-env";
import { AppError } from "./errors";
import { log, requestLog } from "./log";
import { healthRoutes } from "./routes/health";
import { jwksRoutes } from "./routes/jwks";

/** The worker's HTTP surface: sub-apps joined here, errors turned into responses in one place. */
export const app = new Hono<AppEnv>()
	.use(requestId({ headerName: "X-Request-Id" }))
	.use(requestLog())
	.route("/", jwksRoutes)
	.route("/", healthRoutes);

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
