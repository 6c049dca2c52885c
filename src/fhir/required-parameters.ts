/** The most of a 403 body read to look for athena's required-parameter rule: an OperationOutcome is small. */
const MAX_REFUSAL_BYTES = 16 * 1024;

/**
 * athena refuses a search that lacks a required parameter combination with a
 * 403 `forbidden` OperationOutcome whose text lists them, e.g. "... one of the
 * required parameter combinations [[patient,intent],[_id]] was not provided."
 * A 403 reads as "not allowed", but the app only has to add a parameter, so
 * the proxy answers 400 naming them. Returns the combinations, or undefined
 * when the body is anything else.
 *
 * @example
 * requiredCombinations('{"resourceType":"OperationOutcome","issue":[{"details":{"text":"... [[patient,intent],[_id]] ..."}}]}');
 * // [["patient", "intent"], ["_id"]]
 */
export function requiredCombinations(body: string): string[][] | undefined {
	let outcome: unknown;
	try {
		outcome = JSON.parse(body);
	} catch {
		return undefined;
	}
	if (typeof outcome !== "object" || outcome === null) return undefined;
	const { resourceType, issue } = outcome as { resourceType?: unknown; issue?: unknown };
	if (resourceType !== "OperationOutcome" || !Array.isArray(issue)) return undefined;
	for (const entry of issue) {
		const text = (entry as { details?: { text?: unknown } })?.details?.text;
		if (typeof text !== "string" || !/required parameter combinations/i.test(text)) continue;
		const list = /\[(\[[\w\-,.:\s]*\](?:\s*,\s*\[[\w\-,.:\s]*\])*)\]/.exec(text)?.[1];
		if (!list) continue;
		const combinations = [...list.matchAll(/\[([^\]]*)\]/g)].map((m) =>
			(m[1] ?? "")
				.split(",")
				.map((p) => p.trim())
				.filter(Boolean),
		);
		if (combinations.length > 0 && combinations.every((c) => c.length > 0)) return combinations;
	}
	return undefined;
}

/** "patient + intent, or _id" */
export function describeCombinations(combinations: string[][]): string {
	return combinations.map((c) => c.join(" + ")).join(", or ");
}

/**
 * The body of a small upstream answer as text, read at most MAX_REFUSAL_BYTES
 * deep; undefined when it is larger than an OperationOutcome would be (its
 * stream is then cancelled).
 */
export async function smallBody(body: ReadableStream<Uint8Array>): Promise<string | undefined> {
	const reader = body.getReader();
	const chunks: Uint8Array[] = [];
	let size = 0;
	for (;;) {
		const { done, value } = await reader.read();
		if (done) break;
		size += value.byteLength;
		if (size > MAX_REFUSAL_BYTES) {
			await reader.cancel();
			return undefined;
		}
		chunks.push(value);
	}
	const bytes = new Uint8Array(size);
	let offset = 0;
	for (const chunk of chunks) {
		bytes.set(chunk, offset);
		offset += chunk.byteLength;
	}
	return new TextDecoder().decode(bytes);
}
