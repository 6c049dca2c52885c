import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { testClientService } from "./test/client-service";

// The sandbox's own suite runs the sandbox itself inside workerd and talks to
// it over real requests. The client (the product's worker, whose JWKS the
// sandbox fetches) is stood in by a small service bound as CLIENT; the tests
// publish their freshly generated public keys through it.
export default defineConfig({
	plugins: [
		cloudflareTest({
			wrangler: { configPath: "./wrangler.toml" },
			miniflare: {
				serviceBindings: { CLIENT: testClientService },
			},
		}),
	],
	test: {
		name: "sandbox",
		include: ["test/**/*.test.ts"],
		// One global sandbox state: files must not reset it under each other.
		fileParallelism: false,
		// Vitest's 5 s default is too tight beside the worker project on two
		// cores: a test with two logins took 3 s on a loaded run.
		testTimeout: 30_000,
	},
});
