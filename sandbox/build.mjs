// Builds the sandbox into sandbox/dist/index.js (one ES module) for use as an
// auxiliary worker in other vitest projects (see miniflare.ts and README.md).
// Run from the repository root: `node sandbox/build.mjs` (or `npm run build:sandbox`).
import { spawnSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const result = spawnSync(
	"npx",
	["wrangler", "deploy", "--dry-run", "-c", join(here, "wrangler.toml"), "--outdir", join(here, "dist")],
	{ stdio: "inherit", cwd: join(here, "..") },
);
process.exit(result.status ?? 1);
