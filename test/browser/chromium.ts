import { type Browser, chromium, type LaunchOptions } from "playwright-core";

/**
 * Debian's Chromium, never a Playwright-downloaded browser. Override with
 * CHROMIUM_PATH on machines that keep it elsewhere.
 */
export const CHROMIUM_PATH: string = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/**
 * Flags for a quiet, offline, headless run on a small CI box: no sandbox
 * (containers lack the namespaces), no GPU, and no background traffic, since
 * the only network available to the browser suites is loopback.
 */
export const CHROMIUM_ARGS: readonly string[] = [
	"--headless",
	"--no-sandbox",
	"--disable-gpu",
	"--disable-background-networking",
	"--disable-quic",
	"--no-first-run",
	"--disable-component-update",
	"--disable-sync",
];

/**
 * Launches Chromium for a browser suite. Playwright gives every launch its
 * own temporary profile, so runs never share cookies or storage.
 *
 * @example
 * const browser = await launchChromium();
 * const page = await browser.newPage();
 * // ...
 * await browser.close();
 */
export function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
	return chromium.launch({
		...options,
		executablePath: options.executablePath ?? CHROMIUM_PATH,
		args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
	});
}
