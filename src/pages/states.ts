import { html } from "hono/html";
import { actions, connectForm, type Html, page } from "./layout";
import { retryWhen } from "./outcome";

/**
 * The session's grant ended at athena (refresh answered `invalid_grant`): the
 * patient or the practice revoked the app. A normal state with a way back,
 * not an error (a patient or their practice can revoke the app at any time).
 */
export function revokedPage(): Html {
	return page({
		title: "Access was revoked",
		signedIn: true,
		children: html`<p class="lead">Access to your athenahealth record was revoked by you or your practice, so this app can no longer read it.</p>
<p>Nothing more will be read. If you want to see your record here again, reconnect and allow access when athenahealth asks. Otherwise, sign out to forget this session.</p>
${connectForm({ returnTo: "/record", label: "Reconnect with athenahealth" })}`,
	});
}

/**
 * athena (or our own budget of athena's token requests) asks us to wait, or
 * athena failed to answer. The session is kept: retrying later is enough.
 */
export function unavailablePage(props: { reason: "busy" | "down"; retryAfterSeconds: number }): Html {
	const busy = props.reason === "busy";
	return page({
		title: busy ? "athenahealth is busy" : "athenahealth is not answering",
		signedIn: true,
		children: html`<p class="lead">${
			busy
				? "athenahealth is limiting how often apps may ask for records right now."
				: "athenahealth did not answer in time, so your record could not be read."
		} You are still connected; nothing was lost.</p>
<p class="notice" role="status">Try again in ${retryWhen(props.retryAfterSeconds)}.</p>
${actions([{ label: "Try again", href: "/record" }])}`,
	});
}

/** A note link that leads nowhere: withheld by the practice, gone, or not one of this patient's. */
export function noteMissingPage(): Html {
	return page({
		title: "This note is not available",
		signedIn: true,
		children: html`<p class="lead">Your practice has not released this note to the portal, or it is no longer in your record.</p>
${actions([{ label: "Back to your record", href: "/record#notes" }])}`,
	});
}
