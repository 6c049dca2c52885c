import { html } from "hono/html";
import type { HtmlEscapedString } from "hono/utils/html";

/**
 * Markup built with Hono's `html` template tag, which escapes every
 * interpolated string (text and attribute values alike; attributes are always
 * quoted). Plain templates rather than JSX keep the JSX runtime out of the
 * worker's bundle.
 */
export type Html = HtmlEscapedString | Promise<HtmlEscapedString>;

/**
 * Security headers for every page: nothing loads from anywhere but this
 * origin, no script at all, no framing, and no referrer (the callback URL
 * carries a code and state).
 *
 * - `authorizeOrigin` is needed on pages with a connect form: Chrome applies
 *   `form-action` to the redirect after a submit, and /launch redirects to athena.
 * - `postsForms` is for pages with a POST form (sign out). Under
 *   `no-referrer`, browsers send `Origin: null` on a form POST (Fetch
 *   standard, "serializing a request origin"), which the same-origin check
 *   rightly refuses; `same-origin` sends the real origin to this site and still
 *   nothing to any other (the /launch redirect to athena carries no referrer).
 */
export function pageHeaders(options: { authorizeOrigin?: string; postsForms?: boolean } = {}): Record<string, string> {
	const formAction = options.authorizeOrigin ? `'self' ${options.authorizeOrigin}` : "'self'";
	return {
		"Content-Type": "text/html; charset=utf-8",
		"Content-Security-Policy": `default-src 'none'; style-src 'self'; img-src 'self' data:; form-action ${formAction}; frame-ancestors 'none'; base-uri 'none'`,
		"Referrer-Policy": options.postsForms ? "same-origin" : "no-referrer",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options": "DENY",
		"Cache-Control": "no-store",
	};
}

/**
 * Served at /assets/app.css (the CSP allows styles from this origin only).
 * Colours meet WCAG AA contrast on their backgrounds; the layout is one
 * column on a phone and a two-column grid of sections from 48rem.
 */
export const STYLESHEET = `
:root{color-scheme:light;--ink:#1b1f23;--muted:#4a5560;--accent:#0b5cad;--accent-dark:#084a8c;--bg:#f6f8fa;--card:#fff;--line:#d0d7de;--warn-bg:#fff8e1;--warn-line:#b58100;--bad:#a4262c;--good:#1a7f37}
*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--ink);background:var(--bg)}
.skip{position:absolute;left:-999px;top:0;background:#fff;padding:.5rem}.skip:focus{left:.5rem}
header.site{background:#fff;border-bottom:1px solid var(--line)}
header.site .inner,footer.site .inner,main{max-width:60rem;margin:0 auto;padding:0 1rem}
header.site .inner{display:flex;align-items:center;justify-content:space-between;gap:1rem;min-height:3.25rem;flex-wrap:wrap}
.brand{font-weight:700;color:var(--ink);text-decoration:none}
main{padding-top:1.25rem;padding-bottom:2rem}
footer.site{color:var(--muted);font-size:.875rem;border-top:1px solid var(--line);padding:1rem 0}
h1{font-size:1.6rem;line-height:1.25;margin:.25rem 0 1rem}h2{font-size:1.2rem;margin:0 0 .5rem}h3{font-size:1rem;margin:1rem 0 .25rem}
.lead{font-size:1.1rem}
.card{background:var(--card);border:1px solid var(--line);border-radius:8px;padding:1rem 1.25rem;margin:1rem 0;min-width:0}
.notice{background:var(--warn-bg);border:1px solid var(--warn-line);border-radius:8px;padding:.75rem 1rem;margin:1rem 0}
.muted{color:var(--muted)}a{color:var(--accent)}
.button,button{display:inline-block;background:var(--accent);color:#fff;border:2px solid var(--accent);border-radius:6px;padding:.55rem 1rem;font:inherit;font-weight:600;text-decoration:none;cursor:pointer;min-height:44px}
.button:hover,button:hover{background:var(--accent-dark);border-color:var(--accent-dark)}
.button.secondary,button.secondary{background:#fff;color:var(--accent)}
:focus-visible{outline:3px solid #f0b400;outline-offset:2px}
label{display:block;font-weight:600;margin:.5rem 0 .25rem}
input{font:inherit;padding:.5rem;border:1px solid #6e7781;border-radius:6px;width:100%;max-width:16rem;min-height:44px}
.hint{color:var(--muted);font-size:.9rem;margin:.25rem 0 0}
.actions{display:flex;gap:.75rem;flex-wrap:wrap;align-items:center;margin-top:1rem}
form.inline{display:inline;margin:0}
.sections{display:grid;grid-template-columns:1fr;gap:0 1rem}
@media (min-width:48rem){.sections{grid-template-columns:1fr 1fr}.sections .wide{grid-column:1/-1}}
.facts{display:grid;grid-template-columns:max-content 1fr;gap:.25rem 1rem;margin:0}.facts dt{color:var(--muted)}.facts dd{margin:0}
ul.items{list-style:none;padding:0;margin:0}ul.items li{padding:.4rem 0;border-bottom:1px solid var(--line)}ul.items li:last-child{border-bottom:0}
table{border-collapse:collapse;width:100%}th,td{text-align:left;padding:.4rem .5rem .4rem 0;border-bottom:1px solid var(--line);vertical-align:top}
.results tbody th{font-weight:400}.results small{display:block;color:var(--muted)}.results td:last-child{white-space:nowrap}@media (max-width:30rem){.results{font-size:.9rem}.results :is(th,td){padding:.3rem .4rem .3rem 0}}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip-path:inset(50%)}
.jump{display:flex;flex-wrap:wrap;gap:.25rem 1rem;margin:1rem 0 0}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(15rem,1fr));gap:0 1rem}.charts h3{margin:.5rem 0 0}
figure.chart{margin:.5rem 0}svg{display:block;width:100%;height:auto}svg.spark{display:inline-block;width:4rem;vertical-align:middle}
.legend{display:flex;gap:1rem;font-size:.875rem;color:var(--muted)}.key::before{content:"";display:inline-block;width:1rem;height:.25rem;margin-right:.35rem;vertical-align:middle;background:#0b5cad}.key-1::before{background:#a4262c}
details summary{cursor:pointer;color:var(--accent);margin:.25rem 0}.report{white-space:pre-wrap;margin:.25rem 0}
.person{margin:2rem 0 0}.person>h2{font-size:1.4rem;padding-bottom:.25rem;border-bottom:2px solid var(--line)}.connection>h3{font-size:1.15rem;margin:1.25rem 0 .5rem}.card>h4{font-size:1.05rem;margin:0 0 .5rem}.connect-another{margin-top:2rem}
.tag{display:inline-block;font-size:.8rem;border:1px solid var(--line);border-radius:999px;padding:0 .5rem;margin-left:.4rem;color:var(--muted)}.flag{color:var(--bad);border-color:var(--bad)}
`;

