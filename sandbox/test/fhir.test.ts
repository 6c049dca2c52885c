import { beforeEach, describe, expect, it } from "vitest";
import { call, FHIR_BASE, fhirGet, freshSandbox, JANE, login, ROWAN, type TestClientKey } from "./helpers";

interface Bundle {
	resourceType: string;
	type: string;
	total?: number;
	link: Array<{ relation: string; url: string }>;
	entry: Array<{ fullUrl: string; resource: { resourceType: string; id: string; subject?: { reference: string } } }>;
}

async function outcomeText(response: Response): Promise<string> {
	const body = (await response.json()) as { resourceType: string; issue: Array<{ code: string; diagnostics: string }> };
	expect(body.resourceType).toBe("OperationOutcome");
	return `${body.issue[0]?.code}: ${body.issue[0]?.diagnostics}`;
}

describe("FHIR R4", () => {
	let key: TestClientKey;
	let jane: string;
	beforeEach(async () => {
		key = await freshSandbox();
		jane = (await login(key)).access_token ?? "";
	});

	it("answers 401 with WWW-Authenticate without a token or with a made-up one", async () => {
		const none = await fhirGet(`/Patient/${JANE.id}`, undefined);
		expect(none.status).toBe(401);
		expect(none.headers.get("WWW-Authenticate")).toMatch(/^Bearer/);
		const bad = await fhirGet(`/Patient/${JANE.id}`, "made-up");
		expect(bad.status).toBe(401);
		expect(bad.headers.get("WWW-Authenticate")).toContain('error="invalid_token"');
	});

	it("serves metadata and smart-configuration without auth, and 404 at the root .well-known", async () => {
		const metadata = await call("/fhir/r4/metadata");
		expect(metadata.status).toBe(200);
		expect(((await metadata.json()) as { resourceType: string }).resourceType).toBe("CapabilityStatement");
		const smart = (await (await call("/fhir/r4/.well-known/smart-configuration")).json()) as Record<string, unknown>;
		expect(smart.issuer).toBe("http://sandbox.test/oauth2");
		expect(smart.issuer).not.toBe(FHIR_BASE);
		expect(smart.code_challenge_methods_supported).toEqual(["S256"]);
		expect(smart.token_endpoint_auth_methods_supported).toContain("private_key_jwt");
		expect(smart.capabilities).toContain("client-confidential-asymmetric");
		expect((await call("/.well-known/smart-configuration")).status).toBe(404);
		expect((await call("/.well-known/openid-configuration")).status).toBe(404);
	});

	it("requires ah-practice on searches with athena's OperationOutcome", async () => {
		const response = await fhirGet(`/Observation?patient=${JANE.id}`, jane);
		expect(response.status).toBe(400);
		expect(await outcomeText(response)).toContain("Could not determine what practice the request was for");
		const wrongPractice = await fhirGet(`/Observation?patient=${JANE.id}&ah-practice=${ROWAN.practice}`, jane);
		expect(wrongPractice.status).toBe(400);
	});

	it("refuses athena's forbidden parameter combinations", async () => {
		const cases = [
			`/AllergyIntolerance?ah-practice=${JANE.practice}`,
			`/MedicationRequest?patient=${JANE.id}&ah-practice=${JANE.practice}`,
			`/Patient?gender=female&ah-practice=${JANE.practice}`,
			`/Patient?family=Testpatient&ah-practice=${JANE.practice}`,
			`/Provenance?ah-practice=${JANE.practice}`,
		];
		for (const path of cases) {
			const response = await fhirGet(path, jane);
			expect(response.status, path).toBe(403);
			expect(await outcomeText(response)).toMatch(/^forbidden/);
		}
		const allowed = [
			`/AllergyIntolerance?patient=${JANE.id}&ah-practice=${JANE.practice}`,
			`/MedicationRequest?patient=${JANE.id}&intent=order&ah-practice=${JANE.practice}`,
			`/Patient?family=Testpatient&birthdate=1968-04-12&ah-practice=${JANE.practice}`,
			`/Provenance?target=Patient/${JANE.id}&ah-practice=${JANE.practice}`,
		];
		for (const path of allowed) {
			const response = await fhirGet(path, jane);
			expect(response.status, path).toBe(200);
			expect(((await response.json()) as Bundle).entry.length, path).toBeGreaterThan(0);
		}
	});

	it("never returns another patient's data to a token", async () => {
		const rowan = (await login(key, ROWAN)).access_token ?? "";
		expect((await fhirGet(`/Patient/${ROWAN.id}`, jane)).status).toBe(403);
		expect((await fhirGet(`/Patient/${JANE.id}`, rowan)).status).toBe(403);
		expect((await fhirGet(`/Observation?patient=${ROWAN.id}&ah-practice=${JANE.practice}`, jane)).status).toBe(403);
		expect((await fhirGet(`/Observation?patient=${ROWAN.id}&ah-practice=${ROWAN.practice}`, jane)).status).toBe(400);
		const rowanObs = (await (
			await fhirGet(`/Observation?patient=${ROWAN.id}&ah-practice=${ROWAN.practice}&_count=1`, rowan)
		).json()) as Bundle;
		const rowanObsId = rowanObs.entry[0]?.resource.id ?? "";
		expect(rowanObsId).toMatch(/^a-195900\./);
		expect((await fhirGet(`/Observation/${rowanObsId}`, jane)).status).toBe(403);
		const byId = (await (
			await fhirGet(`/Patient?_id=${ROWAN.id}&ah-practice=${JANE.practice}`, jane)
		).json()) as Bundle;
		expect(byId.entry).toHaveLength(0);
	});

	it("pages with _count and an opaque cursor through absolute next links on its own host", async () => {
		const seen = new Set<string>();
		let url: string | undefined = `${FHIR_BASE}/Observation?patient=${JANE.id}&ah-practice=${JANE.practice}&_count=25`;
		let pages = 0;
		let total = 0;
		while (url) {
			const response = await fhirGet(url, jane);
			expect(response.status).toBe(200);
			const bundle = (await response.json()) as Bundle;
			total = bundle.total ?? 0;
			for (const entry of bundle.entry) {
				expect(entry.fullUrl).toBe(`${FHIR_BASE}/Observation/${entry.resource.id}`);
				expect(entry.resource.subject?.reference).toBe(`Patient/${JANE.id}`);
				seen.add(entry.resource.id);
			}
			url = bundle.link.find((l) => l.relation === "next")?.url;
			if (url) {
				expect(url.startsWith(`${FHIR_BASE}/Observation?`)).toBe(true);
				expect(url).toContain(`ah-practice=${JANE.practice}`);
				expect(url).toContain("cursor=");
			}
			pages++;
		}
		expect(total).toBeGreaterThan(90);
		expect(seen.size).toBe(total);
		expect(pages).toBe(Math.ceil(total / 25));
		const forged = await fhirGet(
			`/Observation?patient=${JANE.id}&ah-practice=${JANE.practice}&_count=25&cursor=bm90LWEtY3Vyc29y`,
			jane,
		);
		expect(forged.status).toBe(400);
	});

	it("filters observations by category and date", async () => {
		const labs = (await (
			await fhirGet(
				`/Observation?patient=${JANE.id}&ah-practice=${JANE.practice}&category=laboratory&date=ge2024-01-01&_count=200`,
				jane,
			)
		).json()) as Bundle;
		expect(labs.entry.length).toBeGreaterThan(0);
		for (const entry of labs.entry) {
			const resource = entry.resource as unknown as {
				category: Array<{ coding: Array<{ code: string }> }>;
				effectiveDateTime: string;
			};
			expect(resource.category[0]?.coding[0]?.code).toBe("laboratory");
			expect(resource.effectiveDateTime >= "2024-01-01").toBe(true);
		}
	});

	it("serves documents inline, through Binary, and marked data-absent when unreleased", async () => {
		const bundle = (await (
			await fhirGet(`/DocumentReference?patient=${JANE.id}&ah-practice=${JANE.practice}`, jane)
		).json()) as Bundle;
		const attachments = bundle.entry.map(
			(e) =>
				(e.resource as unknown as { content: Array<{ attachment: Record<string, unknown> }> }).content[0]?.attachment ??
				{},
		);
		const inline = attachments.find((a) => typeof a.data === "string");
		expect(atob(String(inline?.data))).toContain("synthetic sandbox data");
		const absent = attachments.find((a) => a._data !== undefined);
		expect(JSON.stringify(absent)).toContain("data-absent-reason");
		const binaryUrl = String(attachments.find((a) => typeof a.url === "string")?.url);
		const raw = await fhirGet(`/${binaryUrl}`, jane);
		expect(raw.headers.get("Content-Type")).toBe("application/pdf");
		expect(new TextDecoder().decode((await raw.arrayBuffer()).slice(0, 5))).toBe("%PDF-");
		const asFhir = await fhirGet(`/${binaryUrl}`, jane, { Accept: "application/fhir+json" });
		const binary = (await asFhir.json()) as { resourceType: string; contentType: string; data: string };
		expect(binary).toMatchObject({ resourceType: "Binary", contentType: "application/pdf" });
		expect(atob(binary.data).startsWith("%PDF-")).toBe(true);
	});

	it("streams a valid searchset of exactly the requested size on its own absolute base", async () => {
		const size = 3_000_000;
		const response = await fhirGet(
			`/Observation?patient=${JANE.id}&ah-practice=${JANE.practice}&_sandbox_bytes=${size}`,
			jane,
		);
		expect(response.status).toBe(200);
		const reader = response.body?.getReader();
		if (!reader) throw new Error("no body");
		const chunks: Uint8Array[] = [];
		let bytes = 0;
		for (;;) {
			const { done, value } = await reader.read();
			if (done) break;
			chunks.push(value);
			bytes += value.byteLength;
		}
		expect(bytes).toBe(size);
		expect(chunks.length).toBeGreaterThan(10);
		const text = new TextDecoder().decode(
			new Blob(chunks).size ? await new Blob(chunks).arrayBuffer() : new ArrayBuffer(0),
		);
		const bundle = JSON.parse(text) as Bundle;
		expect(bundle.type).toBe("searchset");
		expect(bundle.link.find((l) => l.relation === "next")?.url).toMatch(
			/^http:\/\/sandbox\.test\/fhir\/r4\/Observation\?/,
		);
		expect(bundle.entry.length).toBeGreaterThan(1000);
		expect(bundle.entry.every((e) => e.fullUrl.startsWith(`${FHIR_BASE}/Observation/`))).toBe(true);
	});

	it("counts a very large stream without holding it", async () => {
		const size = 64 * 1024 * 1024;
		const response = await fhirGet(
			`/Observation?patient=${JANE.id}&ah-practice=${JANE.practice}&_sandbox_bytes=${size}`,
			jane,
		);
		const reader = response.body?.getReader();
		if (!reader) throw new Error("no body");
		let bytes = 0;
		let last = new Uint8Array(0);
		for (;;) {
			const { done, value } = await reader.read();
			if (done) break;
			bytes += value.byteLength;
			last = value;
		}
		expect(bytes).toBe(size);
		expect(new TextDecoder().decode(last.slice(-2))).toBe("]}");
	}, 60_000);

	it("labels the large stream application/octet-stream when asked, and nothing else", async () => {
		const query = `/Observation?patient=${JANE.id}&ah-practice=${JANE.practice}&_sandbox_bytes=100000`;
		const raw = await fhirGet(`${query}&_sandbox_content_type=application/octet-stream`, jane);
		expect(raw.status).toBe(200);
		expect(raw.headers.get("Content-Type")).toBe("application/octet-stream");
		expect((await raw.arrayBuffer()).byteLength).toBe(100000);
		const other = await fhirGet(`${query}&_sandbox_content_type=text/html`, jane);
		expect(other.status).toBe(400);
		await other.body?.cancel();
	});

	it("refuses a resource type the token has no scope for", async () => {
		const response = await fhirGet(`/Goal?patient=${JANE.id}&ah-practice=${JANE.practice}`, jane);
		expect(response.status).toBe(403);
		expect(response.headers.get("WWW-Authenticate")).toContain("insufficient_scope");
	});
});
