// oidc-provider ships no types; this declares the part of its API the SMART
// test server uses (https://github.com/panva/node-oidc-provider/blob/main/docs/README.md).
declare module "oidc-provider" {
	import type { EventEmitter } from "node:events";
	import type { IncomingMessage, ServerResponse } from "node:http";

	export interface ProviderContext {
		path: string;
		method: string;
		status: number;
		body: unknown;
		query: Record<string, string | string[] | undefined>;
		querystring: string;
		oidc?: {
			route?: string;
			body?: Record<string, string | string[] | undefined>;
			params?: Record<string, unknown>;
			client?: { clientId: string; clientAuthMethod: string };
		};
	}

	interface StoredToken {
		jti: string;
		kind: string;
		accountId?: string;
		clientId?: string;
		grantId?: string;
		scope?: string;
		consumed?: unknown;
		extra?: Record<string, unknown>;
		destroy(): Promise<void>;
		isExpired: boolean;
	}

	interface TokenModel {
		find(value: string): Promise<StoredToken | undefined>;
		revokeByGrantId(grantId: string): Promise<void>;
	}

	interface Grant {
		addOIDCScope(scope: string): void;
		addOIDCClaims(claims: string[]): void;
		save(): Promise<string>;
		destroy(): Promise<void>;
	}

	export interface InteractionDetails {
		uid: string;
		grantId?: string;
		params: Record<string, string | undefined>;
		session?: { accountId: string };
		prompt: {
			name: "login" | "consent" | string;
			details: { missingOIDCScope?: string[]; missingOIDCClaims?: string[] };
		};
	}

	export type InteractionResult =
		| { login: { accountId: string } }
		| { consent: { grantId: string } }
		| { error: string; error_description?: string };

	export class Provider extends EventEmitter {
		constructor(issuer: string, configuration: Record<string, unknown>);
		callback(): (req: IncomingMessage, res: ServerResponse) => void;
		use(middleware: (ctx: ProviderContext, next: () => Promise<void>) => Promise<void>): void;
		interactionDetails(req: IncomingMessage, res: ServerResponse): Promise<InteractionDetails>;
		interactionFinished(
			req: IncomingMessage,
			res: ServerResponse,
			result: InteractionResult,
			options?: { mergeWithLastSubmission?: boolean },
		): Promise<void>;
		readonly AccessToken: TokenModel;
		readonly RefreshToken: TokenModel;
		readonly Grant: {
			new (input: { accountId: string; clientId: string }): Grant;
			find(id: string): Promise<Grant | undefined>;
		};
	}

	export const errors: {
		InvalidRequest: new (description: string) => Error;
	};
}