export interface PageAction {
	label: string;
	href?: string;
	/** POST target for actions that change state (sign out). */
	post?: string;
	secondary?: boolean;
}

export function actions(list: PageAction[]): Html {
	return html`<div class="actions">${list.map((action) =>
		action.post
			? html`<form class="inline" method="post" action="${action.post}"><button${action.secondary ? html` class="secondary"` : ""} type="submit">${action.label}</button></form>`
			: html`<a class="${action.secondary ? "button secondary" : "button"}" href="${action.href ?? "/"}">${action.label}</a>`,
	)}</div>`;
}

/** A SMART_SERVERS entry as the pages offer it: a button labelled with its name, launching `?server={id}`. */
export interface ListedServer {
	id: string;
	name: string;
}

/** One sign-in button per listed server, after athena's. */
export function serverConnectForms(servers: readonly ListedServer[]): Html[] {
	return servers.map((server) => connectForm({ server, label: `Connect with ${server.name}` }));
}

/**
 * The sign-in button: a plain GET to /launch, which redirects to athena.
 * Patients do not know practice IDs and need none: athena's own sign-in asks
 * which record (and practice) to share. A deployment for one practice sets
 * DEFAULT_PRACTICE on the server instead.
 */
export function connectForm(props: { returnTo?: string; label?: string; server?: ListedServer } = {}): Html {
	return html`<form method="get" action="/launch" class="connect">${
		props.returnTo ? html`<input type="hidden" name="return_to" value="${props.returnTo}"/>` : ""
	}${props.server ? html`<input type="hidden" name="server" value="${props.server.id}"/>` : ""}<div class="actions"><button type="submit">${props.label ?? "Connect with athenahealth"}</button></div></form>`;
}

/**
 * The page frame: landmarks (banner, main, contentinfo), one h1, and a sign-out
 * button in the header while the browser holds a session.
 */
export function page(props: { title: string; signedIn?: boolean; children?: Html }): Html {
	return html`<!doctype html><html lang="en"><head><meta charset="utf-8"/><meta name="viewport" content="width=device-width, initial-scale=1"/><title>${props.title} · athena connector</title><link rel="stylesheet" href="/assets/app.css"/></head><body><a class="skip" href="#content">Skip to content</a><header class="site"><div class="inner"><a class="brand" href="/">athena connector</a>${
		props.signedIn
			? html`<form class="inline" method="post" action="/logout"><button class="secondary" type="submit">Sign out</button></form>`
			: ""
	}</div></header><main id="content"><h1>${props.title}</h1>${props.children}</main><footer class="site"><div class="inner">Read-only access to your athenahealth record. Your sign-in stays on this server: this page never sees it.</div></footer></body></html>`;
}
