import { defineConfig } from "vitest/config";

// One `vitest run` covers every project: the worker (inside workerd), the
// local athena sandbox (inside workerd) and the browser suites (Node driving
// Debian's Chromium).
export default defineConfig({
	test: {
		// Logs of passing tests are noise; a failing test still shows its own.
		silent: "passed-only",
		projects: ["test/*/vitest.config.ts", "sandbox/vitest.config.{ts,mts}"],
	},
});
