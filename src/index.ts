import { app } from "./app";

export { OAuthState } from "./durable/oauth-state";
export { Session } from "./durable/session";
export { TokenBudget } from "./durable/token-budget";

export default app satisfies ExportedHandler<Env>;
