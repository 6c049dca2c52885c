import { Hono } from "hono";
import { PATIENT_ACCESS_TYPES, type ResourceType, sandboxUrls } from "./config";
import { type AppEnv, sleep, stateStub } from "./context";
import {
	type FhirResource,
	type PatientRecord,
	patientRecord,
	practiceReference,
	practiceResources,
	TEST_PATIENTS,
} from "./data";
import { cutAfter, largeSearchset, minimumLargeSearchsetBytes } from "./stream";

const FHIR_JSON = "application/fhir+json; charset=utf-8";
const DEFAULT_COUNT = 20;
const MAX_COUNT = 200;
/** Upper bound of the large-response parameter: 2 GiB. */
const MAX_SANDBOX_BYTES = 2 * 1024 ** 3;
/** Sandbox-only search parameter asking for a streamed Bundle of about this many bytes. */
export const SANDBOX_BYTES_PARAM = "_sandbox_bytes";
/**
 * Sandbox-only, with `_sandbox_bytes`: the same bytes labelled
 * `application/octet-stream`, so a proxy's pass-through path (no JSON URL
 * rewriting) can be measured on the same body (bench row 5).
 */
export const SANDBOX_CONTENT_TYPE_PARAM = "_sandbox_content_type";
const SANDBOX_CONTENT_TYPES = new Set(["application/octet-stream"]);
/** athena's text, verbatim up to its ellipsis. */
const MISSING_PRACTICE_TEXT =
	"Could not determine what practice the request was for. Add the ah-practice search parameter with the practice ID, e.g. ah-practice=Organization/a-1.Practice-{practiceid}.";

/** Types whose resources belong to a practice rather than a patient's compartment. */
const PRACTICE_LEVEL = new Set<string>(["Organization", "Practitioner", "Location", "Medication"]);

interface Access {
	patientId: string;
	practiceId: string;
	scope: string[];
	record: PatientRecord;
}

type FhirEnv = AppEnv & { Variables: { access: Access } };

export const fhir = new Hono<FhirEnv>();

function outcome(status: number, code: string, text: string, headers: Record<string, string> = {}): Response {
	return new Response(
		JSON.stringify({
			resourceType: "OperationOutcome",
			issue: [{ severity: "error", code, diagnostics: text, details: { text } }],
		}),
		{ status, headers: { "Content-Type": FHIR_JSON, ...headers } },
	);
}

function fhirJson(body: unknown, status = 200): Response {
	return new Response(JSON.stringify(body), {
		status,
		headers: { "Content-Type": FHIR_JSON },
	});
}

const isResourceType = (type: string): type is ResourceType =>
	(PATIENT_ACCESS_TYPES as readonly string[]).includes(type);

/** SMART v1 `.read` covers read and search; v2 `.rs` letters name each interaction. */
function scopeAllows(scope: readonly string[], type: string, interaction: "read" | "search"): boolean {
	const letter = interaction === "read" ? "r" : "s";
	return scope.some((s) => {
		const match = /^patient\/([A-Za-z*]+)\.(read|[cruds]+)$/.exec(s);
		if (!match || (match[1] !== type && match[1] !== "*")) return false;
		return match[2] === "read" || (match[2] ?? "").includes(letter);
	});
}

// `/.well-known/smart-configuration` is the OAuth side's (discovery.ts, routed in index.ts).

fhir.get("/metadata", (c) => {
	const urls = sandboxUrls(c.req.url);
	return fhirJson({
		resourceType: "CapabilityStatement",
		status: "active",
		date: "2026-01-01",
		kind: "instance",
		fhirVersion: "4.0.1",
		format: ["application/fhir+json"],
		implementation: {
			description: "Local athena sandbox (synthetic data)",
			url: urls.fhirBase,
		},
		rest: [
			{
				mode: "server",
				security: {
					service: [
						{
							coding: [
								{
									system: "http://terminology.hl7.org/CodeSystem/restful-security-service",
									code: "SMART-on-FHIR",
								},
							],
						},
					],
					extension: [
						{
							url: "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",
							extension: [
								{ url: "authorize", valueUri: urls.authorize },
								{ url: "token", valueUri: urls.token },
								{ url: "revoke", valueUri: urls.revoke },
							],
						},
					],
				},
				resource: PATIENT_ACCESS_TYPES.map((type) => ({
					type,
					interaction: type === "Binary" ? [{ code: "read" }] : [{ code: "read" }, { code: "search-type" }],
				})),
			},
		],
	});
});

