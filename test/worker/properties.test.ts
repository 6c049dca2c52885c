import { env, exports } from "cloudflare:workers";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { AppError } from "../../src/errors";
import { importSigningKey } from "../../src/keys/signing-key";
import { safeReturnTo } from "../../src/oauth/return-to";

const ORIGIN = "https://connector.example";
const hostileFragments = [
	"/",
	"//",
	"\\",
	"/\\",
	"%2F",
	"%2f",
	"%5C",
	"%5c",
	"%252F",
	"evil.example",
	"https:",
	"javascript:",
	"@",
	"%40",
	"\t",
	"\n",
	"%09",
	"%0a",
	".",
	"..",
	"%2e",
	"%2E",
	"%2e%2e",
	"?",
	"#",
	":",
	" ",
	"\u3002",
	"%E3%80%82",
];
const hostileInput = fc.oneof(
	fc.string({ maxLength: 80 }),
	fc.array(fc.constantFrom(...hostileFragments), { maxLength: 8 }).map((parts) => parts.join("")),
	fc
		.tuple(fc.constantFrom(...hostileFragments), fc.string({ maxLength: 20 }), fc.constantFrom(...hostileFragments))
		.map((parts) => parts.join("")),
	// Path-shaped: one leading slash and segments joined by slashes, so dot
	// segments ("..", "%2e") meet empty ones and resolve to "//host".
	fc
		.array(fc.oneof(fc.constantFrom(...hostileFragments), fc.constantFrom("", "a")), { maxLength: 6 })
		.map((segments) => `/${segments.join("/")}`),
);

describe("properties of the parsers that face the internet", () => {
	it("return_to never leaves the origin, whatever the input", () => {
		fc.assert(
			fc.property(hostileInput, (raw) => {
				const result = safeReturnTo(raw);
				if (result === undefined) return;
				expect(result.startsWith("/")).toBe(true);
				expect(result.startsWith("//")).toBe(false);
				expect(result).not.toContain("\\");
				// Resolved the way a browser resolves a Location header: same origin.
				expect(new URL(result, ORIGIN).origin).toBe(ORIGIN);
				// And decoding it cannot produce a scheme-relative or backslash path either.
				let decoded = result;
				try {
					decoded = decodeURIComponent(result);
				} catch {}
				expect(decoded.startsWith("//")).toBe(false);
				expect(decoded).not.toContain("\\");
			}),
			{ numRuns: 2000 },
		);
	});

	it("PEM import either yields an RSA key of at least 2048 bits or a signing_key_invalid error that echoes nothing", async () => {
		const body = fc.uint8Array({ maxLength: 400 }).map((bytes) => btoa(String.fromCharCode(...bytes)));
		const label = fc.constantFrom("PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "PUBLIC KEY", "CERTIFICATE");
		const pem = fc.oneof(
			fc.tuple(label, body).map(([l, b]) => `-----BEGIN ${l}-----\n${b}\n-----END ${l}-----`),
			fc.string({ maxLength: 200 }),
			// A real key with bytes flipped or cut.
			fc.tuple(fc.nat({ max: 1500 }), fc.nat({ max: 255 })).map(([at, value]) => {
				const lines = env.TEST_RSA_PKCS1_PEM.trim().split("\n");
				const bytes = Uint8Array.from(atob(lines.slice(1, -1).join("")), (c) => c.charCodeAt(0));
				const cut = bytes.slice(0, Math.max(1, bytes.length - at));
				cut[Math.min(at, cut.length - 1)] = value;
				return `-----BEGIN RSA PRIVATE KEY-----\n${btoa(String.fromCharCode(...cut))}\n-----END RSA PRIVATE KEY-----`;
			}),
		);
		await fc.assert(
			fc.asyncProperty(pem, async (text) => {
				try {
					const key = await importSigningKey(text, "SIGNING_KEY");
					expect((key.privateKey.algorithm as CryptoKeyRsaKeyAlgorithm).modulusLength).toBeGreaterThanOrEqual(2048);
				} catch (error) {
					expect(error).toBeInstanceOf(AppError);
					const appError = error as AppError;
					expect(appError.code).toBe("signing_key_invalid");
					expect(appError.message.startsWith("SIGNING_KEY ")).toBe(true);
					const secretBody = text.split("\n")[1] ?? "";
					if (secretBody.length >= 16) expect(appError.message).not.toContain(secretBody.slice(0, 16));
				}
			}),
			{ numRuns: 500 },
		);
	});

	it("the callback answers any query and cookie with a clear 4xx, never a 5xx", async () => {
		const query = fc.dictionary(
			fc.constantFrom("state", "code", "iss", "error", "error_description", "x"),
			fc.oneof(fc.string({ maxLength: 60 }), fc.constant("A".repeat(43)), fc.constantFrom(...hostileFragments)),
			{ maxKeys: 5 },
		);
		const cookie = fc.oneof(
			fc.constant(""),
			fc.string({ maxLength: 100 }).map((v) => `__Host-athena_launch=${encodeURIComponent(v)}`),
			fc.constant(`__Host-athena_launch=${"B".repeat(43)}; __Host-athena_session=${"C".repeat(43)}`),
			fc.string({ maxLength: 100 }).filter((v) => !/[\r\n\0]/.test(v)),
		);
		await fc.assert(
			fc.asyncProperty(query, cookie, async (params, cookieHeader) => {
				const url = new URL("http://localhost:3000/callback");
				for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
				const headers = new Headers();
				try {
					if (cookieHeader) headers.set("Cookie", cookieHeader);
				} catch {
					return;
				}
				const response = await exports.default.fetch(url, { headers, redirect: "manual" });
				expect(response.status).toBeGreaterThanOrEqual(400);
				expect(response.status).toBeLessThan(500);
				const body = (await response.json()) as { error: string };
				expect(body.error).toMatch(/^[a-z_]+$/);
			}),
			{ numRuns: 150 },
		);
	});

	it("GET /session answers any cookie header with a status and never a 5xx", async () => {
		await fc.assert(
			fc.asyncProperty(
				fc.oneof(
					fc.string({ maxLength: 200 }),
					fc.string({ maxLength: 60 }).map((v) => `__Host-athena_session=${v}`),
					fc.base64String({ minLength: 40, maxLength: 48 }).map((v) => `__Host-athena_session=${v}`),
				),
				async (cookieHeader) => {
					const headers = new Headers();
					try {
						headers.set("Cookie", cookieHeader);
					} catch {
						return;
					}
					const response = await exports.default.fetch("http://localhost:3000/session", { headers });
					expect(response.status).toBe(200);
					expect(await response.json()).toMatchObject({
						status: expect.stringMatching(/^(signed_out|connected|revoked)$/),
					});
				},
			),
			{ numRuns: 150 },
		);
	});
});
