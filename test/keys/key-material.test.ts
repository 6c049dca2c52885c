import { generateKeyPairSync } from "node:crypto";
import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
	generateSigningKey,
	publicJwkOf,
	publicJwkProblem,
	readKeyFile,
	rsaThumbprint,
	writeKeyFile,
} from "../../scripts/keys/key-material.mjs";
import { writeDevVar } from "../../scripts/keys/wrangler.mjs";
import { tempDir } from "./helpers.js";

// RFC 7638 §3.1 example key.
const RFC7638_N =
	"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

describe("key material", () => {
	let tmp: ReturnType<typeof tempDir>;
	beforeEach(() => {
		tmp = tempDir();
	});
	afterEach(() => tmp.remove());

	it("computes the RFC 7638 §3.1 thumbprint", () => {
		expect(rsaThumbprint({ n: RFC7638_N, e: "AQAB" })).toBe("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
	});

	it("generates an RSA-2048 key whose public JWK is what athena accepts and nothing more", () => {
		const { privatePem, publicJwk } = generateSigningKey();
		expect(privatePem).toMatch(/^-----BEGIN PRIVATE KEY-----\n[\s\S]+\n-----END PRIVATE KEY-----$/);
		expect(Object.keys(publicJwk).sort()).toEqual(["alg", "e", "kid", "kty", "n", "use"]);
		expect(publicJwk).toMatchObject({ kty: "RSA", alg: "RS384", use: "sig", e: "AQAB" });
		expect(Buffer.from(publicJwk.n, "base64url").length * 8).toBe(2048);
		expect(publicJwk.kid).toBe(rsaThumbprint(publicJwk));
		expect(publicJwkProblem(publicJwk)).toBeUndefined();
	});

	it("names what is wrong with a JWK that must not be published", () => {
		const { publicJwk } = generateSigningKey();
		expect(publicJwkProblem({ ...publicJwk, d: "x" })).toBe("holds private members (d)");
		expect(publicJwkProblem({ ...publicJwk, alg: "RS256" })).toBe("alg is not RS384");
		expect(publicJwkProblem({ ...publicJwk, use: "enc" })).toBe("use is not sig");
		expect(publicJwkProblem({ ...publicJwk, kid: "other" })).toBe("kid is not the RFC 7638 thumbprint of the key");
		const small = generateKeyPairSync("rsa", { modulusLength: 1024 }).privateKey;
		expect(publicJwkProblem(publicJwkOf(small))).toMatch(/at least 2048 bits/);
	});

	it("counts modulus bits, not characters: 256 bytes with the top bit clear is refused", () => {
		const { publicJwk } = generateSigningKey();
		const modulus = Buffer.from(publicJwk.n, "base64url");
		modulus[0] = 0x7f;
		const n = modulus.toString("base64url");
		expect(n).toHaveLength(publicJwk.n.length);
		const short = { ...publicJwk, n, kid: rsaThumbprint({ n, e: publicJwk.e }) };
		expect(publicJwkProblem(short)).toBe("n is not a base64url modulus of at least 2048 bits");
		modulus[0] = 0x80;
		const full = modulus.toString("base64url");
		expect(
			publicJwkProblem({ ...publicJwk, n: full, kid: rsaThumbprint({ n: full, e: publicJwk.e }) }),
		).toBeUndefined();
	});

	it("reads back a key file written for the same environment and kid", () => {
		const { privatePem, publicJwk } = generateSigningKey();
		writeKeyFile(tmp.dir, "preview", publicJwk.kid, privatePem, new Date());
		expect(readKeyFile(tmp.dir, "preview", publicJwk.kid).privatePem).toBe(privatePem);
	});

	it("refuses a key file moved into another environment's folder", () => {
		const { privatePem, publicJwk } = generateSigningKey();
		const path = writeKeyFile(tmp.dir, "preview", publicJwk.kid, privatePem, new Date());
		mkdirSync(join(tmp.dir, "production"), { recursive: true });
		renameSync(path, join(tmp.dir, "production", `${publicJwk.kid}.pem`));
		expect(() => readKeyFile(tmp.dir, "production", publicJwk.kid)).toThrow(
			/is not marked as production key .* \(it says environment=preview/,
		);
	});

	it("refuses a key file whose contents are another key than its name", () => {
		const a = generateSigningKey();
		const b = generateSigningKey();
		const path = writeKeyFile(tmp.dir, "local", a.publicJwk.kid, a.privatePem, new Date());
		writeFileSync(path, readFileSync(path, "utf8").replace(a.privatePem, b.privatePem));
		expect(() => readKeyFile(tmp.dir, "local", a.publicJwk.kid)).toThrow(/holds a different key than its name says/);
	});

	it("never builds a path from something that is not a kid", () => {
		expect(() => readKeyFile(tmp.dir, "local", "../../etc/passwd")).toThrow(/is not a kid/);
	});

	it("replaces SIGNING_KEY in .dev.vars, keeps the other lines and leaves the file 0600", () => {
		const path = join(tmp.dir, ".dev.vars");
		writeFileSync(path, 'SIGNING_KEY="old"\nSESSION_ENCRYPTION_KEYS="v1:abc"\n');
		writeDevVar(path, "SIGNING_KEY", "-----BEGIN PRIVATE KEY-----\nAAA\n-----END PRIVATE KEY-----");
		expect(readFileSync(path, "utf8")).toBe(
			'SESSION_ENCRYPTION_KEYS="v1:abc"\nSIGNING_KEY="-----BEGIN PRIVATE KEY-----\\nAAA\\n-----END PRIVATE KEY-----"\n',
		);
		expect(statSync(path).mode & 0o777).toBe(0o600);
	});
});
