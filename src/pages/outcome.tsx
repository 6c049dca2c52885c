import type { AppError } from "../errors";
import { type PageAction, page } from "./layout";

const TITLES: Record<string, string> = {
	access_denied: "You did not share your record",
	token_budget_spent: "athenahealth is busy",
	athena_rate_limited: "athenahealth is busy",
	athena_unavailable: "athenahealth is not answering",
	config_invalid: "This service is not set up yet",
	cross_site_refused: "Request refused",
};

/** A page for a person who reached an outcome: what happened and the next step. */
export function outcomePage(error: AppError) {
	const busy = error.status === 503 && error.code !== "config_invalid";
	const actions: PageAction[] = busy
		? // href="" reloads this URL without copying its query (a code) into the page.
			[
				{ label: "Try again", href: "" },
				{ label: "Home", href: "/", secondary: true },
			]
		: [{ label: error.code === "access_denied" ? "Connect again" : "Start again", href: "/" }];
	const retry =
		busy && error.retryAfterSeconds ? ` You can try again in about ${error.retryAfterSeconds} seconds.` : "";
	return page({
		title: TITLES[error.code] ?? (error.status >= 500 ? "Something went wrong" : "Sign-in could not be completed"),
		body: `${error.message}${retry}`,
		actions,
	});
}
