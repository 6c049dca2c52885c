/*
 * A searchset's `next` link read from the start of its body, before the rest
 * has arrived: servers built on HAPI FHIR (athena among them) and the sandbox
 * write a Bundle's `link` before its `entry`, so the export can ask for the
 * next page while this one is still arriving and being parsed. Paging by
 * cursor is otherwise strictly one page after another.
 */

/** How far into a body the head is looked for: `link` comes within the first few hundred bytes. */
export const HEAD_LIMIT = 16 * 1024;

/**
 * What the start of a Bundle's JSON text says of its `link` array:
 * - the array, when its whole value lies in `text` before any `entry`;
 * - "absent" when `entry` comes first, the object ends without it, the text
 *   is not a JSON object, or HEAD_LIMIT passes without an answer;
 * - "more" when `text` ends before either is known.
 * Only the object's own keys are looked at: a "link" inside a resource never
 * counts. A key spelled with escapes is not recognised (the full parse still
 * finds it; only the head start is lost).
 *
 * @example
 * linksAhead('{"resourceType":"Bundle","link":[{"relation":"next","url":"https://x/a"}],"entry":[');
 * // → [{ relation: "next", url: "https://x/a" }]
 */
export function linksAhead(text: string): unknown[] | "absent" | "more" {
	const scan = new Scanner(text);
	if (!scan.take("{")) return scan.ended() ? "more" : "absent";
	for (;;) {
		if (scan.ended()) return "more";
		if (scan.take("}")) return "absent";
		const key = scan.stringEnd();
		if (key === undefined) return scan.ended() ? "more" : "absent";
		const name = text.slice(scan.keyStart, key);
		if (!scan.take(":")) return scan.ended() ? "more" : "absent";
		if (name === '"entry"') return "absent";
		const valueStart = scan.at();
		if (!scan.skipValue()) return scan.ended() ? "more" : "absent";
		if (name === '"link"') {
			try {
				const links: unknown = JSON.parse(text.slice(valueStart, scan.at()));
				return Array.isArray(links) ? links : "absent";
			} catch {
				return "absent";
			}
		}
		if (scan.take(",")) continue;
		if (scan.ended()) return "more";
		return "absent";
	}
}

/** The `next` URL of a searchset's `link` array, if it has one. */
export function nextUrlOf(links: readonly unknown[]): string | undefined {
	const next = links.find((l) => (l as { relation?: unknown } | null)?.relation === "next") as
		| { url?: unknown }
		| undefined;
	return typeof next?.url === "string" ? next.url : undefined;
}

/** A forward-only reader of JSON text that may end anywhere (HEAD_LIMIT counts as an end that never comes). */
class Scanner {
	private i = 0;
	keyStart = 0;
	private readonly end: number;
	private readonly cut: boolean;

	constructor(private readonly text: string) {
		this.end = Math.min(text.length, HEAD_LIMIT);
		this.cut = text.length > HEAD_LIMIT;
	}

	at(): number {
		return this.i;
	}

	/** The text ran out (and more may come): not when HEAD_LIMIT cut it, which is final. */
	ended(): boolean {
		return this.i >= this.end && !this.cut;
	}

	private space(): void {
		while (this.i < this.end && " \t\n\r".includes(this.text[this.i] ?? "")) this.i++;
	}

	/** Skips white space, then `char` if it comes next. */
	take(char: string): boolean {
		this.space();
		if (this.text[this.i] !== char || this.i >= this.end) return false;
		this.i++;
		return true;
	}

	/** Reads a string starting here (after white space): the index just past its closing quote. */
	stringEnd(): number | undefined {
		this.space();
		if (this.i >= this.end || this.text[this.i] !== '"') return undefined;
		this.keyStart = this.i;
		for (let j = this.i + 1; j < this.end; j++) {
			const c = this.text[j];
			if (c === "\\") j++;
			else if (c === '"') {
				this.i = j + 1;
				return this.i;
			}
		}
		this.i = this.end;
		return undefined;
	}

	/** Skips one JSON value (white space first): false when the text ends inside it or it is not one. */
	skipValue(): boolean {
		this.space();
		let depth = 0;
		while (this.i < this.end) {
			const c = this.text[this.i];
			if (c === '"') {
				if (this.stringEnd() === undefined) return false;
			} else if (c === "{" || c === "[") {
				depth++;
				this.i++;
			} else if (c === "}" || c === "]") {
				if (depth === 0) return false;
				depth--;
				this.i++;
			} else if (depth === 0 && (c === "," || " \t\n\r".includes(c ?? ""))) {
				return true;
			} else this.i++;
			if (depth === 0 && (c === '"' || c === "}" || c === "]")) return true;
		}
		return false;
	}
}
