import { defineProject } from "vitest/config";

// The key CLI runs in Node and drives wrangler; some suites start real
// `wrangler dev` processes, so files run one at a time with generous timeouts.
export default defineProject({
	test: {
		name: "keys",
		environment: "node",
		include: ["test/keys/**/*.test.ts"],
		root: new URL("../..", import.meta.url).pathname,
		testTimeout: 60_000,
		hookTimeout: 120_000,
		fileParallelism: false,
	},
});
