/**
 * The raw path after `prefix` and the raw query, exactly as the client sent
 * them: no decoding and no normalising, so the outbound checks
 * (outbound-url.ts) see every `%2e` and `\` the client wrote.
 *
 * @example
 * rawTarget("https://app.example/fhir/r4/Observation?code=a%7Cb#x", "/fhir/r4");
 * // → { path: "/Observation", query: "code=a%7Cb" }
 */
export function rawTarget(requestUrl: string, prefix: string): { path: string; query: string } {
	const afterScheme = requestUrl.indexOf("//") + 2;
	const pathStart = requestUrl.indexOf("/", afterScheme);
	const target = pathStart === -1 ? "/" : requestUrl.slice(pathStart);
	const hash = target.indexOf("#");
	const withoutHash = hash === -1 ? target : target.slice(0, hash);
	const question = withoutHash.indexOf("?");
	const path = question === -1 ? withoutHash : withoutHash.slice(0, question);
	return {
		path: path.slice(prefix.length),
		query: question === -1 ? "" : withoutHash.slice(question + 1),
	};
}
