import { defineProject } from "vitest/config";

// Node runs oidc-provider (a SMART server that is not ours) in the test's own
// process and drives a real `wrangler dev` worker against it. Its worker
// processes would compete with the browser suite's for a two-core machine's
// CPU, so the project runs after it (groupOrder), one file at a time.
export default defineProject({
	test: {
		name: "smart",
		environment: "node",
		include: ["test/smart/**/*.test.ts"],
		root: new URL("../..", import.meta.url).pathname,
		testTimeout: 60_000,
		hookTimeout: 120_000,
		fileParallelism: false,
		sequence: { groupOrder: 2 },
	},
});
