import { Hono } from "hono";
import { PATIENT_ACCESS_TYPES, type ResourceType, sandboxUrls } from "./config";
import { type AppEnv, sleep, stateStub } from "./context";
import {
	compartment,
	type FhirResource,
	listSequence,
	type PatientRecord,
	patientIds,
	patientRecord,
	practiceReference,
	practiceResources,
	type ResourceSequence,
} from "./data";
import {
	candidatesWithIds,
	combinationText,
	missingCombination,
	PRACTICE_LEVEL,
	resourceDate,
	resourceFilter,
	scopeAllows,
	searchPage,
} from "./fhir-search";
import { bulkIndex, cutAfter, largeSearchset, minimumLargeSearchsetBytes } from "./stream";

/*
 * athena's FHIR R4 API as its preview answered (shared/athena-observed.md
 * "FHIR R4, as recorded"): a patient token reads and searches its own
 * chart; ah-practice is optional but must name the patient's practice when
 * sent; athena's required parameter combinations and the token's scopes are
 * enforced with athena's OperationOutcomes; searches page by cursor with no
 * total; every answer carries athena's headers.
 */

const FHIR_JSON = "application/fhir+json; charset=utf-8";
const DEFAULT_COUNT = 20;
/** athena's cap is unrecorded; 100 keeps pages of the large chart reasonable. */
const MAX_COUNT = 100;
const RATE_LIMIT = "500";
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

interface Access {
	patientId: string;
	practiceId: string;
	scope: string[];
	record: PatientRecord;
	/** The sandbox's time when the request was admitted (epoch ms; frozen by tests through /_sandbox/clock). */
	now: number;
}

type FhirEnv = AppEnv & { Variables: { access: Access } };

export const fhir = new Hono<FhirEnv>();

/**
 * athena's error shape: severity fatal, `details.text` and `expression`, no
 * `diagnostics`. Recorded for 403s; the sandbox answers every error so.
 */
function outcome(
	status: number,
	code: string,
	text: string,
	options: { expression?: string[]; headers?: Record<string, string> } = {},
): Response {
	const issue = {
		severity: "fatal",
		code,
		details: { text },
		...(options.expression ? { expression: options.expression } : {}),
	};
	return new Response(JSON.stringify({ resourceType: "OperationOutcome", issue: [issue] }), {
		status,
		headers: { "Content-Type": FHIR_JSON, ...options.headers },
	});
}

function fhirJson(body: unknown, location?: string): Response {
	return new Response(JSON.stringify(body), {
		headers: { "Content-Type": FHIR_JSON, ...(location ? { Location: location } : {}) },
	});
}

const isResourceType = (type: string): type is ResourceType =>
	(PATIENT_ACCESS_TYPES as readonly string[]).includes(type);

function randomHex(bytes: number): string {
	return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * athena's headers on every answer: no caching, HSTS, a request id, its rate
 * limit headers (the sandbox never runs out: Remaining is always Limit - 1),
 * and on errors the request and practice ids athena adds.
 */
fhir.use("*", async (c, next) => {
	await next();
	const headers = c.res.headers;
	headers.set("Cache-Control", "no-cache, no-store, must-revalidate");
	headers.set("Pragma", "no-cache");
	headers.set("Expires", "0");
	headers.set("Strict-Transport-Security", "max-age=31536000; includeSubDomains");
	headers.set("X-Request-Id", `rrt-${randomHex(8)}-c-sbx`);
	headers.set("Ratelimit-Limit", RATE_LIMIT);
	headers.set("Ratelimit-Remaining", String(Number(RATE_LIMIT) - 1));
	headers.set("Ratelimit-Reset", "1");
	headers.set("X-Ratelimit-Limit", RATE_LIMIT);
	headers.set("X-Ratelimit-Remaining", String(Number(RATE_LIMIT) - 1));
	if (c.res.status >= 400) {
		headers.set("X-Athena-Request-Id", crypto.randomUUID());
		const practice = c.get("access")?.practiceId;
		if (practice) headers.set("X-Athenanet-Practice-Id", practice);
	}
});

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
	const { now, access: found, fault } = await stateStub(c.env).admitFhir(match?.[1]);
	if (!match?.[1]) {
		return outcome(401, "login", "A bearer access token is required", {
			headers: { "WWW-Authenticate": 'Bearer realm="fhir"' },
		});
	}
	const record = found ? patientRecord(found.record.patient) : undefined;
	if (!found || !record) {
		return outcome(401, "login", "The access token is invalid, expired or revoked", {
			headers: { "WWW-Authenticate": 'Bearer realm="fhir", error="invalid_token"' },
		});
	}
	c.set("access", {
		patientId: record.patient.id,
		practiceId: record.patient.practiceId,
		scope: found.record.scope,
		record,
		now,
	});

	if (fault?.delayMs) await sleep(fault.delayMs);
	if (fault?.status) {
		return outcome(fault.status, fault.status === 429 ? "throttled" : "transient", "Injected fault", {
			headers: fault.status === 429 ? { "Retry-After": "60" } : {},
		});
	}
	await next();
	if (fault?.cutAfterBytes !== undefined && c.res.body) {
		c.res = new Response(cutAfter(c.res.body, fault.cutAfterBytes), c.res);
	}
});

