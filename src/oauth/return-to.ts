const MAX_LENGTH = 512;

/** Browsers treat "\\" as "/" in special URLs and strip tabs and newlines, so neither may pass. */
function hasBackslashOrControl(value: string): boolean {
	for (let i = 0; i < value.length; i++) {
		const code = value.charCodeAt(i);
		if (code < 0x20 || code === 0x7f || code === 0x5c) return true;
	}
	return false;
}

/**
 * Where to land after sign-in: only a same-origin relative path. Anything that
 * a browser could resolve to another origin (`//evil`, `/\evil`, `https:`,
 * encoded or control-character forms) is refused, and the home page is used.
 *
 * @example
 * safeReturnTo("/records?tab=labs"); // "/records?tab=labs"
 * safeReturnTo("//evil.example");    // undefined
 */
export function safeReturnTo(raw: string | undefined | null): string | undefined {
	if (!raw || raw.length > MAX_LENGTH) return undefined;
	if (!raw.startsWith("/") || raw.startsWith("//")) return undefined;
	if (hasBackslashOrControl(raw)) return undefined;
	let decoded = raw;
	try {
		// Decoding repeatedly exposes %2F%2F, %5C and friends hiding behind encoding.
		for (let i = 0; i < 3; i++) {
			const next = decodeURIComponent(decoded);
			if (next === decoded) break;
			decoded = next;
		}
	} catch {
		return undefined;
	}
	if (decoded.startsWith("//") || hasBackslashOrControl(decoded)) return undefined;
	// The last word: resolve against a placeholder origin and require it to stay there.
	const base = "https://return-to.invalid";
	const url = new URL(raw, base);
	if (url.origin !== base) return undefined;
	return `${url.pathname}${url.search}${url.hash}`;
}