/** Bearer token check (RFC 6750 §3), then any injected FHIR fault. */
fhir.use("*", async (c, next) => {
	const header = c.req.header("Authorization") ?? "";
	const match = /^Bearer\s+(\S+)$/i.exec(header);
	const { access: found, fault } = await stateStub(c.env).admitFhir(match?.[1]);
	if (!match?.[1]) {
		return outcome(401, "login", "A bearer access token is required", {
			"WWW-Authenticate": 'Bearer realm="fhir"',
		});
	}
	const record = found ? patientRecord(found.record.patient) : undefined;
	if (!found || !record) {
		return outcome(401, "login", "The access token is invalid, expired or revoked", {
			"WWW-Authenticate": 'Bearer realm="fhir", error="invalid_token"',
		});
	}
	c.set("access", {
		patientId: record.patient.id,
		practiceId: record.patient.practiceId,
		scope: found.record.scope,
		record,
	});

	if (fault?.delayMs) await sleep(fault.delayMs);
	if (fault?.status) {
		return outcome(
			fault.status,
			fault.status === 429 ? "throttled" : "transient",
			"Injected fault",
			fault.status === 429 ? { "Retry-After": "60" } : {},
		);
	}
	await next();
	if (fault?.cutAfterBytes !== undefined && c.res.body) {
		c.res = new Response(cutAfter(c.res.body, fault.cutAfterBytes), c.res);
	}
});

function insufficientScope(type: string): Response {
	return outcome(403, "forbidden", `The access token does not grant access to ${type}`, {
		"WWW-Authenticate": 'Bearer realm="fhir", error="insufficient_scope"',
	});
}

function compartmentDenied(): Response {
	return outcome(403, "forbidden", "The requested data is outside the authorized patient's record");
}

/** Where a resource lives: the caller's compartment or practice, someone else's, or nowhere. */
function locate(access: Access, type: string, id: string): FhirResource | "elsewhere" | undefined {
	const own = access.record.byType.get(type)?.find((r) => r.id === id);
	if (own) return own;
	if (PRACTICE_LEVEL.has(type)) {
		const shared = practiceResources(access.practiceId).find((r) => r.resourceType === type && r.id === id);
		if (shared) return shared;
	}
	for (const other of TEST_PATIENTS) {
		if (other.id === access.patientId) continue;
		const record = patientRecord(other.id);
		if (record?.byType.get(type)?.some((r) => r.id === id) || record?.binaries.has(id)) return "elsewhere";
		if (practiceResources(other.practiceId).some((r) => r.resourceType === type && r.id === id)) return "elsewhere";
	}
	return undefined;
}

fhir.get("/Binary/:id", (c) => {
	const access = c.get("access");
	if (!scopeAllows(access.scope, "Binary", "read")) return insufficientScope("Binary");
	const id = c.req.param("id");
	const binary = access.record.binaries.get(id);
	if (!binary) {
		return locate(access, "Binary", id) === "elsewhere"
			? compartmentDenied()
			: outcome(404, "not-found", `Binary/${id} is not known`);
	}
	// FHIR R4 Binary: raw bytes by default, the resource itself when FHIR JSON is asked for.
	if ((c.req.header("Accept") ?? "").includes("application/fhir+json")) {
		let text = "";
		for (const b of binary.bytes) text += String.fromCharCode(b);
		return fhirJson({
			resourceType: "Binary",
			id,
			contentType: binary.contentType,
			data: btoa(text),
		});
	}
	return new Response(binary.bytes, {
		headers: { "Content-Type": binary.contentType },
	});
});

fhir.get("/:type/:id", (c) => {
	const access = c.get("access");
	const { type, id } = c.req.param();
	if (!isResourceType(type)) return outcome(404, "not-supported", `Resource type ${type} is not supported`);
	if (!scopeAllows(access.scope, type, "read")) return insufficientScope(type);
	const found = locate(access, type, id);
	if (found === "elsewhere") return compartmentDenied();
	if (!found) return outcome(404, "not-found", `${type}/${id} is not known`);
	return fhirJson(found);
});

/** athena's required parameter combinations; null when satisfied. */
function missingCombination(type: string, has: (name: string) => boolean): string | null {
	switch (type) {
		case "AllergyIntolerance":
			return has("patient") ? null : "AllergyIntolerance searches require the patient parameter";
		case "MedicationRequest":
			return (has("patient") && has("intent")) || has("_id")
				? null
				: "MedicationRequest searches require patient and intent, or _id";
		case "Patient":
			return has("_id") || has("identifier") || has("name") || (has("family") && has("birthdate"))
				? null
				: "Patient searches require _id, identifier, name, or family and birthdate";
		case "Provenance":
			return has("target") ? null : "Provenance searches require the target parameter";
		default:
			if (PRACTICE_LEVEL.has(type)) return null;
			// Assumed (unconfirmed): other compartment searches need patient or _id too.
			return has("patient") || has("subject") || has("_id") ? null : `${type} searches require the patient parameter`;
	}
}

const tokens = (value: string | undefined) =>
	(value ?? "")
		.split(",")
		.map((v) => v.trim())
		.filter(Boolean);

