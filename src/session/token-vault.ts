import { base64url } from "jose";

/** The tokens of one session, as they exist only in memory. */
export interface SessionTokens {
	accessToken: string;
	refreshToken: string | undefined;
	idToken: string | undefined;
}

/** What Durable Object storage holds instead: AES-256-GCM ciphertext. */
export interface SealedTokens {
	/** Version of the session-encryption key, so the key can rotate. */
	v: string;
	/** 96-bit IV, fresh for every seal (NIST SP 800-38D §8.2.2 random IVs). */
	iv: string;
	ct: string;
}

export interface VaultKey {
	version: string;
	key: Uint8Array<ArrayBuffer>;
}

const imported = new WeakMap<Uint8Array, Promise<CryptoKey>>();
const encoder = new TextEncoder();

function aesKey(raw: Uint8Array<ArrayBuffer>): Promise<CryptoKey> {
	let key = imported.get(raw);
	if (!key) {
		key = crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
		imported.set(raw, key);
	}
	return key;
}

/**
 * Encrypts a session's tokens with the newest key. `aad` is the hashed
 * session id: a sealed record copied to another session fails to open.
 *
 * @example
 * const sealed = await sealTokens(tokens, config.sessionKeys[0], idHash);
 */
export async function sealTokens(tokens: SessionTokens, key: VaultKey, aad: string): Promise<SealedTokens> {
	const iv = crypto.getRandomValues(new Uint8Array(12));
	const ct = await crypto.subtle.encrypt(
		{ name: "AES-GCM", iv, additionalData: encoder.encode(aad) },
		await aesKey(key.key),
		encoder.encode(JSON.stringify(tokens)),
	);
	return { v: key.version, iv: base64url.encode(iv), ct: base64url.encode(new Uint8Array(ct)) };
}

/** Decrypts with the key of the record's version; undefined if that key is gone or the record was tampered. */
export async function openTokens(
	sealed: SealedTokens,
	keys: VaultKey[],
	aad: string,
): Promise<SessionTokens | undefined> {
	const key = keys.find((k) => k.version === sealed.v);
	if (!key) return undefined;
	try {
		const plain = await crypto.subtle.decrypt(
			{ name: "AES-GCM", iv: base64url.decode(sealed.iv), additionalData: encoder.encode(aad) },
			await aesKey(key.key),
			base64url.decode(sealed.ct),
		);
		return JSON.parse(new TextDecoder().decode(plain)) as SessionTokens;
	} catch {
		return undefined;
	}
}
