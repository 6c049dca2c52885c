import { type HealthRecord, LOGINS } from "./users";

const escapeHtml = (value: string) =>
	value.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] ?? c);

const PAGE_HEADERS = {
	"Content-Type": "text/html; charset=utf-8",
	"Cache-Control": "no-store",
	"Referrer-Policy": "no-referrer",
	"X-Frame-Options": "DENY",
	// Plain HTML forms only: no script is needed or allowed.
	"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' http: https:",
};

function page(title: string, body: string, status = 200): Response {
	const html = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}
.banner{background:#fff3cd;padding:.5rem;border-radius:4px;font-size:.9rem}
label{display:block;margin:.75rem 0 .25rem}input[type=text],input[type=password]{width:100%;padding:.4rem}
.record label{display:inline;margin:0 0 0 .5rem}.practice{color:#555}
button{margin:1rem .5rem 0 0;padding:.5rem 1.25rem}.error{color:#a00}</style></head>
<body><p class="banner">Local athena sandbox: synthetic data, development only.</p>
<h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
	return new Response(html, { status, headers: PAGE_HEADERS });
}

/** Shown for errors before redirect_uri is trusted: never a redirect (RFC 6749 §4.1.2.1). */
export function errorPage(message: string, status = 400): Response {
	return page("Sign-in request refused", `<p class="error" role="alert">${escapeHtml(message)}</p>`, status);
}

export function signInPage(requestId: string, error?: string, status = 200): Response {
	return page(
		"Sign in to your patient portal",
		`${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ""}
<form method="post" action="/oauth2/v1/authorize/signin">
<input type="hidden" name="request" value="${escapeHtml(requestId)}">
<label for="username">Username</label>
<input id="username" name="username" type="text" autocomplete="username" required>
<label for="password">Password</label>
<input id="password" name="password" type="password" autocomplete="current-password" required>
<button type="submit">Sign in</button>
</form>
<p>Test logins: ${LOGINS.map((l) => `<code>${escapeHtml(l.username)}</code> / <code>${escapeHtml(l.password)}</code>`).join(", ")}</p>`,
		status,
	);
}

/** How the picker names a record: "Jake Medlock (you)", or the dependent's name. */
export function recordLabel(record: HealthRecord): string {
	return record.relationship === "self" ? `${record.display} (you)` : record.display;
}

/**
 * athena's "Select a health record": the patient, not the app, picks whose
 * record to share and at which practice. One radio button per record, named
 * `record`, valued with its patient id.
 */
export function recordPickerPage(
	requestId: string,
	records: readonly HealthRecord[],
	error?: string,
	status = 200,
): Response {
	const options = records
		.map(
			(
				record,
				i,
			) => `<p class="record"><input type="radio" id="record-${i}" name="record" value="${escapeHtml(record.patient)}" required>
<label for="record-${i}">${escapeHtml(recordLabel(record))} <span class="practice">at practice ${escapeHtml(record.practice)}</span></label></p>`,
		)
		.join("\n");
	return page(
		"Select a health record",
		`${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ""}
<p>Whose record do you want to share with the app?</p>
<form method="post" action="/oauth2/v1/authorize/select">
<input type="hidden" name="request" value="${escapeHtml(requestId)}">
${options}
<button type="submit">Continue</button>
</form>`,
		status,
	);
}

export function consentPage(requestId: string, record: HealthRecord, scopes: readonly string[]): Response {
	const items = scopes.map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join("");
	return page(
		"Allow access to your health record?",
		`<p>Sharing the record of ${escapeHtml(recordLabel(record))} at practice ${escapeHtml(record.practice)}. The app asks for:</p>
<ul>${items}</ul>
<form method="post" action="/oauth2/v1/authorize/consent">
<input type="hidden" name="request" value="${escapeHtml(requestId)}">
<button type="submit" name="decision" value="allow">Allow</button>
<button type="submit" name="decision" value="deny">Deny</button>
</form>`,
	);
}

export function signedOutPage(): Response {
	return page("Signed out", "<p>You are signed out of athenahealth in this browser.</p>");
}

/** Used by the token fault "html": a proxy's error page where JSON was expected. */
export function htmlFaultPage(status: number): Response {
	return page("Service unavailable", "<p>The upstream service returned an HTML page.</p>", status);
}