function codings(value: unknown): Array<{ system?: string; code?: string }> {
	const list = Array.isArray(value) ? value : value ? [value] : [];
	return list.flatMap((cc) => (cc as { coding?: Array<{ system?: string; code?: string }> }).coding ?? []);
}

function matchesToken(value: unknown, wanted: string[]): boolean {
	return codings(value).some((coding) =>
		wanted.some((w) => {
			const [system, code] = w.includes("|") ? w.split("|") : [undefined, w];
			return coding.code === code && (system === undefined || system === "" || coding.system === system);
		}),
	);
}

function resourceDate(resource: FhirResource): string | undefined {
	const r = resource as Record<string, unknown>;
	const candidates = [
		r.effectiveDateTime,
		(r.period as { start?: string } | undefined)?.start,
		r.onsetDateTime,
		r.occurrenceDateTime,
		r.authoredOn,
		r.date,
		r.performedDateTime,
	];
	return candidates.find((v): v is string => typeof v === "string");
}

/** FHIR date search with ge/gt/le/lt/eq prefixes, compared on the ISO prefix. */
function matchesDate(resource: FhirResource, filters: string[]): boolean {
	const date = resourceDate(resource);
	if (!date) return false;
	return filters.every((filter) => {
		const match = /^(ge|gt|le|lt|eq)?(.+)$/.exec(filter);
		const prefix = match?.[1] ?? "eq";
		const target = match?.[2] ?? "";
		const value = date.slice(0, target.length);
		switch (prefix) {
			case "ge":
				return value >= target;
			case "gt":
				return value > target;
			case "le":
				return value <= target;
			case "lt":
				return value < target;
			default:
				return value === target;
		}
	});
}

