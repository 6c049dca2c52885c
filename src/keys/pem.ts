import { AppError } from "../errors";

/**
 * The signing-key secret as the PKCS#8 PEM that jose's `importPKCS8` takes.
 * WebCrypto imports only PKCS#8, while older OpenSSL and LibreSSL write PKCS#1
 * (`BEGIN RSA PRIVATE KEY`), so PKCS#1 is put in a PKCS#8 envelope here.
 * Errors name the secret, never its value.
 */

/** PrivateKeyInfo version 0 and AlgorithmIdentifier { rsaEncryption 1.2.840.113549.1.1.1, NULL } (RFC 5208 §5, RFC 8017 A.1). */
const RSA_KEY_INFO = [
	0x02, 0x01, 0x00, 0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
];
const PEM = /^-----BEGIN ((?:RSA |EC |ENCRYPTED )?PRIVATE KEY)-----([\s\S]*?)-----END \1-----$/;

/** X.690 §8.1.3: short-form length below 128, else 0x80 | byte count, then the length big-endian. */
function derHeader(tag: number, length: number): number[] {
	const bytes: number[] = [];
	for (let rest = length; rest > 0; rest = Math.floor(rest / 256)) bytes.unshift(rest % 256);
	return length < 0x80 ? [tag, length] : [tag, 0x80 | bytes.length, ...bytes];
}

/** PKCS#8 PrivateKeyInfo around a PKCS#1 RSAPrivateKey: SEQUENCE { version, algorithm, OCTET STRING { pkcs1 } }. */
export function pkcs1ToPkcs8(pkcs1: Uint8Array): Uint8Array {
	const octetString = derHeader(0x04, pkcs1.length);
	const content = RSA_KEY_INFO.length + octetString.length + pkcs1.length;
	const head = [...derHeader(0x30, content), ...RSA_KEY_INFO, ...octetString];
	const der = new Uint8Array(head.length + pkcs1.length);
	der.set(head);
	der.set(pkcs1, head.length);
	return der;
}

/** Whether a PrivateKeyInfo is for RSA: RSA_KEY_INFO right after its SEQUENCE header. */
function isRsaKeyInfo(der: Uint8Array): boolean {
	const lengthByte = der[1] ?? 0;
	const start = 2 + (lengthByte & 0x80 ? lengthByte & 0x7f : 0);
	return der[0] === 0x30 && RSA_KEY_INFO.every((byte, i) => der[start + i] === byte);
}

export function invalidSigningKey(secretName: string, why: string): AppError {
	return new AppError({
		code: "signing_key_invalid",
		status: 503,
		message: `${secretName} ${why}`,
		detail: `${secretName}: ${why}`,
	});
}

/**
 * A PEM RSA private key in PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
 * (`BEGIN RSA PRIVATE KEY`) form, as PKCS#8 PEM. `secretName` names the
 * setting in errors. The key itself is checked when it is imported.
 *
 * @example
 * const key = await importPKCS8(pkcs8Pem(env.SIGNING_KEY, "SIGNING_KEY"), "RS384");
 */
export function pkcs8Pem(pem: string, secretName: string): string {
	// Secrets pasted through dashboards often arrive with literal "\n" sequences.
	const match = PEM.exec(pem.replace(/\\n/g, "\n").trim());
	if (!match) {
		throw invalidSigningKey(
			secretName,
			"is not a PEM private key (expected -----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
		);
	}
	const [, label, body = ""] = match;
	if (label === "EC PRIVATE KEY")
		throw invalidSigningKey(secretName, "holds an EC key; athena requires an RSA key (RS384)");
	if (label === "ENCRYPTED PRIVATE KEY") {
		throw invalidSigningKey(secretName, "is encrypted; store the unencrypted PEM as a secret");
	}
	let der: Uint8Array;
	try {
		der = Uint8Array.from(atob(body.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
	} catch {
		throw invalidSigningKey(secretName, "has a PEM body that is not valid base64");
	}
	if (label === "RSA PRIVATE KEY") der = pkcs1ToPkcs8(der);
	else if (!isRsaKeyInfo(der))
		throw invalidSigningKey(secretName, "is not an RSA key; athena requires an RSA key (RS384)");
	return `-----BEGIN PRIVATE KEY-----\n${btoa(String.fromCharCode(...der))}\n-----END PRIVATE KEY-----`;
}
