import { defineProject } from "vitest/config";

// Node drives Debian's Chromium through playwright-core. Browsers are heavy on
// a two-core machine, so files run one at a time with generous timeouts.
export default defineProject({
	test: {
		name: "browser",
		environment: "node",
		include: ["test/browser/**/*.test.ts"],
		root: new URL("../..", import.meta.url).pathname,
		testTimeout: 60_000,
		hookTimeout: 60_000,
		fileParallelism: false,
	},
});
