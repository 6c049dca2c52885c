import { Actions, ConnectForm, page } from "./layout";
import { retryWhen } from "./outcome";

/**
 * The session's grant ended at athena (refresh answered `invalid_grant`): the
 * patient or the practice revoked the app. A normal state with a way back,
 * not an error (a patient or their practice can revoke the app at any time).
 */
export function revokedPage() {
	return page({
		title: "Access was revoked",
		signedIn: true,
		children: (
			<>
				<p class="lead">
					Access to your athenahealth record was revoked by you or your practice, so this app can no longer read it.
				</p>
				<p>
					Nothing more will be read. If you want to see your record here again, reconnect and allow access when
					athenahealth asks. Otherwise, sign out to forget this session.
				</p>
				<ConnectForm returnTo="/record" label="Reconnect with athenahealth" />
			</>
		),
	});
}

/**
 * athena (or our own budget of athena's token requests) asks us to wait, or
 * athena failed to answer. The session is kept: retrying later is enough.
 */
export function unavailablePage(props: { reason: "busy" | "down"; retryAfterSeconds: number }) {
	return page({
		title: props.reason === "busy" ? "athenahealth is busy" : "athenahealth is not answering",
		signedIn: true,
		children: (
			<>
				<p class="lead">
					{props.reason === "busy"
						? "athenahealth is limiting how often apps may ask for records right now."
						: "athenahealth did not answer in time, so your record could not be read."}{" "}
					You are still connected; nothing was lost.
				</p>
				<p class="notice" role="status">
					Try again in {retryWhen(props.retryAfterSeconds)}.
				</p>
				<Actions actions={[{ label: "Try again", href: "/record" }]} />
			</>
		),
	});
}
