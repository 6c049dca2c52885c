import { AppError } from "../errors";

/**
 * Minimal DER reading and writing for RSA private keys. WebCrypto imports only
 * PKCS#8, while older OpenSSL and LibreSSL write PKCS#1 (`BEGIN RSA PRIVATE
 * KEY`), so PKCS#1 is wrapped into PKCS#8 here. Nothing here ever puts key
 * bytes into an error message: errors name the secret, never its value.
 */

const RSA_ENCRYPTION_OID = "2a864886f70d010101"; // 1.2.840.113549.1.1.1
const MIN_MODULUS_BITS = 2048;

export interface RsaPrivateKeyDer {
	/** PKCS#8 DER, ready for `crypto.subtle.importKey("pkcs8", ...)`. */
	pkcs8: Uint8Array<ArrayBuffer>;
	/** Public modulus and exponent, big-endian unsigned bytes. */
	n: Uint8Array;
	e: Uint8Array;
	modulusBits: number;
}

interface DerNode {
	tag: number;
	start: number; // first content byte
	end: number; // one past the last content byte
}

function readNode(der: Uint8Array, offset: number): DerNode {
	const tag = der[offset];
	let lengthByte = der[offset + 1];
	if (tag === undefined || lengthByte === undefined) throw new Error("truncated DER");
	let start = offset + 2;
	let length = lengthByte;
	if (lengthByte & 0x80) {
		const count = lengthByte & 0x7f;
		if (count === 0 || count > 4) throw new Error("unsupported DER length");
		length = 0;
		for (let i = 0; i < count; i++) {
			lengthByte = der[start + i];
			if (lengthByte === undefined) throw new Error("truncated DER");
			length = length * 256 + lengthByte;
		}
		start += count;
	}
	const end = start + length;
	if (end > der.length) throw new Error("truncated DER");
	return { tag, start, end };
}

function children(der: Uint8Array, node: DerNode): DerNode[] {
	const out: DerNode[] = [];
	let offset = node.start;
	while (offset < node.end) {
		const child = readNode(der, offset);
		out.push(child);
		offset = child.end;
	}
	return out;
}

function unsignedInteger(der: Uint8Array, node: DerNode): Uint8Array {
	let start = node.start;
	while (start < node.end - 1 && der[start] === 0) start++;
	return der.subarray(start, node.end);
}

function hex(bytes: Uint8Array): string {
	return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function encodeLength(length: number): number[] {
	if (length < 0x80) return [length];
	const bytes: number[] = [];
	for (let l = length; l > 0; l = Math.floor(l / 256)) bytes.unshift(l & 0xff);
	return [0x80 | bytes.length, ...bytes];
}

function derNode(tag: number, content: Uint8Array): Uint8Array {
	const header = [tag, ...encodeLength(content.length)];
	const out = new Uint8Array(header.length + content.length);
	out.set(header, 0);
	out.set(content, header.length);
	return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
	const out = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
	let offset = 0;
	for (const p of parts) {
		out.set(p, offset);
		offset += p.length;
	}
	return out;
}

/** PKCS#8 PrivateKeyInfo around a PKCS#1 RSAPrivateKey (RFC 5208 §5, RFC 8017 A.1.2). */
function wrapPkcs1(pkcs1: Uint8Array): Uint8Array<ArrayBuffer> {
	const version = derNode(0x02, new Uint8Array([0]));
	const algorithm = derNode(0x30, concat(derNode(0x06, hexBytes(RSA_ENCRYPTION_OID)), new Uint8Array([0x05, 0x00])));
	const wrapped = derNode(0x30, concat(version, algorithm, derNode(0x04, pkcs1)));
	return new Uint8Array(wrapped);
}

function hexBytes(value: string): Uint8Array {
	const out = new Uint8Array(value.length / 2);
	for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(value.slice(i * 2, i * 2 + 2), 16);
	return out;
}

function decodeBase64(body: string): Uint8Array {
	const binary = atob(body);
	const out = new Uint8Array(binary.length);
	for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
	return out;
}

/** Reads `n` and `e` out of a PKCS#1 RSAPrivateKey SEQUENCE. */
function rsaPublicMembers(pkcs1: Uint8Array): { n: Uint8Array; e: Uint8Array } {
	const seq = readNode(pkcs1, 0);
	if (seq.tag !== 0x30) throw new Error("RSAPrivateKey is not a SEQUENCE");
	const [version, n, e] = children(pkcs1, seq);
	if (version?.tag !== 0x02 || n?.tag !== 0x02 || e?.tag !== 0x02) {
		throw new Error("RSAPrivateKey members missing");
	}
	return { n: unsignedInteger(pkcs1, n), e: unsignedInteger(pkcs1, e) };
}

function bitLength(n: Uint8Array): number {
	const first = n[0] ?? 0;
	return n.length === 0 ? 0 : (n.length - 1) * 8 + (32 - Math.clz32(first));
}

/**
 * Parses a PEM RSA private key in PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
 * (`BEGIN RSA PRIVATE KEY`) form. `secretName` names the setting in errors.
 *
 * @example
 * const { pkcs8, n, e } = parseRsaPrivateKeyPem(env.SIGNING_KEY, "SIGNING_KEY");
 */
export function parseRsaPrivateKeyPem(pem: string, secretName: string): RsaPrivateKeyDer {
	const invalid = (why: string) =>
		new AppError("signing_key_invalid", 503, `${secretName} ${why}`, `${secretName}: ${why}`);
	// Secrets pasted through dashboards often arrive with literal "\n" sequences.
	const text = pem.replace(/\\n/g, "\n").trim();
	const match = /^-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----([\s\S]*?)-----END \1-----$/.exec(text);
	if (!match) {
		throw invalid("is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)");
	}
	const label = match[1];
	if (label === "EC PRIVATE KEY") throw invalid("holds an EC key; athena requires an RSA key (RS384)");
	if (label === "ENCRYPTED PRIVATE KEY") throw invalid("is encrypted; store the unencrypted PEM as a secret");
	let der: Uint8Array;
	try {
		der = decodeBase64((match[2] ?? "").replace(/\s+/g, ""));
	} catch {
		throw invalid("has a PEM body that is not valid base64");
	}
	try {
		let pkcs1: Uint8Array;
		let pkcs8: Uint8Array<ArrayBuffer>;
		if (label === "RSA PRIVATE KEY") {
			pkcs1 = der;
			pkcs8 = wrapPkcs1(der);
		} else {
			const info = readNode(der, 0);
			const [, algorithm, privateKey] = children(der, info);
			if (!algorithm || !privateKey || privateKey.tag !== 0x04) throw new Error("not PrivateKeyInfo");
			const oid = children(der, algorithm)[0];
			if (oid?.tag !== 0x06) throw new Error("no algorithm OID");
			if (hex(der.subarray(oid.start, oid.end)) !== RSA_ENCRYPTION_OID) {
				throw invalid("is not an RSA key; athena requires an RSA key (RS384)");
			}
			pkcs1 = der.subarray(privateKey.start, privateKey.end);
			pkcs8 = new Uint8Array(der);
		}
		const { n, e } = rsaPublicMembers(pkcs1);
		const modulusBits = bitLength(n);
		if (modulusBits < MIN_MODULUS_BITS) {
			throw invalid(`is a ${modulusBits}-bit RSA key; at least ${MIN_MODULUS_BITS} bits are required`);
		}
		return { pkcs8, n, e, modulusBits };
	} catch (error) {
		if (error instanceof AppError) throw error;
		throw invalid("is not a well-formed RSA private key");
	}
}
