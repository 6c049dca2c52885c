import { html } from "hono/html";
import { AppError } from "../errors";
import type { Diagnosis } from "../oauth/first-contact";
import { actions as actionButtons, type Html, type PageAction, page } from "./layout";

/**
 * A sign-in failure whose page also tells whoever is testing what athena
 * refused and what to change. The callback raises it in preview and local
 * only: a patient in production sees the plain message.
 */
export class DiagnosedError extends AppError {
	readonly diagnosis: Diagnosis;

	constructor(error: AppError, diagnosis: Diagnosis) {
		super(error);
		this.diagnosis = diagnosis;
	}
}

const TITLES: Record<string, string> = {
	access_denied: "You did not share your record",
	token_budget_spent: "athenahealth is busy",
	athena_rate_limited: "athenahealth is busy",
	refresh_limited: "athenahealth is busy",
	too_many_attempts: "Too many sign-in attempts",
	athena_unavailable: "athenahealth is not answering",
	// Our own storage, not athena: say so rather than blame athena.
	session_unavailable: "This service is having trouble",
	sign_in_unavailable: "This service is having trouble",
	config_invalid: "This service is not set up yet",
	cross_site_refused: "Request refused",
};

/** Seconds as "about 40 seconds" / "about 2 minutes". */
export function retryWhen(seconds: number): string {
	if (seconds < 90) return `about ${seconds} second${seconds === 1 ? "" : "s"}`;
	return `about ${Math.round(seconds / 60)} minutes`;
}

/**
 * A page for a person who reached an outcome through an `AppError` (the
 * callback's denial, a refused or expired sign-in link, athena busy, a
 * configuration problem): what happened, and the next step. The message is
 * the error's safe `message`, never its `detail`. `retryPostTo` is the path
 * of a failed POST, so "Try again" posts it again.
 */
export function outcomePage(error: AppError, retryPostTo?: string): Html {
	const configProblem = error.code === "config_invalid";
	// 429: this client tried too often; 503: athena or we are busy. Either way, wait and try again.
	const busy = (error.status === 503 || error.status === 429) && !configProblem;
	let actions: PageAction[];
	if (busy) {
		// href="" reloads this URL (the callback's is retried with the state kept) without copying its query into the page.
		// A failed POST (sign out) is retried as a POST: a reload link would GET it.
		actions = [
			retryPostTo ? { label: "Try again", post: retryPostTo } : { label: "Try again", href: "" },
			{ label: "Home", href: "/", secondary: true },
		];
	} else if (configProblem) {
		actions = [{ label: "Service status (/health)", href: "/health", secondary: true }];
	} else {
		actions = [{ label: error.code === "access_denied" ? "Connect again" : "Start again", href: "/" }];
	}
	return page({
		title: TITLES[error.code] ?? (error.status >= 500 ? "Something went wrong" : "Sign-in could not be completed"),
		children: html`<p class="lead">${error.message}</p>${
			error.code === "access_denied"
				? html`<p>This app can show your record only with your permission. If you change your mind, connect again and choose Allow when athenahealth asks.</p>`
				: ""
		}${
			busy && error.retryAfterSeconds
				? html`<p class="notice">You can try again in ${retryWhen(error.retryAfterSeconds)}.</p>`
				: ""
		}${
			error instanceof DiagnosedError
				? html`<section class="notice"><h2>For testers (not in production)</h2><p><code>${error.diagnosis.cause}</code>: ${error.diagnosis.whatYouSee}. Change: ${error.diagnosis.whatToChange}</p></section>`
				: ""
		}${
			configProblem
				? html`<p class="muted">If you run this service: <code>/health</code> lists each setting that is missing or invalid, by name. Secrets are never shown.</p>`
				: ""
		}${actionButtons(actions)}`,
	});
}
