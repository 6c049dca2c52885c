// The bundle-size reference (row 1): the smallest Hono worker, built exactly
// like ours (`wrangler deploy --dry-run --env production --minify`).
import { Hono } from "hono";

export default new Hono().get("/", (c) => c.text("hello"));
