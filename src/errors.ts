/**
 * The one error type for expected failures. `code` is stable (callers switch
 * on it), `status` is the HTTP status, `message` is safe to show to a person,
 * and `detail` is for logs only (never sent to the client).
 *
 * @example
 * throw new AppError("signing_key_invalid", 503, "SIGNING_KEY is not a PEM RSA private key");
 */
export class AppError extends Error {
	readonly code: string;
	readonly status: number;
	readonly detail: string | undefined;
	/** For 429/503: when the caller may try again. */
	readonly retryAfterSeconds: number | undefined;

	constructor(code: string, status: number, message: string, detail?: string, retryAfterSeconds?: number) {
		super(message);
		this.name = "AppError";
		this.code = code;
		this.status = status;
		this.detail = detail;
		this.retryAfterSeconds = retryAfterSeconds;
	}
}
