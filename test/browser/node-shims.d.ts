// The root tsconfig loads only the Workers types and @types/node is not a
// dependency, yet the browser suites run in Node. These are the only Node
// APIs they use (`process` is declared, as any, by the Workers types).
// Declared to match @types/node, so adding it later merges cleanly.

interface ImportMeta {
	url: string;
}

declare module "node:child_process" {
	export function spawnSync(
		command: string,
		args: readonly string[],
		options: {
			input?: string;
			encoding: "utf8";
			timeout?: number;
		},
	): {
		status: number | null;
		stdout: string;
		stderr: string;
		error?: Error;
	};
}
