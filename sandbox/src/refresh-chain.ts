import type { Grant, RefreshTokenRecord } from "./records";

/*
 * Refresh token rotation with Okta's grace period (athena's authorization
 * server is Okta-based; whether it rotates with a grace, and how long, is
 * unconfirmed: see ../README.md, "Refresh token rotation"). One chain per
 * grant: the live token, and at most one previous token still usable within
 * the grace. These are the rules alone, over plain records and a time; the
 * state object reads and writes what they decide in one atomic step.
 */

/**
 * Whether a stored refresh token may be presented at `now`: the grant's live
 * token, or the one it replaced for `graceMs` after that rotation. Older
 * tokens, and a previous one after the grace, are spent.
 */
export function usableRefresh(
	hash: string,
	record: RefreshTokenRecord,
	grant: Grant,
	graceMs: number,
	now: number,
): boolean {
	if (record.rotatedAt === undefined) return true;
	return grant.previousRefresh === hash && now < record.rotatedAt + graceMs;
}

/** What one accepted refresh does to the chain, before the new token set is issued. */
export interface RefreshStep {
	/** The grant with no live token yet: issuing the new set fills it in. */
	grant: Grant;
	/** Hashes of refresh tokens this step spends. */
	spent: string[];
	/** The presented token, stored again as the grant's previous one for the grace. */
	keep?: RefreshTokenRecord;
	/** The presented token was the previous one: the client never received the last answer. */
	viaGrace: boolean;
}

export type RefreshDecision =
	| { status: "ok"; step: RefreshStep }
	| { status: "invalid_grant" }
	| { status: "invalid_scope"; extra: string[] };

export interface RefreshRequest {
	/** SHA-256 of the presented refresh token. */
	hash: string;
	/** Its stored record, if any. */
	record: RefreshTokenRecord | undefined;
	/** The record's grant, if any. */
	grant: Grant | undefined;
	clientId: string;
	scope: string[];
	graceMs: number;
	now: number;
}

/**
 * The refresh grant's rules. Presenting the live token rotates it: the
 * presented token becomes the grant's previous one, usable for `graceMs`
 * (0 = spent at once), and any older previous token is spent now. Presenting
 * the previous token within the grace issues the successor of the current
 * set: the live token the client never saw is spent, and the previous one
 * keeps its original grace (it is not extended). Anything else is
 * `invalid_grant`. A refused scope consumes nothing.
 */
export function decideRefresh(request: RefreshRequest): RefreshDecision {
	const { hash, record, grant, graceMs, now } = request;
	if (!record || record.clientId !== request.clientId) return { status: "invalid_grant" };
	if (!grant || grant.revoked || !usableRefresh(hash, record, grant, graceMs, now)) return { status: "invalid_grant" };
	const extra = request.scope.filter((s) => !record.scope.includes(s));
	if (extra.length > 0) return { status: "invalid_scope", extra };

	if (record.rotatedAt !== undefined) {
		const spent = grant.currentRefresh && grant.currentRefresh !== hash ? [grant.currentRefresh] : [];
		return { status: "ok", step: { grant: { ...grant, currentRefresh: undefined }, spent, viaGrace: true } };
	}
	const spent = grant.previousRefresh && grant.previousRefresh !== hash ? [grant.previousRefresh] : [];
	if (graceMs > 0) {
		return {
			status: "ok",
			step: {
				grant: { ...grant, previousRefresh: hash, currentRefresh: undefined },
				spent,
				keep: { ...record, rotatedAt: now, expiresAt: now + graceMs },
				viaGrace: false,
			},
		};
	}
	return {
		status: "ok",
		step: {
			grant: { ...grant, previousRefresh: undefined, currentRefresh: undefined },
			spent: [...spent, hash],
			viaGrace: false,
		},
	};
}
