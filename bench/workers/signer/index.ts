// The signer bench (row 3), inside workerd: `GET /?mode=ours|raw&n=N` signs N
// times, either through our signClientAssertion or with a bare
// crypto.subtle.sign of the same bytes with the same imported key, and says
// how long the loop took by workerd's clock. The bench also times each
// request from outside, since workerd's clock only moves across I/O.
import { importSigningKey, type SigningKey } from "../../../src/keys/signing-key";
import { signClientAssertion } from "../../../src/oauth/client-assertion";

type Env = { SIGNING_KEY: string };

const AUDIENCE = "http://127.0.0.1/oauth2/v1/token";
let key: Promise<SigningKey> | undefined;
let sample: Uint8Array | undefined;

export default {
	async fetch(request: Request, env: Env): Promise<Response> {
		const url = new URL(request.url);
		const mode = url.searchParams.get("mode");
		const n = Number(url.searchParams.get("n") ?? "100");
		if ((mode !== "ours" && mode !== "raw") || !Number.isInteger(n) || n < 0 || n > 100_000) {
			return new Response("mode=ours|raw&n=0..100000", { status: 400 });
		}
		key ??= importSigningKey(env.SIGNING_KEY, "SIGNING_KEY");
		const signingKey = await key;
		if (!sample) {
			// The exact bytes our signer signs: header.claims of a real assertion.
			const jwt = await signClientAssertion({ key: signingKey, clientId: "local-dev-client", audience: AUDIENCE });
			sample = new TextEncoder().encode(jwt.slice(0, jwt.lastIndexOf(".")));
		}
		const bytes = sample;
		const started = performance.now();
		let length = 0;
		if (mode === "ours") {
			for (let i = 0; i < n; i++) {
				length += (await signClientAssertion({ key: signingKey, clientId: "local-dev-client", audience: AUDIENCE }))
					.length;
			}
		} else {
			for (let i = 0; i < n; i++) {
				length += (await crypto.subtle.sign("RSASSA-PKCS1-v1_5", signingKey.privateKey, bytes)).byteLength;
			}
		}
		const insideMs = performance.now() - started;
		return Response.json({ mode, n, insideMs, length });
	},
};
