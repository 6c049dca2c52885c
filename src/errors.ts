/** What an expected failure says: to the caller, to a person, and to the log. */
export interface AppErrorOptions {
	/** Stable: callers switch on it. */
	code: string;
	/** The HTTP status it answers with. */
	status: number;
	/** Safe to show to a person. */
	message: string;
	/** For logs only: never sent to the client. */
	detail?: string | undefined;
	/** For 429/503: when the caller may try again. */
	retryAfterSeconds?: number | undefined;
}

/**
 * The one error type for expected failures. `code` is stable (callers switch
 * on it), `status` is the HTTP status, `message` is safe to show to a person,
 * and `detail` is for logs only (never sent to the client).
 *
 * @example
 * throw new AppError({ code: "signing_key_invalid", status: 503, message: "SIGNING_KEY is not a PEM RSA private key" });
 */
export class AppError extends Error {
	readonly code: string;
	readonly status: number;
	readonly detail: string | undefined;
	/** For 429/503: when the caller may try again. */
	readonly retryAfterSeconds: number | undefined;

	constructor(options: AppErrorOptions) {
		super(options.message);
		this.name = "AppError";
		this.code = options.code;
		this.status = options.status;
		this.detail = options.detail;
		this.retryAfterSeconds = options.retryAfterSeconds;
	}
}
