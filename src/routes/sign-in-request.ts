import type { Context } from "hono";
import type { AppEnv } from "../app-env";
import { AppError } from "../errors";

// What the sign-in routes (launch, callback, logout) share: cookie attributes, query reading, refusals.

const MAX_PARAM_LENGTH = 2048;
export const PRACTICE_PATTERN = /^\d{1,12}$/;

export const cookieBase = { path: "/", secure: true, httpOnly: true, sameSite: "Lax" } as const;

export function refused(code: string, message: string, detail?: string): AppError {
	return new AppError({ code, status: 400, message, detail });
}

export function param(c: Context<AppEnv>, name: string): string | undefined {
	const values = c.req.queries(name);
	if (!values) return undefined;
	if (values.length > 1) throw refused("parameter_repeated", `The ${name} parameter was given more than once.`);
	const value = values[0] ?? "";
	if (value.length > MAX_PARAM_LENGTH) throw refused("parameter_too_long", `The ${name} parameter is too long.`);
	return value;
}

export const SIGN_IN_UNAVAILABLE = "Sign-in is not available right now. Please try again in a moment.";
export const SESSION_UNAVAILABLE = "Your session could not be reached right now. Please try again in a moment.";
