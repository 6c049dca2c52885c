import { env, exports } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { importSigningKey, type PublicSigningJwk, rsaThumbprint } from "../../src/keys/signing-key";

const URL_JWKS = "http://localhost:3000/.well-known/jwks.json";
const PRIVATE_MEMBERS = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

async function getJwks(init?: RequestInit) {
	const response = await exports.default.fetch(URL_JWKS, init);
	const text = await response.text();
	return { response, body: text ? (JSON.parse(text) as { keys: Array<Record<string, unknown>> }) : undefined };
}

async function publicJwk(pem: string): Promise<PublicSigningJwk> {
	return (await importSigningKey(pem, "SIGNING_KEY")).publicJwk;
}

function expectPublicOnly(keys: Array<Record<string, unknown>>) {
	for (const key of keys) {
		for (const member of PRIVATE_MEMBERS) expect(key).not.toHaveProperty(member);
		expect(key).toMatchObject({ kty: "RSA", alg: "RS384", use: "sig" });
	}
}

afterEach(async () => {
	await env.JWKS_KV.delete("jwks");
});

describe("GET /.well-known/jwks.json", () => {
	it("serves the active signer's key when KV is empty", async () => {
		const { response, body } = await getJwks();
		expect(response.status).toBe(200);
		expect(response.headers.get("Content-Type")).toBe("application/json");
		expect(response.headers.get("Cache-Control")).toBe("public, max-age=300");
		expect(response.headers.get("Access-Control-Allow-Origin")).toBe("*");
		expect(body?.keys).toEqual([await publicJwk(env.SIGNING_KEY)]);
	});

	it("publishes the next key from KV beside the signer's", async () => {
		const next = await publicJwk(env.TEST_SECOND_RSA_PEM);
		await env.JWKS_KV.put("jwks", JSON.stringify({ keys: [next] }));
		const { body } = await getJwks();
		expect(body?.keys.map((k) => k.kid).sort()).toEqual([(await publicJwk(env.SIGNING_KEY)).kid, next.kid].sort());
	});

	it("never serves a private member, even when KV holds a full private JWK", async () => {
		const extractable = (await crypto.subtle.generateKey(
			{ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-384" },
			true,
			["sign", "verify"],
		)) as CryptoKeyPair;
		const privateJwk = (await crypto.subtle.exportKey("jwk", extractable.privateKey)) as unknown as Record<
			string,
			unknown
		>;
		const signer = await publicJwk(env.SIGNING_KEY);
		await env.JWKS_KV.put(
			"jwks",
			JSON.stringify({
				keys: [
					{ ...privateJwk, alg: "RS384", use: "sig" },
					{ ...signer, d: "AAAA", k: "AAAA" },
				],
			}),
		);
		const { response, body } = await getJwks();
		expect(response.status).toBe(200);
		expect(JSON.stringify(body)).not.toContain(String(privateJwk.d));
		expectPublicOnly(body?.keys ?? []);
		expect(body?.keys).toEqual([signer]);
	});

	it("serves a valid set when KV holds six keys, duplicates, a wrong alg and garbage", async () => {
		const signer = await publicJwk(env.SIGNING_KEY);
		const extra: PublicSigningJwk[] = [];
		for (let i = 0; i < 6; i++) {
			const pair = (await crypto.subtle.generateKey(
				{ name: "RSASSA-PKCS1-v1_5", modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]), hash: "SHA-384" },
				true,
				["sign", "verify"],
			)) as CryptoKeyPair;
			const jwk = (await crypto.subtle.exportKey("jwk", pair.publicKey)) as { n: string; e: string };
			extra.push({ kty: "RSA", n: jwk.n, e: jwk.e, alg: "RS384", use: "sig", kid: await rsaThumbprint(jwk) });
		}
		const first = extra[0] as PublicSigningJwk;
		await env.JWKS_KV.put(
			"jwks",
			JSON.stringify({
				keys: [
					...extra,
					first,
					{ ...first, alg: "RS256" },
					{ ...first, kid: "not-the-thumbprint" },
					{ ...first, use: "enc" },
					"garbage",
					null,
					{ kty: "EC", crv: "P-256", x: "AA", y: "AA" },
				],
			}),
		);
		const { response, body } = await getJwks();
		expect(response.status).toBe(200);
		const kids = body?.keys.map((k) => k.kid) ?? [];
		expect(kids).toHaveLength(5);
		expect(new Set(kids).size).toBe(5);
		expect(kids).toContain(signer.kid);
		expectPublicOnly(body?.keys ?? []);
	});

	it("leaves out a key one bit short of 2048, however long its base64url", async () => {
		const next = await publicJwk(env.TEST_SECOND_RSA_PEM);
		const modulus = Uint8Array.from(atob(next.n.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));
		modulus[0] = 0x7f;
		const n = btoa(String.fromCharCode(...modulus))
			.replace(/\+/g, "-")
			.replace(/\//g, "_")
			.replace(/=+$/, "");
		expect(n).toHaveLength(next.n.length);
		await env.JWKS_KV.put(
			"jwks",
			JSON.stringify({ keys: [{ ...next, n, kid: await rsaThumbprint({ n, e: next.e }) }] }),
		);
		const { body } = await getJwks();
		expect(body?.keys).toEqual([await publicJwk(env.SIGNING_KEY)]);
	});

	for (const [what, stored] of [
		["not JSON", "{not json"],
		["JSON without a keys array", JSON.stringify({ keys: "nope" })],
		["an empty keys array", JSON.stringify({ keys: [] })],
	] as const) {
		it(`falls back to the signer's key when KV holds ${what}`, async () => {
			await env.JWKS_KV.put("jwks", stored);
			const { response, body } = await getJwks();
			expect(response.status).toBe(200);
			expect(body?.keys).toEqual([await publicJwk(env.SIGNING_KEY)]);
		});
	}

	it("answers 304 to a matching If-None-Match and 200 to a stale one", async () => {
		const first = await getJwks();
		const etag = first.response.headers.get("ETag");
		expect(etag).toMatch(/^"[0-9a-f]+"$/);
		const again = await exports.default.fetch(URL_JWKS, { headers: { "If-None-Match": etag ?? "" } });
		expect(again.status).toBe(304);
		expect(await again.text()).toBe("");
		expect(again.headers.get("ETag")).toBe(etag);
		const weak = await exports.default.fetch(URL_JWKS, { headers: { "If-None-Match": `W/${etag}` } });
		expect(weak.status).toBe(304);
		const stale = await exports.default.fetch(URL_JWKS, { headers: { "If-None-Match": '"stale"' } });
		expect(stale.status).toBe(200);
	});

	it("changes its ETag when the published set changes", async () => {
		const before = (await getJwks()).response.headers.get("ETag");
		await env.JWKS_KV.put("jwks", JSON.stringify({ keys: [await publicJwk(env.TEST_SECOND_RSA_PEM)] }));
		const after = (await getJwks()).response.headers.get("ETag");
		expect(after).not.toBe(before);
	});

	it("serves KV's keys when the signing secret is missing, and 503 rather than an empty set when nothing is valid", async () => {
		const { app } = await import("../../src/app");
		const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
		const noSigner = { ...env, SIGNING_KEY: "" };
		const empty = await app.fetch(new Request(URL_JWKS), noSigner, ctx);
		expect(empty.status).toBe(503);
		expect(await empty.json()).toMatchObject({ error: "jwks_unavailable" });

		const next = await publicJwk(env.TEST_SECOND_RSA_PEM);
		await env.JWKS_KV.put("jwks", JSON.stringify({ keys: [next] }));
		const fromKv = await app.fetch(new Request(URL_JWKS), noSigner, ctx);
		expect(fromKv.status).toBe(200);
		expect(((await fromKv.json()) as { keys: unknown[] }).keys).toEqual([next]);
	});

	it("serves the signer's key when reading KV throws", async () => {
		const { app } = await import("../../src/app");
		const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
		const brokenKv = {
			get: () => Promise.reject(new Error("KV unavailable")),
		} as unknown as KVNamespace;
		const response = await app.fetch(new Request(URL_JWKS), { ...env, JWKS_KV: brokenKv }, ctx);
		expect(response.status).toBe(200);
		expect(((await response.json()) as { keys: unknown[] }).keys).toEqual([await publicJwk(env.SIGNING_KEY)]);
	});

	it("reads KV at most once per isolate-cache period, and sees a new key after it", async () => {
		const { app } = await import("../../src/app");
		const ctx = { waitUntil() {}, passThroughOnException() {}, props: {} } as unknown as ExecutionContext;
		let reads = 0;
		const counting = {
			get: (key: string, options: KVNamespaceGetOptions<"text">) => {
				reads++;
				return env.JWKS_KV.get(key, options);
			},
		} as unknown as KVNamespace;
		const cached = { ...env, JWKS_KV: counting, JWKS_KV_CACHE_SECONDS: "10" };
		for (let i = 0; i < 5; i++) expect((await app.fetch(new Request(URL_JWKS), cached, ctx)).status).toBe(200);
		expect(reads).toBe(1);
		const uncached = { ...env, JWKS_KV: counting, JWKS_KV_CACHE_SECONDS: "0" };
		await env.JWKS_KV.put("jwks", JSON.stringify({ keys: [await publicJwk(env.TEST_SECOND_RSA_PEM)] }));
		const fresh = (await (await app.fetch(new Request(URL_JWKS), uncached, ctx)).json()) as { keys: unknown[] };
		expect(reads).toBe(2);
		expect(fresh.keys).toHaveLength(2);
	});
});