/** athena's answer to a type outside the token's scopes (recorded for ServiceRequest). */
function invalidScope(type: string): Response {
	return outcome(403, "forbidden", "Invalid Token Scope", { expression: [type] });
}

function compartmentDenied(type: string): Response {
	return outcome(403, "forbidden", "The requested data is outside the authorized patient's record", {
		expression: [type],
	});
}

/** Where a resource lives: the caller's compartment or practice, someone else's, or nowhere. */
function locate(access: Access, type: string, id: string): FhirResource | "elsewhere" | undefined {
	const own = compartment(access.record, type);
	const position = own.indexOf(id);
	if (position >= 0) return own.at(position);
	if (PRACTICE_LEVEL.has(type)) {
		const shared = practiceResources(access.practiceId).find((r) => r.resourceType === type && r.id === id);
		if (shared) return shared;
	}
	for (const otherId of patientIds()) {
		if (otherId === access.patientId) continue;
		const other = patientRecord(otherId);
		if (!other) continue;
		if (compartment(other, type).indexOf(id) >= 0 || (type === "Binary" && other.binaries.has(id))) {
			return "elsewhere";
		}
		const practice = practiceResources(other.patient.practiceId);
		if (practice.some((r) => r.resourceType === type && r.id === id)) return "elsewhere";
	}
	return undefined;
}

fhir.get("/Binary/:id", (c) => {
	const access = c.get("access");
	if (!scopeAllows(access.scope, "Binary", "read")) return invalidScope("Binary");
	const id = c.req.param("id");
	const binary = access.record.binaries.get(id);
	if (!binary) {
		return locate(access, "Binary", id) === "elsewhere"
			? compartmentDenied("Binary")
			: outcome(404, "not-found", `Binary/${id} is not known`, { expression: ["Binary"] });
	}
	const location = `${sandboxUrls(c.req.url).fhirBase}/Binary/${id}`;
	// FHIR R4 Binary: raw bytes by default, the resource itself when FHIR JSON is asked for.
	if ((c.req.header("Accept") ?? "").includes("application/fhir+json")) {
		let text = "";
		for (const b of binary.bytes) text += String.fromCharCode(b);
		return fhirJson({ resourceType: "Binary", id, contentType: binary.contentType, data: btoa(text) }, location);
	}
	return new Response(binary.bytes, { headers: { "Content-Type": binary.contentType, Location: location } });
});

fhir.get("/:type/:id", (c) => {
	const access = c.get("access");
	const { type, id } = c.req.param();
	if (!isResourceType(type)) {
		return outcome(404, "not-supported", `Resource type ${type} is not supported`, { expression: [type] });
	}
	if (!scopeAllows(access.scope, type, "read")) return invalidScope(type);
	// Unlisted resources (cancelled or entered-in-error encounters, pending results) are read like any other.
	const found = locate(access, type, id);
	if (found === "elsewhere") return compartmentDenied(type);
	if (!found) return outcome(404, "not-found", `${type}/${id} is not known`, { expression: [type] });
	return fhirJson(found, `${sandboxUrls(c.req.url).fhirBase}/${type}/${id}`);
});

