import { DurableObject } from "cloudflare:workers";
import type { AuthorizationServer } from "../oauth/discovery";

/** SMART App Launch / RFC 9700: a state lives 10 minutes at most. */
export const STATE_LIFETIME_MS = 10 * 60_000;

/** What a launch leaves behind for its callback. Never leaves the Durable Object but to the callback. */
export interface PendingAuthorization {
	/** SHA-256 of the browser-binding cookie set at launch. */
	browserHash: string;
	codeVerifier: string;
	nonce: string | undefined;
	/** The practice the app was told to expect (`?practice=` or DEFAULT_PRACTICE), checked against the patient athena returns; absent when the patient picks it at athena. */
	practice?: string | undefined;
	/** The authorization server, settled (configured or discovered) at launch: the callback never depends on discovery being up. */
	server?: AuthorizationServer | undefined;
	/** Which server the launch went to: a SMART_SERVERS id; absent: the environment's athena. */
	serverId?: string | undefined;
	returnTo: string;
	/**
	 * "Connect another record": the id hash of the session the grant is added
	 * to. The callback adds it only when the browser's session cookie still
	 * names that session.
	 */
	connectTo?: string | undefined;
	createdAt: number;
	expiresAt: number;
}

export type ConsumeResult =
	| { ok: true; pending: PendingAuthorization }
	| { ok: false; reason: "unknown" | "expired" | "other_browser" };

const KEY = "pending";

/**
 * One instance per authorization request, named by the SHA-256 of its state.
 * The Durable Object's single thread makes consumption atomic: of two
 * callbacks racing with the same state, exactly one gets the record.
 */
export class OAuthState extends DurableObject<Env> {
	async create(pending: PendingAuthorization): Promise<void> {
		await this.ctx.storage.put(KEY, pending);
		// Alarms are at-least-once; deleting twice is harmless.
		await this.ctx.storage.setAlarm(pending.expiresAt);
	}

	/** Single use: the record is gone after this call, whatever the outcome. */
	async consume(browserHash: string, now = Date.now()): Promise<ConsumeResult> {
		const pending = await this.ctx.storage.get<PendingAuthorization>(KEY);
		if (!pending) return { ok: false, reason: "unknown" };
		await this.ctx.storage.delete(KEY);
		if (now >= pending.expiresAt) return { ok: false, reason: "expired" };
		// A state from another browser is burnt too: it may be a login-CSRF attempt.
		if (pending.browserHash !== browserHash) return { ok: false, reason: "other_browser" };
		return { ok: true, pending };
	}

	/**
	 * Puts a consumed record back when its code could not be redeemed for a
	 * reason that is not the patient's (token budget spent, athena busy), so
	 * the same callback can be retried. Never extends its lifetime.
	 */
	async restore(pending: PendingAuthorization, now = Date.now()): Promise<void> {
		if (now >= pending.expiresAt || (await this.ctx.storage.get(KEY))) return;
		await this.ctx.storage.put(KEY, pending);
	}

	override async alarm(): Promise<void> {
		await this.ctx.storage.deleteAll();
	}
}