/** Query string with athena's unencoded `/` in ah-practice and references. */
function queryString(params: Array<[string, string]>): string {
	return params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replaceAll("%2F", "/")}`).join("&");
}

async function fingerprint(params: Array<[string, string]>): Promise<string> {
	const canonical = queryString([...params].sort(([a], [b]) => a.localeCompare(b)));
	const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(canonical)));
	return [...digest.slice(0, 8)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

function encodeCursor(offset: number, print: string): string {
	return btoa(JSON.stringify({ o: offset, q: print }))
		.replaceAll("+", "-")
		.replaceAll("/", "_")
		.replace(/=+$/, "");
}

function decodeCursor(cursor: string): { o: number; q: string } | undefined {
	try {
		const parsed = JSON.parse(atob(cursor.replaceAll("-", "+").replaceAll("_", "/"))) as { o?: unknown; q?: unknown };
		if (typeof parsed.o === "number" && Number.isInteger(parsed.o) && parsed.o >= 0 && typeof parsed.q === "string") {
			return { o: parsed.o, q: parsed.q };
		}
	} catch {}
	return undefined;
}

fhir.get("/:type", async (c) => {
	const access = c.get("access");
	const type = c.req.param("type");
	const urls = sandboxUrls(c.req.url);
	if (!isResourceType(type) || type === "Binary") {
		return outcome(400, "not-supported", `Search is not supported for ${type}`);
	}
	if (!scopeAllows(access.scope, type, "search")) return insufficientScope(type);
	const all = [...new URL(c.req.url).searchParams.entries()];
	const get = (name: string) => all.find(([k]) => k === name)?.[1];
	const has = (name: string) => (get(name) ?? "") !== "";

	const practice = get("ah-practice");
	if (!practice) return outcome(400, "processing", MISSING_PRACTICE_TEXT);
	if (practice !== practiceReference(access.practiceId)) {
		return outcome(400, "processing", "The ah-practice parameter does not match the authorized patient's practice");
	}
	const missing = missingCombination(type, has);
	if (missing) return outcome(403, "forbidden", missing);

	for (const name of ["patient", "subject"]) {
		const value = get(name);
		if (value !== undefined && value.replace(/^Patient\//, "") !== access.patientId) return compartmentDenied();
	}

	let candidates: FhirResource[];
	if (PRACTICE_LEVEL.has(type)) {
		candidates = practiceResources(access.practiceId).filter((r) => r.resourceType === type);
	} else if (type === "Provenance") {
		candidates = tokens(get("target")).flatMap((target) => {
			const [targetType, targetId] = target.split("/");
			if (!targetType || !targetId) return [];
			const found = locate(access, targetType, targetId);
			if (!found || found === "elsewhere") return [];
			return [
				{
					resourceType: "Provenance",
					id: `a-${access.practiceId}.Provenance-${targetType}-${targetId}`,
					target: [{ reference: `${targetType}/${targetId}` }],
					recorded: `${resourceDate(found) ?? "2020-01-01"}`.slice(0, 10).concat("T00:00:00Z"),
					agent: [
						{
							type: {
								coding: [
									{
										system: "http://terminology.hl7.org/CodeSystem/provenance-participant-type",
										code: "author",
									},
								],
							},
							who: { reference: practiceReference(access.practiceId) },
						},
					],
				},
			];
		});
	} else {
		candidates = access.record.byType.get(type) ?? [];
	}

	const ids = tokens(get("_id"));
	if (ids.length > 0) candidates = candidates.filter((r) => ids.includes(r.id));
	if (type === "Patient") {
		const p = access.record.patient;
		const identifier = get("identifier");
		const name = get("name")?.toLowerCase();
		const family = get("family")?.toLowerCase();
		const birthdate = get("birthdate");
		candidates = candidates.filter(
			() =>
				(identifier === undefined || identifier.split("|").pop() === p.id.split(".E-")[1]) &&
				(name === undefined || `${p.given} ${p.family}`.toLowerCase().includes(name)) &&
				(family === undefined || p.family.toLowerCase().startsWith(family)) &&
				(birthdate === undefined || birthdate === p.birthDate),
		);
	}
	const category = tokens(get("category"));
	if (category.length > 0) candidates = candidates.filter((r) => matchesToken(r.category, category));
	const code = tokens(get("code"));
	if (code.length > 0) {
		candidates = candidates.filter((r) => matchesToken(r.code ?? r.vaccineCode ?? r.medicationCodeableConcept, code));
	}
	const intent = tokens(get("intent"));
	if (intent.length > 0) candidates = candidates.filter((r) => intent.includes(String(r.intent)));
	const status = tokens(get("status"));
	if (status.length > 0) candidates = candidates.filter((r) => status.includes(String(r.status)));
	const dates = all.filter(([k]) => k === "date").map(([, v]) => v);
	if (dates.length > 0) candidates = candidates.filter((r) => matchesDate(r, dates));

	const countParam = get("_count");
	const count = countParam === undefined ? DEFAULT_COUNT : Number(countParam);
	if (!Number.isInteger(count) || count < 1) return outcome(400, "invalid", "_count must be a positive integer");
	const pageSize = Math.min(count, MAX_COUNT);
	const base = all.filter(([k]) => k !== "cursor");
	const print = await fingerprint(base);
	let offset = 0;
	const cursor = get("cursor");
	if (cursor !== undefined) {
		const decoded = decodeCursor(cursor);
		// The cursor is opaque and bound to the search it came from.
		if (!decoded || decoded.q !== print) return outcome(400, "invalid", "The cursor is not valid for this search");
		offset = decoded.o;
	}
	const searchUrl = `${urls.fhirBase}/${type}?`;
	const selfUrl = searchUrl + queryString(all);
	const nextUrl = (at: number) => searchUrl + queryString([...base, ["cursor", encodeCursor(at, print)]]);

	const sandboxBytes = get(SANDBOX_BYTES_PARAM);
	if (sandboxBytes !== undefined) {
		if (type !== "Observation") return outcome(400, "not-supported", `${SANDBOX_BYTES_PARAM} is only for Observation`);
		const totalBytes = Number(sandboxBytes);
		const options = {
			fhirBase: urls.fhirBase,
			patientId: access.patientId,
			practiceId: access.practiceId,
			totalBytes,
			selfUrl,
			nextUrl: nextUrl(offset + 1),
		};
		const minimum = minimumLargeSearchsetBytes(options);
		if (!Number.isInteger(totalBytes) || totalBytes < minimum || totalBytes > MAX_SANDBOX_BYTES) {
			return outcome(
				400,
				"invalid",
				`${SANDBOX_BYTES_PARAM} must be an integer from ${minimum} to ${MAX_SANDBOX_BYTES}`,
			);
		}
		const contentType = get(SANDBOX_CONTENT_TYPE_PARAM);
		if (contentType !== undefined && !SANDBOX_CONTENT_TYPES.has(contentType)) {
			return outcome(400, "not-supported", `${SANDBOX_CONTENT_TYPE_PARAM} may only be application/octet-stream`);
		}
		return new Response(largeSearchset(options), {
			headers: { "Content-Type": contentType ?? FHIR_JSON },
		});
	}

	const page = candidates.slice(offset, offset + pageSize);
	const link = [{ relation: "self", url: selfUrl }];
	if (offset + pageSize < candidates.length) link.push({ relation: "next", url: nextUrl(offset + pageSize) });
	return fhirJson({
		resourceType: "Bundle",
		type: "searchset",
		total: candidates.length,
		link,
		entry: page.map((resource) => ({
			fullUrl: `${urls.fhirBase}/${resource.resourceType}/${resource.id}`,
			resource,
			search: { mode: "match" },
		})),
	});
});

fhir.all("*", () => outcome(405, "not-supported", "The sandbox serves read and search interactions only"));
