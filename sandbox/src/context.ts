import { applyOverrides, parseConfig, type SandboxConfig } from "./config";
import type { SandboxEnv } from "./env";
import type { SandboxState } from "./sandbox-state";

export type StateStub = DurableObjectStub<SandboxState>;

/** The one global state object: every request sees the same codes, jtis and grants. */
export function stateStub(env: SandboxEnv): StateStub {
	return env.STATE.get(env.STATE.idFromName("sandbox"));
}

const parsed = new WeakMap<SandboxEnv, SandboxConfig>();

/** Config from vars (parsed once per env object) with the runtime overrides applied. */
export async function effectiveConfig(env: SandboxEnv, stub: StateStub): Promise<SandboxConfig> {
	let base = parsed.get(env);
	if (!base) {
		base = parseConfig(env);
		parsed.set(env, base);
	}
	return applyOverrides(base, await stub.getOverrides());
}

export type AppEnv = { Bindings: SandboxEnv };

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
