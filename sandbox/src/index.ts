import { Hono } from "hono";
import type { AppEnv } from "./context";
import { controls } from "./controls";
import { smartConfiguration } from "./discovery";
import { fhir } from "./fhir";
import { oauth } from "./oauth";

export { SandboxState } from "./sandbox-state";

/**
 * The local athena sandbox: athena's OAuth server at /oauth2/v1/*, its FHIR
 * R4 API at /fhir/r4, and test controls at /_sandbox/*.
 */
const app = new Hono<AppEnv>();

app.get("/", (c) =>
	c.json({
		sandbox: "athena-sandbox",
		fhirBase: `${new URL(c.req.url).origin}/fhir/r4`,
		note: "Development only: synthetic data, see sandbox/README.md",
	}),
);
app.route("/oauth2", oauth);
// Discovery lives under the FHIR base, as at athena; it describes the OAuth side, so it is served from there.
app.get("/fhir/r4/.well-known/smart-configuration", smartConfiguration);
app.route("/fhir/r4", fhir);
app.route("/_sandbox", controls);
// athena serves no discovery at the root: /.well-known/* is 404 like everything else.
app.notFound((c) => c.json({ error: "not_found" }, 404));
app.onError((error, c) => {
	console.error(
		JSON.stringify({
			route: new URL(c.req.url).pathname,
			error: error.message,
		}),
	);
	return c.json(
		{
			error: "server_error",
			error_description: "The sandbox failed unexpectedly",
		},
		500,
	);
});

export default app satisfies ExportedHandler<AppEnv["Bindings"]>;
