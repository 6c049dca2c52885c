// Types for scopes.mjs (plain JavaScript so the command runs without a build).

export type SmartVersion = "v1" | "v2";

export declare const BASE_SCOPES: readonly ["openid", "fhirUser", "offline_access", "launch/patient"];

export declare const SMART_VERSIONS: readonly SmartVersion[];

export declare class ScopeInputError extends Error {
	readonly code: "unknown_version" | "not_a_scope" | "empty_input" | "invalid_json" | "unknown_json";
}

export interface DroppedScope {
	scope: string;
	reason: string;
}

export declare function selectScopes(
	list: Iterable<string>,
	options?: { version?: SmartVersion },
): { kept: string[]; dropped: DroppedScope[] };

export declare function toScopeString(list: Iterable<string>, options?: { version?: SmartVersion }): string;

export declare function parseScopeInput(text: string): string[];
