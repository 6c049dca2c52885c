// The JWKS reference (row 2): a bare Hono route answering a constant JSON
// body of the same bytes as our /.well-known/jwks.json (the bench passes it
// in as JWKS_BODY), with nothing else: no KV, no signer, no middleware.
import { Hono } from "hono";

type Bindings = { JWKS_BODY: string };

export default new Hono<{ Bindings: Bindings }>().get("/.well-known/jwks.json", (c) =>
	c.body(c.env.JWKS_BODY, 200, { "Content-Type": "application/json" }),
);
