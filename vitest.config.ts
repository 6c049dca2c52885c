import { defineConfig } from "vitest/config";

// One `vitest run` covers every project: the worker (inside workerd), the
// local athena sandbox (inside workerd) and the browser suites (Node driving
// Debian's Chromium).
export default defineConfig({
	test: {
		projects: [
			"test/worker/vitest.config.ts",
			"sandbox/vitest.config.ts",
			"test/browser/vitest.config.ts",
		],
	},
});
