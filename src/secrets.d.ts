// Secrets are set with `wrangler secret put NAME --env <env>` (locally: .dev.vars),
// so `wrangler types` cannot see them on a clean checkout; they are declared here.
// parseConfig still treats them as possibly missing at run time.
interface WorkerSecrets {
	/** PEM RSA private key (PKCS#8 or PKCS#1), at least 2048 bits. */
	SIGNING_KEY: string;
	/** `v1:<base64 32 bytes>[,v0:<...>]`: first encrypts, all decrypt. */
	SESSION_ENCRYPTION_KEYS: string;
}
interface Env extends WorkerSecrets {}
declare namespace Cloudflare {
	interface Env extends WorkerSecrets {}
}
