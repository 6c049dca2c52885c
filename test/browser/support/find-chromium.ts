import { accessSync, constants, readdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { delimiter, join } from "node:path";

/** Names Chromium and Chrome go by on PATH, in order of preference. */
const PATH_NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"];

/** App bundles, under /Applications or ~/Applications. */
const MAC_BUNDLES = ["Chromium.app/Contents/MacOS/Chromium", "Google Chrome.app/Contents/MacOS/Google Chrome"];

/**
 * Where a Playwright download keeps the executable inside `chromium-<revision>/`:
 * Chrome for Testing builds (Playwright ≥ 1.57) and the older Chromium builds.
 */
const PLAYWRIGHT_EXECUTABLES = {
	linux: ["chrome-linux64/chrome", "chrome-linux-arm64/chrome", "chrome-linux/chrome"],
	darwin: [
		"chrome-mac-arm64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
		"chrome-mac-x64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing",
		"chrome-mac/Chromium.app/Contents/MacOS/Chromium",
	],
} as const;

export const NOT_FOUND_MESSAGE =
	"No Chromium or Chrome found for the browser suites: install one (Debian/Ubuntu: sudo apt-get install chromium; macOS: brew install --cask chromium) or set CHROMIUM_PATH to its executable.";

/** What the finder may look at; the real machine by default, a fake one in tests. */
export interface ChromiumSearch {
	env: Readonly<Record<string, string | undefined>>;
	platform: NodeJS.Platform;
	home: string;
	/** True when `path` is a file this user may execute. */
	isExecutable(path: string): boolean;
	/** The entry names in `dir`; empty when it does not exist. */
	list(dir: string): string[];
}

/** A browser the suites cannot use; its message is one line that says what to do. */
export class ChromiumNotFound extends Error {
	constructor(message: string) {
		super(message);
		this.name = "ChromiumNotFound";
		// The message is the whole story: a stack trace would only bury it.
		this.stack = `${this.name}: ${message}`;
	}
}

export function machineSearch(): ChromiumSearch {
	return {
		env: process.env,
		platform: process.platform,
		home: homedir(),
		isExecutable(path) {
			try {
				accessSync(path, constants.X_OK);
				return statSync(path).isFile();
			} catch {
				return false;
			}
		},
		list(dir) {
			try {
				return readdirSync(dir);
			} catch {
				return [];
			}
		},
	};
}

/** Playwright's browser folder: PLAYWRIGHT_BROWSERS_PATH, else its per-platform cache. */
function playwrightFolder(search: ChromiumSearch): string | undefined {
	const configured = search.env.PLAYWRIGHT_BROWSERS_PATH;
	// "0" means "inside node_modules", where playwright-core (without browsers) keeps none.
	if (configured && configured !== "0") return configured;
	if (search.platform === "darwin") return join(search.home, "Library", "Caches", "ms-playwright");
	if (search.platform === "linux")
		return join(search.env.XDG_CACHE_HOME || join(search.home, ".cache"), "ms-playwright");
	return undefined;
}

/** Downloaded Chromium builds, newest revision first. */
function playwrightCandidates(search: ChromiumSearch): string[] {
	const folder = playwrightFolder(search);
	const executables =
		search.platform === "darwin"
			? PLAYWRIGHT_EXECUTABLES.darwin
			: search.platform === "linux"
				? PLAYWRIGHT_EXECUTABLES.linux
				: [];
	if (!folder || executables.length === 0) return [];
	const revisions = search
		.list(folder)
		.filter((name) => /^chromium-\d+$/.test(name))
		.sort((a, b) => Number(b.slice("chromium-".length)) - Number(a.slice("chromium-".length)));
	return revisions.flatMap((revision) => executables.map((executable) => join(folder, revision, executable)));
}

/** Every place a browser may be, in the order they are tried (CHROMIUM_PATH apart). */
export function chromiumCandidates(search: ChromiumSearch): string[] {
	const onPath = (search.env.PATH ?? "")
		.split(delimiter)
		.filter(Boolean)
		.flatMap((dir) => PATH_NAMES.map((name) => join(dir, name)));
	const bundles =
		search.platform === "darwin"
			? ["/Applications", join(search.home, "Applications")].flatMap((dir) => MAC_BUNDLES.map((b) => join(dir, b)))
			: [];
	// Debian's package first: CI installs it and the suites were written against it.
	return ["/usr/bin/chromium", ...onPath, ...bundles, ...playwrightCandidates(search)];
}

/**
 * The Chromium or Chrome executable the browser suites launch. CHROMIUM_PATH
 * wins when set (and must then be right); otherwise the usual places are
 * tried in turn. Never downloads a browser.
 *
 * @example
 * const browser = await chromium.launch({ executablePath: findChromium() });
 */
export function findChromium(search: ChromiumSearch = machineSearch()): string {
	const configured = search.env.CHROMIUM_PATH;
	if (configured) {
		if (search.isExecutable(configured)) return configured;
		throw new ChromiumNotFound(
			`CHROMIUM_PATH=${configured} is not an executable file: point it at Chromium or Chrome, or unset it to search the usual places.`,
		);
	}
	const found = chromiumCandidates(search).find((path) => search.isExecutable(path));
	if (!found) throw new ChromiumNotFound(NOT_FOUND_MESSAGE);
	return found;
}