/** Query string with athena's unencoded `/` in ah-practice and references. */
function queryString(params: Array<[string, string]>): string {
	return params.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v).replaceAll("%2F", "/")}`).join("&");
}

/** Provenance for each target in the caller's chart, made up on demand (athena's were never recorded). */
function provenanceFor(access: Access, targets: string[]): FhirResource[] {
	return targets.flatMap((target) => {
		const [targetType, targetId] = target.split("/");
		if (!targetType || !targetId) return [];
		const found = locate(access, targetType, targetId);
		if (!found || found === "elsewhere") return [];
		return [
			{
				resourceType: "Provenance",
				id: `a-${access.practiceId}.Provenance-${targetType}-${targetId}`,
				target: [{ reference: `${targetType}/${targetId}` }],
				recorded: `${(resourceDate(found) ?? "2020-01-01").slice(0, 10)}T00:00:00Z`,
				agent: [
					{
						type: {
							coding: [{ system: "http://terminology.hl7.org/CodeSystem/provenance-participant-type", code: "author" }],
						},
						who: { reference: practiceReference(access.practiceId) },
					},
				],
			},
		];
	});
}

fhir.get("/:type", async (c) => {
	const access = c.get("access");
	const type = c.req.param("type");
	const urls = sandboxUrls(c.req.url);
	if (!isResourceType(type) || type === "Binary") {
		return outcome(400, "not-supported", `Search is not supported for ${type}`, { expression: [type] });
	}
	if (!scopeAllows(access.scope, type, "search")) return invalidScope(type);
	const all = [...new URL(c.req.url).searchParams.entries()];
	const get = (name: string) => all.find(([k]) => k === name)?.[1];
	const has = (name: string) => (get(name) ?? "") !== "";

	// Optional with a patient's token (athena-observed.md); when sent it must be the patient's practice.
	const practice = get("ah-practice");
	if (practice !== undefined && practice !== practiceReference(access.practiceId)) {
		return outcome(400, "processing", "The ah-practice parameter does not name the authorized patient's practice", {
			expression: ["ah-practice"],
		});
	}
	const missing = missingCombination(type, has);
	if (missing) return outcome(403, "forbidden", combinationText(missing), { expression: [type] });

	for (const name of ["patient", "subject"]) {
		const value = get(name);
		if (value !== undefined && value.replace(/^Patient\//, "") !== access.patientId) return compartmentDenied(type);
	}

	const countParam = get("_count");
	const count = countParam === undefined ? DEFAULT_COUNT : Number(countParam);
	if (!Number.isInteger(count) || count < 1) {
		return outcome(400, "invalid", "_count must be a positive integer", { expression: ["_count"] });
	}
	const base = all.filter(([k]) => k !== "cursor");
	const searchUrl = `${urls.fhirBase}/${type}`;
	// The next link repeats the query as sent and adds the cursor: the id of the next page's first match.
	const nextUrl = (cursor: string) => `${searchUrl}?${queryString([...base, ["cursor", cursor]])}`;
	const selfUrl = `${searchUrl}?${queryString(all)}`;
	const timestamp = new Date(access.now).toISOString();

	const sandboxBytes = get(SANDBOX_BYTES_PARAM);
	if (sandboxBytes !== undefined) {
		if (type !== "Observation") {
			return outcome(400, "not-supported", `${SANDBOX_BYTES_PARAM} is only for Observation`, {
				expression: [SANDBOX_BYTES_PARAM],
			});
		}
		const cursor = get("cursor");
		const first = cursor === undefined ? 0 : bulkIndex(access.practiceId, cursor);
		if (first === undefined) return outcome(400, "invalid", "The cursor is not valid for this search");
		const totalBytes = Number(sandboxBytes);
		const options = {
			fhirBase: urls.fhirBase,
			patientId: access.patientId,
			practiceId: access.practiceId,
			totalBytes,
			selfUrl,
			nextUrl,
			timestamp,
			first,
		};
		const minimum = minimumLargeSearchsetBytes(options);
		if (!Number.isInteger(totalBytes) || totalBytes < minimum || totalBytes > MAX_SANDBOX_BYTES) {
			return outcome(
				400,
				"invalid",
				`${SANDBOX_BYTES_PARAM} must be an integer from ${minimum} to ${MAX_SANDBOX_BYTES}`,
				{
					expression: [SANDBOX_BYTES_PARAM],
				},
			);
		}
		const contentType = get(SANDBOX_CONTENT_TYPE_PARAM);
		if (contentType !== undefined && !SANDBOX_CONTENT_TYPES.has(contentType)) {
			return outcome(400, "not-supported", `${SANDBOX_CONTENT_TYPE_PARAM} may only be application/octet-stream`);
		}
		return new Response(largeSearchset(options), {
			headers: { "Content-Type": contentType ?? FHIR_JSON, Location: searchUrl },
		});
	}

	let candidates: ResourceSequence;
	if (PRACTICE_LEVEL.has(type)) {
		candidates = listSequence(practiceResources(access.practiceId).filter((r) => r.resourceType === type));
	} else if (type === "Provenance") {
		candidates = listSequence(
			provenanceFor(
				access,
				(get("target") ?? "")
					.split(",")
					.map((t) => t.trim())
					.filter(Boolean),
			),
		);
	} else {
		candidates = compartment(access.record, type);
	}
	// Filters are tested page by page as the candidates are read, so a page of the large chart's
	// generated Observations costs a page however many there are.
	const page = searchPage(candidatesWithIds(candidates, all), {
		count: Math.min(count, MAX_COUNT),
		cursor: get("cursor"),
		unlisted: access.record.unlisted,
		matches: resourceFilter(type, all),
	});
	if (!page.ok) return outcome(400, "invalid", "The cursor is not valid for this search", { expression: ["cursor"] });
	const link = [{ relation: "self", url: selfUrl }];
	if (page.nextCursor !== undefined) link.push({ relation: "next", url: nextUrl(page.nextCursor) });
	// athena's searchsets carry a timestamp and no total.
	return fhirJson(
		{
			resourceType: "Bundle",
			type: "searchset",
			timestamp,
			link,
			// FHIR JSON has no empty arrays: an empty page has no entry at all.
			...(page.resources.length > 0
				? {
						entry: page.resources.map((resource) => ({
							fullUrl: `${urls.fhirBase}/${resource.resourceType}/${resource.id}`,
							resource,
							search: { mode: "match" },
						})),
					}
				: {}),
		},
		searchUrl,
	);
});

fhir.all("*", () => outcome(405, "not-supported", "The sandbox serves read and search interactions only"));
