type Level = "info" | "warn" | "error";

/**
 * One structured JSON line. Callers pass identifiers and measurements only:
 * never tokens, codes, verifiers, query values, PHI or raw session ids.
 */
export function log(level: Level, msg: string, fields: Record<string, unknown> = {}): void {
	const line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
	if (level === "error") console.error(line);
	else if (level === "warn") console.warn(line);
	else console.log(line);
}

/** Fields routes may add to their request's log line (e.g. a hashed session id). */
export type LogFields = Record<string, string | number | boolean | undefined>;
