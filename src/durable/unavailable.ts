import { AppError } from "../errors";

/** How soon a caller may retry after a Durable Object failed (they restart within seconds). */
export const DURABLE_RETRY_SECONDS = 5;

/**
 * Runs a Durable Object call and turns a failure of the object itself (reset
 * after a deploy, overloaded, a storage error: anything that is not already an
 * AppError) into a 503 the caller can retry, instead of a 500. Only the
 * error's class goes to the log detail: its message could come from anywhere.
 *
 * @example
 * const view = await durableCall(() => stub.view(), "session_unavailable", "Your session could not be reached.");
 */
export async function durableCall<T>(call: () => Promise<T>, code: string, message: string): Promise<T> {
	try {
		return await call();
	} catch (error) {
		if (error instanceof AppError) throw error;
		throw new AppError({
			code,
			status: 503,
			message,
			detail: `Durable Object call failed: ${error instanceof Error ? error.name : typeof error}`,
			retryAfterSeconds: DURABLE_RETRY_SECONDS,
		});
	}
}
