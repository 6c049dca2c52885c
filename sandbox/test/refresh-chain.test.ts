import { describe, expect, it } from "vitest";
import type { Grant, RefreshTokenRecord } from "../src/records";
import { decideRefresh } from "../src/refresh-chain";

// The rules alone, on plain records at chosen instants; token.test.ts runs the
// same chain through the token endpoint.

const T0 = Date.UTC(2030, 5, 1, 12, 0, 0);
const GRACE = 30_000;
const SCOPE = ["openid", "offline_access", "patient/Patient.read"];

const grant: Grant = {
	id: "g1",
	clientId: "client",
	patient: "a-80000.E-14545",
	scope: SCOPE,
	revoked: false,
	createdAt: T0,
	currentRefresh: "live",
	previousRefresh: "previous",
};
const live: RefreshTokenRecord = {
	grantId: "g1",
	clientId: "client",
	patient: grant.patient,
	scope: SCOPE,
	issuedAt: T0,
};
const previous: RefreshTokenRecord = { ...live, rotatedAt: T0, expiresAt: T0 + GRACE };

const decide = (hash: string, record: RefreshTokenRecord, now: number, overrides: Partial<Grant> = {}) =>
	decideRefresh({
		hash,
		record,
		grant: { ...grant, ...overrides },
		clientId: "client",
		scope: SCOPE,
		graceMs: GRACE,
		now,
	});

describe("refresh chain", () => {
	it("rotates the live token: it becomes the previous one for the grace, the older previous is spent", () => {
		expect(decide("live", live, T0 + 1000)).toEqual({
			status: "ok",
			step: {
				grant: { ...grant, previousRefresh: "live", currentRefresh: undefined },
				spent: ["previous"],
				keep: { ...live, rotatedAt: T0 + 1000, expiresAt: T0 + 1000 + GRACE },
				viaGrace: false,
			},
		});
	});

	it("with no grace, spends the presented live token at once", () => {
		const decision = decideRefresh({
			hash: "live",
			record: live,
			grant,
			clientId: "client",
			scope: SCOPE,
			graceMs: 0,
			now: T0,
		});
		expect(decision).toMatchObject({ status: "ok", step: { spent: ["previous", "live"], viaGrace: false } });
		expect(decision.status === "ok" ? decision.step.keep : "refused").toBeUndefined();
	});

	it("accepts the previous token until the grace's last millisecond, spending the live one it never saw", () => {
		expect(decide("previous", previous, T0 + GRACE - 1)).toEqual({
			status: "ok",
			step: { grant: { ...grant, currentRefresh: undefined }, spent: ["live"], viaGrace: true },
		});
		expect(decide("previous", previous, T0 + GRACE)).toEqual({ status: "invalid_grant" });
	});

	it("refuses a token older than the previous one, another client's, a revoked grant's, and a wider scope", () => {
		expect(decide("older", { ...previous }, T0 + 1)).toEqual({ status: "invalid_grant" });
		expect(
			decideRefresh({ hash: "live", record: live, grant, clientId: "other", scope: SCOPE, graceMs: GRACE, now: T0 }),
		).toEqual({ status: "invalid_grant" });
		expect(decide("live", live, T0, { revoked: true })).toEqual({ status: "invalid_grant" });
		expect(
			decideRefresh({
				hash: "live",
				record: live,
				grant,
				clientId: "client",
				scope: [...SCOPE, "patient/Goal.read"],
				graceMs: GRACE,
				now: T0,
			}),
		).toEqual({ status: "invalid_scope", extra: ["patient/Goal.read"] });
	});
});
