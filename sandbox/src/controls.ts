import { type Context, Hono } from "hono";
import { z } from "zod";
import { isPlainHttpUrl, MAX_REFRESH_GRACE_SECONDS } from "./config";
import { type AppEnv, effectiveConfig, stateStub } from "./context";
import { findLogin, findRecord, RECORDS } from "./users";

/*
 * Test and demo controls. They exist only in the sandbox (never in athena or
 * the product), take and return JSON, and need no authentication because the
 * sandbox only ever runs on a developer's machine or inside the test runner.
 */
export const controls = new Hono<AppEnv>();

const badRequest = (issues: unknown) => Response.json({ error: "invalid_request", issues }, { status: 400 });

async function jsonBody(request: Request): Promise<unknown> {
	const text = await request.text();
	if (text.trim() === "") return {};
	try {
		return JSON.parse(text);
	} catch {
		return Symbol("invalid");
	}
}

const RevokeBody = z.object({
	patient: z.string().refine((id) => findRecord(id) !== undefined, "unknown patient"),
});

controls.post("/revoke", async (c) => {
	const parsed = RevokeBody.safeParse(await jsonBody(c.req.raw));
	if (!parsed.success) return badRequest(parsed.error.issues);
	const revokedGrants = await stateStub(c.env).revokePatient(parsed.data.patient);
	return c.json({ patient: parsed.data.patient, revokedGrants });
});

controls.post("/expire-access-tokens", async (c) => {
	const expired = await stateStub(c.env).expireAccessTokens();
	return c.json({ expired });
});

const positiveInt = z.number().int().positive();
/** The largest instant a JavaScript Date can hold (ECMA-262 §21.4.1.1). */
const MAX_EPOCH_MS = 8.64e15;
const FaultBody = z
	.object({
		target: z.enum(["token", "fhir"]),
		status: z.number().int().min(400).max(599).optional(),
		delayMs: z.number().int().min(0).max(120_000).optional(),
		response: z.enum(["html", "missing_patient", "missing_access_token"]).optional(),
		oauthError: z
			.string()
			.regex(/^[a-z_]{1,40}$/)
			.optional(),
		description: z.string().max(300).optional(),
		cutAfterBytes: z.number().int().min(0).optional(),
		times: positiveInt.optional(),
	})
	.strict()
	.refine((f) => f.target === "token" || f.response === undefined, "response applies to the token target only")
	.refine(
		(f) => f.target === "token" || (f.oauthError === undefined && f.description === undefined),
		"oauthError and description apply to the token target only",
	)
	.refine((f) => f.description === undefined || f.oauthError !== undefined, "description needs an oauthError")
	.refine((f) => f.target === "fhir" || f.cutAfterBytes === undefined, "cutAfterBytes applies to the fhir target only")
	.refine(
		(f) =>
			f.status !== undefined ||
			f.delayMs !== undefined ||
			f.response !== undefined ||
			f.cutAfterBytes !== undefined ||
			f.oauthError !== undefined,
		"a fault needs at least one of status, delayMs, response, cutAfterBytes, oauthError",
	);

controls.post("/faults", async (c) => {
	const parsed = FaultBody.safeParse(await jsonBody(c.req.raw));
	if (!parsed.success) return badRequest(parsed.error.issues);
	const { target, ...fault } = parsed.data;
	const stub = stateStub(c.env);
	await stub.setFault(target, fault);
	return c.json(await stub.getFaults());
});

controls.get("/faults", async (c) => c.json(await stateStub(c.env).getFaults()));

controls.delete("/faults", async (c) => {
	const stub = stateStub(c.env);
	await stub.setFault("token", null);
	await stub.setFault("fhir", null);
	return c.json({});
});

controls.post("/reset", async (c) => {
	await stateStub(c.env).reset();
	return c.json({ reset: true });
});

const plainUrl = z.string().refine(isPlainHttpUrl, "must be an absolute http(s) URL without query or fragment");
const ConfigBody = z
	.object({
		issuer: plainUrl.optional(),
		postLogoutRedirectUris: z.array(plainUrl).optional(),
		tokenRateLimit: z.number().int().min(0).optional(),
		accessTokenTtl: positiveInt.optional(),
		refreshGraceSeconds: z.number().int().min(0).max(MAX_REFRESH_GRACE_SECONDS).optional(),
		/** The scopes ticked on the portal: a scope left out is refused at authorize (invalid_scope). */
		allowedScopes: z.array(z.string().regex(/^\S{1,100}$/)).optional(),
	})
	.strict();

function publicConfig(config: Awaited<ReturnType<typeof effectiveConfig>>) {
	return {
		issuer: config.issuer,
		clientId: config.clientId,
		redirectUris: config.redirectUris,
		postLogoutRedirectUris: config.postLogoutRedirectUris,
		jwksUrl: config.jwksUrl,
		allowedScopes: [...config.allowedScopes],
		accessTokenTtl: config.accessTokenTtl,
		tokenRateLimit: config.tokenRateLimit,
		refreshGraceSeconds: config.refreshGraceSeconds,
	};
}

const updateConfig = async (c: Context<AppEnv>) => {
	const parsed = ConfigBody.safeParse(await jsonBody(c.req.raw));
	if (!parsed.success) return badRequest(parsed.error.issues);
	const stub = stateStub(c.env);
	await stub.setOverrides(parsed.data);
	return c.json(publicConfig(await effectiveConfig(c.env, stub)));
};
controls.post("/config", updateConfig);
controls.put("/config", updateConfig);
controls.get("/config", async (c) => {
	const stub = stateStub(c.env);
	return c.json(publicConfig(await effectiveConfig(c.env, stub)));
});

/*
 * The sandbox's clock. Frozen, every expiry, the rate limit's calendar minute,
 * the refresh grace and the id_token's iat/exp read this instant instead of the
 * real time, so a test can stand at 59.999 s of a minute and step over it.
 * Client assertions are judged by it too (with the usual 10 s skew): the
 * product signs them with the real time, so freeze near Date.now().
 */
const ClockBody = z.union([
	z.object({ now: z.number().int().min(0).max(MAX_EPOCH_MS) }).strict(),
	z.object({ advanceMs: z.number().int().min(0).max(MAX_EPOCH_MS) }).strict(),
]);

controls.get("/clock", async (c) => c.json(await stateStub(c.env).readClock()));

controls.post("/clock", async (c) => {
	const parsed = ClockBody.safeParse(await jsonBody(c.req.raw));
	if (!parsed.success) return badRequest(parsed.error.issues);
	const stub = stateStub(c.env);
	if ("now" in parsed.data) return c.json(await stub.freezeClock(parsed.data.now));
	const advanced = await stub.advanceClock(parsed.data.advanceMs);
	if (!advanced) {
		return c.json(
			{ error: "clock_not_frozen", error_description: 'Freeze the clock with {"now": <epoch ms>} first' },
			409,
		);
	}
	return c.json(advanced);
});

controls.delete("/clock", async (c) => c.json(await stateStub(c.env).unfreezeClock()));

controls.get("/received", async (c) => c.json(await stateStub(c.env).getReceived()));

/** Every record a test login can open (users.ts), with the login's credentials. */
controls.get("/patients", (c) =>
	c.json(
		RECORDS.map((record) => ({
			id: record.patient,
			practice: record.practice,
			name: record.display,
			relationship: record.relationship,
			username: record.login,
			password: findLogin(record.login)?.password,
		})),
	),
);

controls.all("*", (c) => c.json({ error: "not_found" }, 404));
