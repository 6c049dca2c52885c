import { Response } from "miniflare";

/*
 * Runs in Node, inside the vitest process: the stand-in for the product's
 * worker as the sandbox sees it (bound to the sandbox as CLIENT). It serves
 * whatever JWKS the tests last published, with the Cache-Control they chose,
 * and counts how often it was fetched so caching can be asserted.
 */
let published: { jwks: unknown; cacheControl: string } = {
	jwks: { keys: [] },
	cacheControl: "public, max-age=300",
};
let fetches = 0;

export async function testClientService(request: Request): Promise<Response> {
	const url = new URL(request.url);
	if (url.pathname === "/__test/jwks" && request.method === "PUT") {
		published = (await request.json()) as typeof published;
		fetches = 0;
		return new Response(null, { status: 204 });
	}
	if (url.pathname === "/__test/stats") {
		return Response.json({ fetches });
	}
	if (url.pathname === "/.well-known/jwks.json") {
		fetches++;
		return Response.json(published.jwks, { headers: { "Cache-Control": published.cacheControl } });
	}
	return new Response("not found", { status: 404 });
}
