import type { Config } from "./config";
import type { LogFields } from "./log";

/** Hono's typing for this worker: its bindings and per-request variables. */
export interface AppEnv {
	Bindings: Env;
	Variables: {
		requestId: string;
		logFields: LogFields;
		/** Set by `requireConfig()` on routes that need the full configuration. */
		config: Config;
	};
}
