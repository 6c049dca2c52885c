import { describe, expect, it } from "vitest";
import {
	ChromiumNotFound,
	type ChromiumSearch,
	chromiumCandidates,
	findChromium,
	NOT_FOUND_MESSAGE,
} from "./support/find-chromium";

/** A machine made of the given executables and folders; nothing of the real one is read. */
function machine(
	options: {
		platform?: NodeJS.Platform;
		env?: Record<string, string>;
		executables?: string[];
		folders?: Record<string, string[]>;
	} = {},
): ChromiumSearch & { looked: string[] } {
	const executables = new Set(options.executables ?? []);
	const looked: string[] = [];
	return {
		looked,
		env: { PATH: "/usr/local/bin:/usr/bin:/bin", ...options.env },
		platform: options.platform ?? "linux",
		home: options.platform === "darwin" ? "/Users/dev" : "/home/dev",
		isExecutable(path) {
			looked.push(path);
			return executables.has(path);
		},
		list: (dir) => options.folders?.[dir] ?? [],
	};
}

describe("findChromium", () => {
	it("takes CHROMIUM_PATH first, even when Debian's Chromium is there too", () => {
		const search = machine({
			env: { CHROMIUM_PATH: "/opt/chrome/chrome" },
			executables: ["/opt/chrome/chrome", "/usr/bin/chromium"],
		});
		expect(findChromium(search)).toBe("/opt/chrome/chrome");
	});

	it("refuses a CHROMIUM_PATH that is not an executable, in one line naming it, rather than guess", () => {
		const search = machine({ env: { CHROMIUM_PATH: "/opt/missing" }, executables: ["/usr/bin/chromium"] });
		expect(() => findChromium(search)).toThrow(ChromiumNotFound);
		expect(() => findChromium(search)).toThrow(/^CHROMIUM_PATH=\/opt\/missing is not an executable file/);
	});

	it("takes Debian's /usr/bin/chromium before anything on PATH", () => {
		const search = machine({ executables: ["/usr/local/bin/google-chrome", "/usr/bin/chromium"] });
		expect(findChromium(search)).toBe("/usr/bin/chromium");
	});

	it("finds chromium, chromium-browser, google-chrome and google-chrome-stable on PATH, in that order", () => {
		for (const name of ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable"]) {
			expect(findChromium(machine({ executables: [`/snap/bin/${name}`], env: { PATH: "/bin:/snap/bin" } }))).toBe(
				`/snap/bin/${name}`,
			);
		}
		const both = machine({ executables: ["/usr/local/bin/google-chrome", "/usr/local/bin/chromium-browser"] });
		expect(findChromium(both)).toBe("/usr/local/bin/chromium-browser");
		// The first PATH folder that holds any of them wins, as the shell would pick.
		const earlier = machine({ executables: ["/bin/chromium", "/usr/local/bin/google-chrome-stable"] });
		expect(findChromium(earlier)).toBe("/usr/local/bin/google-chrome-stable");
	});

	it("finds the macOS app bundles, in /Applications and ~/Applications", () => {
		const chrome = "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome";
		expect(findChromium(machine({ platform: "darwin", executables: [chrome] }))).toBe(chrome);
		const own = "/Users/dev/Applications/Chromium.app/Contents/MacOS/Chromium";
		expect(findChromium(machine({ platform: "darwin", executables: [own] }))).toBe(own);
		// Bundles are a macOS thing: Linux never looks for them.
		expect(chromiumCandidates(machine())).not.toContain(chrome);
	});

	it("falls back to Playwright's own download, newest revision first, old and new layouts", () => {
		const cache = "/home/dev/.cache/ms-playwright";
		const folders = { [cache]: ["chromium-1099", "chromium-1200", "chromium_headless_shell-1200", "ffmpeg-1011"] };
		const older = `${cache}/chromium-1099/chrome-linux/chrome`;
		const newer = `${cache}/chromium-1200/chrome-linux64/chrome`;
		expect(findChromium(machine({ folders, executables: [older] }))).toBe(older);
		expect(findChromium(machine({ folders, executables: [older, newer] }))).toBe(newer);
		// Anything installed the usual way is preferred to a download.
		expect(findChromium(machine({ folders, executables: [newer, "/usr/bin/google-chrome"] }))).toBe(
			"/usr/bin/google-chrome",
		);
	});

	it("honours PLAYWRIGHT_BROWSERS_PATH and XDG_CACHE_HOME for Playwright's folder", () => {
		const custom = machine({
			env: { PLAYWRIGHT_BROWSERS_PATH: "/srv/browsers" },
			folders: { "/srv/browsers": ["chromium-1200"] },
			executables: ["/srv/browsers/chromium-1200/chrome-linux64/chrome"],
		});
		expect(findChromium(custom)).toBe("/srv/browsers/chromium-1200/chrome-linux64/chrome");
		const xdg = machine({
			env: { XDG_CACHE_HOME: "/var/cache/dev" },
			folders: { "/var/cache/dev/ms-playwright": ["chromium-1200"] },
			executables: ["/var/cache/dev/ms-playwright/chromium-1200/chrome-linux/chrome"],
		});
		expect(findChromium(xdg)).toBe("/var/cache/dev/ms-playwright/chromium-1200/chrome-linux/chrome");
	});

	it("finds Playwright's download on macOS under ~/Library/Caches", () => {
		const cache = "/Users/dev/Library/Caches/ms-playwright";
		const testing = `${cache}/chromium-1200/chrome-mac-arm64/Google Chrome for Testing.app/Contents/MacOS/Google Chrome for Testing`;
		const search = machine({ platform: "darwin", folders: { [cache]: ["chromium-1200"] }, executables: [testing] });
		expect(findChromium(search)).toBe(testing);
	});

	it("with no browser anywhere, stops with one line that says how to install one", () => {
		const search = machine({ env: { PATH: "/usr/bin:/bin" } });
		let error: unknown;
		try {
			findChromium(search);
		} catch (caught) {
			error = caught;
		}
		expect(error).toBeInstanceOf(ChromiumNotFound);
		const { message, stack } = error as Error;
		expect(message).toBe(NOT_FOUND_MESSAGE);
		expect(message).not.toContain("\n");
		expect(message).toMatch(/apt-get install chromium/);
		expect(message).toMatch(/CHROMIUM_PATH/);
		// Nothing else to read: no stack frames under the line.
		expect(stack).toBe(`ChromiumNotFound: ${NOT_FOUND_MESSAGE}`);
		// It looked in every usual place before giving up.
		expect(search.looked).toEqual(chromiumCandidates(search));
		expect(search.looked).toContain("/usr/bin/chromium");
		expect(search.looked).toContain("/bin/google-chrome-stable");
	});
});
