import { type Config, serverById } from "../config";
import { ehrProfile } from "../ehr-profile";
import type { UpstreamReaderOptions } from "./upstream-read";

/**
 * Where the upstream reader may send each connection's token: the
 * environment's athena for connections without a server id, and each
 * SMART_SERVERS entry, as configured now, with its own profile's search rules.
 *
 * @example
 * const read = upstreamReader({ session, ...readServers(config), tokenCache, fetch, timeoutMs, requestId });
 */
export function readServers(
	config: Config,
): Pick<UpstreamReaderOptions, "fhirBaseUrl" | "completeSearches" | "listedServer"> {
	return {
		fhirBaseUrl: config.athena.fhirBaseUrl,
		completeSearches: ehrProfile(config.profile).completesSearches,
		listedServer(serverId) {
			const server = config.smartServers.find((s) => s.id === serverId);
			return (
				server && { fhirBaseUrl: server.fhirBaseUrl, completeSearches: ehrProfile(server.profile).completesSearches }
			);
		},
	};
}

/**
 * The configured FHIR base of a connection's server (its next links and
 * bodies name it); the environment's athena when the server is not listed.
 */
export function connectionFhirBase(config: Config, serverId: string | undefined): string {
	return serverById(config, serverId)?.fhirBaseUrl ?? config.athena.fhirBaseUrl;
}
