// Bindings that exist only in the test run (test/worker/vitest.config.ts).
declare namespace Cloudflare {
	interface Env {
		TEST_RSA_PKCS1_PEM: string;
		TEST_RSA_PKCS8_PEM: string;
		TEST_RSA_1024_PEM: string;
		TEST_EC_PEM: string;
		TEST_EC_SEC1_PEM: string;
		TEST_SECOND_RSA_PEM: string;
		/** The local athena sandbox (auxiliary worker), for its /_sandbox controls. */
		SANDBOX: Fetcher;
	}
}
