import { readableTypes } from "../oauth/scopes";
import type { TokenSet } from "../oauth/token-client";
import { randomHex } from "../random";
import { type ConnectionStatus, type ConnectionView, REFRESH_MARGIN_MS } from "./contract";
import type { SessionTokens } from "./token-vault";

/*
 * One connected record of a session: a grant at a server, for one patient.
 * The session (session-object.ts) keeps a list of them in its `meta` record
 * and each one's sealed tokens under `tokens:{id}` (docs/storage-schema.md).
 * What is here is plain data and pure rules; storage stays in the object.
 */

/** The token and revocation endpoints of the server that issued a grant. */
export interface SessionServer {
	tokenUrl: string;
	/** undefined: the server offers no revocation. */
	revokeUrl: string | undefined;
	/** The client ID the grant was issued to (absent on records from before it was kept: the environment's). */
	clientId?: string | undefined;
}

/** A connection as the session stores it: never its tokens (sealed apart). */
export interface ConnectionRecord {
	/** Short, random, URL-safe (CONNECTION_ID_PATTERN); unique within its session. */
	id: string;
	status: ConnectionStatus;
	patient: string;
	/** athena: the practice the patient id names; other servers: none. */
	practice?: string | undefined;
	scopes: string[];
	fhirBaseUrl: string;
	/** Who holds the record, as the patient knows it: "athenahealth", a listed server's name, or its host. */
	serverName: string;
	/** The SMART_SERVERS id of the server that holds it; absent: the environment's athena. */
	serverId?: string | undefined;
	/** Where this grant is refreshed and revoked, settled at sign-in (absent on records from before that). */
	server?: SessionServer | undefined;
	connectedAt: number;
	accessExpiresAt: number;
	/** When the server issued the current access token (absent on records written before it was kept). */
	accessIssuedAt?: number | undefined;
}

/** A session's record: its lifetime and its connections, the first one first (the one `/fhir/r4` serves). */
export interface SessionMeta {
	idHash: string;
	createdAt: number;
	lastSeenAt: number;
	absoluteExpiresAt: number;
	connections: ConnectionRecord[];
}

/** A session record as written before sessions held several connections: one grant, its fields at the top. */
export interface LegacySessionMeta {
	idHash: string;
	status: ConnectionStatus;
	patient: string;
	practice?: string | undefined;
	scopes: string[];
	fhirBaseUrl: string;
	server?: SessionServer | undefined;
	createdAt: number;
	lastSeenAt: number;
	absoluteExpiresAt: number;
	accessExpiresAt: number;
	accessIssuedAt?: number | undefined;
}

/** What a successful code exchange gives a session: a grant for one patient at one server. */
export interface NewGrant {
	tokens: TokenSet;
	patient: string;
	practice: string | undefined;
	server: SessionServer;
	fhirBaseUrl: string;
	serverName: string;
	/** A SMART_SERVERS id; absent: the environment's athena. */
	serverId?: string | undefined;
}

/**
 * A fresh connection id: 4 random bytes, 8 hex characters (within
 * CONNECTION_ID_PATTERN). Not a secret: the session cookie guards the
 * session, and an id means something only inside its own session.
 */
export function newConnectionId(taken: readonly ConnectionRecord[] = []): string {
	for (;;) {
		const id = randomHex(4);
		if (!taken.some((c) => c.id === id)) return id;
	}
}

/** The storage key of a connection's sealed tokens. */
export function tokensKey(connectionId: string): string {
	return `tokens:${connectionId}`;
}

/** The AAD a connection's tokens are sealed with: copied to another connection or session, they fail to open. */
export function tokensAad(idHash: string, connectionId: string): string {
	return `${idHash}:${connectionId}`;
}

/** Where the app reads a connection through the proxy, on its own origin. */
export function proxyBasePath(connectionId: string): string {
	return `/fhir/${connectionId}/r4`;
}

/** Whether a session record is the one-grant shape from before connections: read as one connection. */
export function isLegacy(meta: SessionMeta | LegacySessionMeta): meta is LegacySessionMeta {
	return !Array.isArray((meta as Partial<SessionMeta>).connections);
}

