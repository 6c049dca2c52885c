import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HEAD_LIMIT, linksAhead, nextUrlOf } from "../../src/export/bundle-head";

/*
 * The export reads a searchset's next link from the start of its body
 * (src/export/bundle-head.ts), so the next page is asked for while this one
 * is still arriving. The start must never be misread: a prefix of any body
 * says "more", or the body's own link array, or "absent".
 */

const LINKS = [
	{ relation: "self", url: "https://api.athena.test/fhir/r4/Observation?patient=p&_count=100" },
	{ relation: "next", url: "https://api.athena.test/fhir/r4/Observation?patient=p&_count=100&cursor=a-1.obs-9" },
];
const ENTRY = [{ resource: { resourceType: "Observation", id: "a-1.obs-1" }, search: { mode: "match" } }];

describe("a searchset's link array read from its start", () => {
	it("finds the link array written before the entries, whatever follows it", () => {
		const text = JSON.stringify({
			resourceType: "Bundle",
			type: "searchset",
			timestamp: "t",
			link: LINKS,
			entry: ENTRY,
		});
		expect(linksAhead(text)).toEqual(LINKS);
		expect(linksAhead(text.slice(0, text.indexOf('"entry"') + 3))).toEqual(LINKS);
		expect(nextUrlOf(LINKS)).toBe(LINKS[1]?.url);
		expect(nextUrlOf([LINKS[0]])).toBeUndefined();
	});

	it("says 'more' for a start that ends before the link array does", () => {
		const text = JSON.stringify({ resourceType: "Bundle", link: LINKS, entry: ENTRY });
		for (const cut of [
			"",
			"{",
			'{"resourceT',
			'{"resourceType":"Bun',
			'{"resourceType":"Bundle",',
			'{"resourceType":"Bundle","link":[{"rel',
		]) {
			expect(linksAhead(cut), cut).toBe("more");
		}
		expect(linksAhead(text.slice(0, text.indexOf("]") + 1))).toEqual(LINKS);
		expect(linksAhead(text.slice(0, text.indexOf("]")))).toBe("more");
	});

	it("says 'absent' when the entries come first, the Bundle has no links, or the body is no object", () => {
		expect(linksAhead(JSON.stringify({ resourceType: "Bundle", entry: ENTRY, link: LINKS }))).toBe("absent");
		expect(linksAhead('{"resourceType":"Bundle","entry":[')).toBe("absent");
		expect(linksAhead(JSON.stringify({ resourceType: "Bundle", type: "searchset" }))).toBe("absent");
		expect(linksAhead('{"resourceType":"Bundle","total":3}')).toBe("absent");
		expect(linksAhead('[{"link":[]}]')).toBe("absent");
		expect(linksAhead('{"link":{"relation":"next"}}')).toBe("absent");
		expect(linksAhead("<html>")).toBe("absent");
	});

	it("never takes a link inside another value, nor a key's look-alike inside a string", () => {
		const tricky = {
			resourceType: "Bundle",
			id: 'a"link":[{"relation":"next","url":"https://evil.example/"}]{[',
			meta: { link: [{ relation: "next", url: "https://evil.example/meta" }], tag: ["\\", '"'] },
			link: LINKS,
			entry: ENTRY,
		};
		expect(linksAhead(JSON.stringify(tricky))).toEqual(LINKS);
		expect(linksAhead(JSON.stringify(tricky, null, 2))).toEqual(LINKS);
	});

	it("gives up past HEAD_LIMIT rather than reading on", () => {
		const long = JSON.stringify({ resourceType: "Bundle", id: "x".repeat(HEAD_LIMIT), link: LINKS });
		expect(linksAhead(long)).toBe("absent");
		expect(linksAhead(long.slice(0, HEAD_LIMIT - 10))).toBe("more");
	});

	it("reads every prefix of any Bundle as 'more', its own link array, or 'absent', never anything else", () => {
		const json = fc.jsonValue({ maxDepth: 2 });
		const bundle = fc.record(
			{
				resourceType: fc.constant("Bundle"),
				id: fc.string({ unit: fc.constantFrom("a", '"', "\\", "{", "}", "[", "]", ":", ",", " ", "é") }),
				meta: json,
				link: fc.array(fc.record({ relation: fc.constantFrom("self", "next"), url: fc.webUrl() }), { maxLength: 3 }),
				entry: fc.array(json, { maxLength: 3 }),
			},
			{ requiredKeys: ["resourceType"] },
		);
		fc.assert(
			fc.property(bundle, fc.boolean(), fc.nat(), (value, pretty, at) => {
				const text = pretty ? JSON.stringify(value, null, 1) : JSON.stringify(value);
				const whole = linksAhead(text);
				const linkFirst =
					"link" in value &&
					(!("entry" in value) || Object.keys(value).indexOf("link") < Object.keys(value).indexOf("entry"));
				expect(whole).toEqual(linkFirst ? value.link : "absent");
				const prefix = linksAhead(text.slice(0, at % (text.length + 1)));
				if (prefix !== "more") expect(prefix).toEqual(whole);
			}),
			{ numRuns: 500, seed: 20261203 },
		);
	});
});
