import { html } from "hono/html";
import { connectForm, type Html, type ListedServer, page, serverConnectForms } from "./layout";

/**
 * `/` for a browser without a session: what the app does and the connect
 * form. `ended` says the browser still held a session cookie the server no
 * longer knows (idle or absolute expiry), so the patient learns why they see
 * this page again.
 */
export function homePage(props: {
	ended?: boolean;
	sandbox?: boolean;
	grantKept?: boolean;
	/** SMART_SERVERS: each gets its own button after athena's. */
	servers?: readonly ListedServer[];
}): Html {
	return page({
		title: "See your athenahealth record",
		children: html`${
			props.ended
				? html`<p class="notice" role="status">Your session has ended, either because it was idle or because you signed out. Connect again to see your record.</p>`
				: ""
		}${
			props.grantKept
				? html`<p class="notice" role="status">You are signed out here. Your record's server offers apps no way to hand access back, so to end this app's access there too, remove it in your patient portal.</p>`
				: ""
		}<p class="lead">Connect the patient portal account you use with your doctor's practice, and see your allergies, conditions, medications, immunizations, visits, vitals, lab results and documents in one place.</p>
<ul><li>You sign in at athenahealth, not here, and choose whether to share your record.</li><li>This app only reads your record; it never changes it.</li><li>Disconnect at any time with "Sign out"; you or your practice can also revoke access at athenahealth.</li></ul>
<section class="card" aria-labelledby="connect-heading"><h2 id="connect-heading">Connect</h2>${connectForm()}${serverConnectForms(props.servers ?? [])}</section>${
			props.sandbox
				? html`<p class="muted">Local sandbox: sign in with <code>phrtest_preview@mailinator.com</code> / <code>Password1</code>, then choose a record. All data is synthetic.</p>`
				: ""
		}`,
	});
}
