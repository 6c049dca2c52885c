import { Hono } from "hono/tiny";
import { version } from "../../package.json";
import type { AppEnv } from "../app-env";
import { configFor, jwksSettings } from "../config";
import { AppError } from "../errors";
import { activeSigningKey } from "../signer";

/**
 * `GET /health`: 200 `{ ok, environment, version }` when the worker can serve,
 * else 503 with every configuration problem, each naming its setting (never a
 * secret's value) so an operator can fix them all in one pass.
 */
export const healthRoutes = new Hono<AppEnv>().get("/health", async (c) => {
	const result = configFor(c.env);
	const problems = result.ok ? [] : [...result.problems];
	if (!problems.some((p) => p.startsWith("SIGNING_KEY:"))) {
		try {
			await activeSigningKey(jwksSettings(c.env).signingKeyPem);
		} catch (error) {
			problems.push(error instanceof AppError ? error.message : "SIGNING_KEY: could not be imported");
		}
	}
	const environment = result.ok ? result.config.environment : result.environment;
	c.header("Cache-Control", "no-store");
	if (problems.length > 0) return c.json({ ok: false, environment, version, problems }, 503);
	return c.json({ ok: true, environment, version });
});
