const MAX_LENGTH = 512;
/** A placeholder origin: a path that resolves against it and stays there is same-origin anywhere. */
const BASE = "https://return-to.invalid";

/** Browsers treat "\\" as "/" in special URLs and strip tabs and newlines, so neither may pass. */
function hasBackslashOrControl(value: string): boolean {
	for (let i = 0; i < value.length; i++) {
		const code = value.charCodeAt(i);
		if (code < 0x20 || code === 0x7f || code === 0x5c) return true;
	}
	return false;
}

/**
 * Whether a path (raw or already resolved) could point a browser at another
 * host: `//host`, a backslash or control character, or one of these hidden
 * behind percent-encoding, including `%2e` dot segments that resolve away.
 */
function leavesOrigin(path: string): boolean {
	if (path.startsWith("//") || hasBackslashOrControl(path)) return true;
	let decoded = path;
	try {
		// Decoding repeatedly exposes %2F%2F, %5C and friends hiding behind encoding.
		for (let i = 0; i < 3; i++) {
			const next = decodeURIComponent(decoded);
			if (next === decoded) break;
			decoded = next;
		}
	} catch {
		return true;
	}
	if (decoded.startsWith("//") || hasBackslashOrControl(decoded)) return true;
	// A decoded "/.%2f/evil" is "/.//evil", whose dot segment resolves to "//evil".
	return new URL(decoded, BASE).pathname.startsWith("//");
}

/**
 * Where to land after sign-in: only a same-origin relative path. Anything that
 * a browser could resolve to another origin (`//evil`, `/\evil`, `https:`,
 * dot segments such as `/.//evil` that resolve to `//evil`, encoded or
 * control-character forms) is refused, and the home page is used.
 *
 * @example
 * safeReturnTo("/records?tab=labs"); // "/records?tab=labs"
 * safeReturnTo("/a/../records");     // "/records"
 * safeReturnTo("//evil.example");    // undefined
 * safeReturnTo("/.//evil.example");  // undefined
 */
export function safeReturnTo(raw: string | undefined | null): string | undefined {
	if (!raw || raw.length > MAX_LENGTH) return undefined;
	if (!raw.startsWith("/") || leavesOrigin(raw)) return undefined;
	const url = new URL(raw, BASE);
	if (url.origin !== BASE) return undefined;
	// What is returned is the resolved path, which becomes a Location header:
	// resolving removes dot segments ("/.//evil", "/a/..//evil", "/%2e//evil"
	// all become "//evil"), so the checks apply to the result, not only to the input.
	if (leavesOrigin(url.pathname)) return undefined;
	const resolved = `${url.pathname}${url.search}${url.hash}`;
	if (new URL(resolved, BASE).origin !== BASE) return undefined;
	return resolved;
}
