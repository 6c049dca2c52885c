import type { BudgetAnswer, BudgetRequest } from "../durable/token-budget";
import { AppError } from "../errors";

/** What a token-endpoint call needs of the environment's TokenBudget object. */
export interface TokenBudgetApi {
	reserve(request: BudgetRequest): Promise<BudgetAnswer>;
	exchangeFailed(clients: string[]): Promise<void>;
	athenaRefused(retryAfterSeconds: number): Promise<void>;
}

/** How soon to try again when the budget's own object could not be reached. */
const BUDGET_UNAVAILABLE_RETRY_SECONDS = 5;

/**
 * Answers of athena's token endpoint that mean the code the client sent was
 * bad (made up, replayed, for another client): counted against that client.
 * Busy, down or our own credentials refused are never the client's doing.
 */
const CLIENT_CAUSED = new Set(["invalid_grant", "token_request_refused"]);

function refusal(answer: Extract<BudgetAnswer, { ok: false }>, purpose: BudgetRequest["purpose"]): AppError {
	const retryAfterSeconds = answer.retryAfterSeconds;
	if (answer.reason === "client_blocked") {
		return new AppError({
			code: "too_many_attempts",
			status: 429,
			message: "Too many sign-in attempts came from this device or network. Wait a minute, then connect again.",
			detail: "client refused after failed code exchanges",
			retryAfterSeconds,
		});
	}
	if (answer.reason === "session_limited") {
		return new AppError({
			code: "refresh_limited",
			status: 503,
			message: "Your access was renewed too often in the last minute. Please try again shortly.",
			detail: "session refresh limit reached",
			retryAfterSeconds,
		});
	}
	return new AppError({
		code: "token_budget_spent",
		status: 503,
		message:
			purpose === "sign_in"
				? "athenahealth is limiting sign-ins right now. Your sign-in is kept: try again in a moment."
				: "athenahealth is limiting sign-ins right now. Please try again shortly.",
		detail: purpose === "sign_in" ? "sign-in share of the token budget spent" : "token budget spent",
		retryAfterSeconds,
	});
}

/**
 * The one way to athena's token endpoint: reserve a call from the
 * environment's budget, make it, and report what athena said about it (a 429
 * stops everyone until athena allows; a refused code counts against the
 * client that sent it). Throws an AppError without calling `call` when the
 * budget says no.
 *
 * @example
 * const tokens = await budgetedTokenCall(tokenBudget(env), { purpose: "refresh", limit, session }, () =>
 *   refreshTokens(client, tokenUrl, { refreshToken, scope }),
 * );
 */
export async function budgetedTokenCall<T>(
	budget: TokenBudgetApi,
	request: BudgetRequest,
	call: () => Promise<T>,
): Promise<T> {
	let answer: BudgetAnswer;
	try {
		answer = await budget.reserve(request);
	} catch (error) {
		throw new AppError({
			code: "token_budget_unavailable",
			status: 503,
			message:
				request.purpose === "sign_in"
					? "Sign-in is not available right now. Please try again in a moment. Your sign-in is kept."
					: "Your access could not be renewed right now. Please try again in a moment.",
			detail: `token budget unavailable: ${error instanceof Error ? error.name : typeof error}`,
			retryAfterSeconds: BUDGET_UNAVAILABLE_RETRY_SECONDS,
		});
	}
	if (!answer.ok) throw refusal(answer, request.purpose);
	try {
		return await call();
	} catch (failure) {
		if (failure instanceof AppError) {
			if (failure.code === "athena_rate_limited") {
				await budget.athenaRefused(failure.retryAfterSeconds ?? 60).catch(() => undefined);
			} else if (request.purpose === "sign_in" && CLIENT_CAUSED.has(failure.code)) {
				await budget.exchangeFailed(request.clients).catch(() => undefined);
			}
		}
		throw failure;
	}
}
