import { app } from "./app";

export { OAuthState } from "./durable/oauth-state";
export { TokenBudget } from "./durable/token-budget";
export { Session } from "./session/session-object";

export default app satisfies ExportedHandler<Env>;
