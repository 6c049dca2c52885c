import { html, raw } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";

/**
 * Security headers for every page: nothing loads from anywhere but this
 * origin, no inline script, no framing, no referrer (the callback URL carries
 * a code and state).
 */
export function pageHeaders(authorizeOrigin?: string): Record<string, string> {
	// Chrome applies form-action to the redirect after a submit: /launch redirects to athena.
	const formAction = authorizeOrigin ? `'self' ${authorizeOrigin}` : "'self'";
	return {
		"Content-Type": "text/html; charset=utf-8",
		"Content-Security-Policy": `default-src 'none'; style-src 'self'; img-src 'self' data:; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
		"Referrer-Policy": "no-referrer",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options": "DENY",
		"Cache-Control": "no-store",
	};
}

export const STYLESHEET = `
:root{color-scheme:light;--ink:#1b1f23;--muted:#4a5560;--accent:#0b5cad;--bg:#f6f8fa;--card:#fff;--line:#d0d7de}
*{box-sizing:border-box}body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:52rem;margin:0 auto;padding:1.5rem 1rem}h1{font-size:1.6rem;margin:.2rem 0 1rem}h2{font-size:1.2rem;margin:1.5rem 0 .5rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
.muted{color:var(--muted)}a{color:var(--accent)}
.button,button{display:inline-block;background:var(--accent);color:#fff;border:0;border-radius:6px;padding:.6rem 1rem;font:inherit;text-decoration:none;cursor:pointer}
.button.secondary,button.secondary{background:#fff;color:var(--accent);border:1px solid var(--accent)}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}input{font:inherit;padding:.5rem;border:1px solid var(--line);border-radius:6px;width:100%;max-width:16rem}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;margin-top:1rem}form.inline{display:inline}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid var(--line);vertical-align:top}
ul.plain{padding-left:1.1rem}svg{max-width:100%;height:auto}
`;

export interface PageAction {
	label: string;
	href?: string;
	/** POST target for actions that change state (sign out). */
	post?: string;
	secondary?: boolean;
}

function actionHtml(action: PageAction) {
	const cls = action.secondary ? "button secondary" : "button";
	if (action.post) {
		return html`<form class="inline" method="post" action="${action.post}"><button class="${action.secondary ? "secondary" : ""}" type="submit">${action.label}</button></form>`;
	}
	return html`<a class="${cls}" href="${action.href ?? "/"}">${action.label}</a>`;
}

/** The page frame: title, heading, body and a row of next steps. */
export function page(input: {
	title: string;
	body: HtmlEscapedString | Promise<HtmlEscapedString> | string;
	actions?: PageAction[];
}) {
	return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${input.title} · athena connector</title>
<link rel="stylesheet" href="/assets/app.css">
</head>
<body>
<main>
<h1>${input.title}</h1>
${typeof input.body === "string" ? html`<p>${input.body}</p>` : input.body}
${input.actions?.length ? html`<div class="actions">${input.actions.map(actionHtml)}</div>` : raw("")}
</main>
</body>
</html>`;
}
