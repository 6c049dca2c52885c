import { defineProject } from "vitest/config";

// Node drives Chromium (found by support/find-chromium.ts) through
// playwright-core. Browsers are heavy on a two-core machine, so files run one
// at a time with generous timeouts, and the project runs after the others
// (groupOrder) rather than competing with their workerd and wrangler
// processes for the CPU: its end-to-end suite runs `npm run dev` (two more
// wrangler processes) beside Chromium.
export default defineProject({
	test: {
		name: "browser",
		environment: "node",
		include: ["test/browser/**/*.test.ts"],
		root: new URL("../..", import.meta.url).pathname,
		testTimeout: 60_000,
		hookTimeout: 60_000,
		fileParallelism: false,
		sequence: { groupOrder: 1 },
	},
});
