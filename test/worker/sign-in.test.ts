import { beforeEach, describe, expect, it } from "vitest";
import { browserFetch, CookieJar, launch, PATIENTS, type Received, sandbox, signIn } from "./support/sign-in";

beforeEach(async () => {
	await sandbox("reset", {});
	await sandbox("config", { tokenRateLimit: 0 });
});

describe("patient sign-in", () => {
	it("connects the test patient end to end and the sandbox saw a valid assertion", async () => {
		const { jar, response } = await signIn();
		expect(response.headers.get("Location")).toBe("/");
		const session = await (await browserFetch(jar, "/session")).json();
		expect(session).toMatchObject({ status: "connected", patient: PATIENTS.jane.id, practice: "80000" });
		// The granted scopes, read as SMART scopes: the types the app may read, never a token.
		expect((session as { reads: string[] }).reads).toEqual(
			expect.arrayContaining(["Observation", "Condition", "Patient"]),
		);
		const received = await sandbox<Received>("received");
		const tokenAssertion = received.assertions.find((a) => a.endpoint === "token");
		expect(tokenAssertion).toMatchObject({
			accepted: true,
			header: { alg: "RS384", typ: "JWT" },
			claims: { iss: "local-dev-client", sub: "local-dev-client", aud: "http://localhost:3001/oauth2/v1/token" },
		});
	});

	it("sends the authorize request athena expects", async () => {
		const jar = new CookieJar();
		const url = await launch(jar, "practice=80000&return_to=%2Frecords%3Ftab%3Dlabs");
		expect(url.origin + url.pathname).toBe("http://localhost:3001/oauth2/v1/authorize");
		const q = url.searchParams;
		expect(q.get("response_type")).toBe("code");
		expect(q.get("client_id")).toBe("local-dev-client");
		expect(q.get("redirect_uri")).toBe("http://localhost:3000/callback");
		expect(q.get("aud")).toBe("http://localhost:3001/fhir/r4");
		expect(q.get("code_challenge_method")).toBe("S256");
		expect(q.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
		expect(q.get("state")).toMatch(/^[A-Za-z0-9_-]{43}$/);
		expect(q.get("nonce")).toMatch(/^[A-Za-z0-9_-]{43}$/);
		expect(q.get("scope")?.split(" ")).toEqual(
			expect.arrayContaining(["openid", "fhirUser", "offline_access", "launch/patient"]),
		);
		expect([...jar.cookies.keys()]).toEqual(["__Host-athena_launch"]);
	});
});