/** A one-grant record as a session with that grant as its only connection (`id` newly minted). */
export function fromLegacy(legacy: LegacySessionMeta, id: string, serverName: string): SessionMeta {
	const { idHash, createdAt, lastSeenAt, absoluteExpiresAt, ...grant } = legacy;
	return {
		idHash,
		createdAt,
		lastSeenAt,
		absoluteExpiresAt,
		connections: [
			{
				id,
				status: grant.status,
				patient: grant.patient,
				practice: grant.practice,
				scopes: grant.scopes,
				fhirBaseUrl: grant.fhirBaseUrl,
				serverName,
				server: grant.server,
				connectedAt: createdAt,
				accessExpiresAt: grant.accessExpiresAt,
				accessIssuedAt: grant.accessIssuedAt,
			},
		],
	};
}

/** A new connection, or `existing` (same patient, same server) with the new grant in place of its old one. */
export function connectionFor(grant: NewGrant, id: string, now: number, existing?: ConnectionRecord): ConnectionRecord {
	return {
		id,
		status: "connected",
		patient: grant.patient,
		practice: grant.practice,
		scopes: grant.tokens.scope,
		fhirBaseUrl: grant.fhirBaseUrl,
		serverName: grant.serverName,
		...(grant.serverId ? { serverId: grant.serverId } : {}),
		server: grant.server,
		connectedAt: existing?.connectedAt ?? now,
		accessExpiresAt: grant.tokens.expiresAt,
		accessIssuedAt: now,
	};
}

/** The connection that already holds this patient's record at this server: connecting it again refreshes it. */
export function sameRecord(connections: readonly ConnectionRecord[], grant: NewGrant): ConnectionRecord | undefined {
	return connections.find(
		(c) => c.patient === grant.patient && c.fhirBaseUrl === grant.fhirBaseUrl && c.serverId === grant.serverId,
	);
}

/** The tokens of a grant, as the vault seals them. */
export function grantTokens(tokens: TokenSet): SessionTokens {
	return { accessToken: tokens.accessToken, refreshToken: tokens.refreshToken, idToken: tokens.idToken };
}

/** `meta` with connection `id` changed by `patch` (given the connection as it is); the others as they are. */
export function patchConnection(
	meta: SessionMeta,
	id: string,
	patch: (connection: ConnectionRecord) => Partial<ConnectionRecord>,
): SessionMeta {
	return { ...meta, connections: meta.connections.map((c) => (c.id === id ? { ...c, ...patch(c) } : c)) };
}

/** `meta` with `next` in place of the connection of the same id. */
export function withConnection(meta: SessionMeta, next: ConnectionRecord): SessionMeta {
	return { ...meta, connections: meta.connections.map((c) => (c.id === next.id ? next : c)) };
}

/**
 * Whether the access token is close enough to its end to refresh: within a
 * minute of it, or within the last half of its life when the server issues
 * tokens shorter than two minutes (else every use of a fresh token would refresh it).
 */
export function refreshDue(connection: ConnectionRecord, now: number): boolean {
	const lifetime =
		connection.accessIssuedAt === undefined
			? Number.POSITIVE_INFINITY
			: connection.accessExpiresAt - connection.accessIssuedAt;
	return connection.accessExpiresAt - now <= Math.min(REFRESH_MARGIN_MS, lifetime / 2);
}

/** A connection as `/session` lists it: never a token. */
export function connectionView(connection: ConnectionRecord): ConnectionView {
	return {
		id: connection.id,
		status: connection.status,
		patient: connection.patient,
		practice: connection.practice,
		server: connection.serverName,
		...(connection.serverId ? { serverId: connection.serverId } : {}),
		scopes: connection.scopes,
		reads: readableTypes(connection.scopes),
		fhirBase: proxyBasePath(connection.id),
		...(connection.status === "connected" ? { accessExpiresAt: connection.accessExpiresAt } : {}),
	};
}

/** The name a patient knows a server by: athena's, or the host of another SMART server's FHIR base. */
export function serverNameOf(profile: "athena" | "smart", fhirBaseUrl: string): string {
	return profile === "athena" ? "athenahealth" : new URL(fhirBaseUrl).host;
}
