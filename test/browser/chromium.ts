import { type Browser, chromium, type LaunchOptions } from "playwright-core";
import { findChromium } from "./support/find-chromium";

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
 * Launches Chromium for a browser suite: Debian's, or whichever Chromium or
 * Chrome the machine has (see findChromium; CHROMIUM_PATH first). Nothing is
 * ever downloaded: with no browser, this throws one line saying how to get
 * one. Playwright gives every launch its own temporary profile, so runs never
 * share cookies or storage.
 *
 * @example
 * const browser = await launchChromium();
 * const page = await browser.newPage();
 * // ...
 * await browser.close();
 */
export async function launchChromium(options: LaunchOptions = {}): Promise<Browser> {
	return chromium.launch({
		...options,
		executablePath: options.executablePath ?? findChromium(),
		args: [...CHROMIUM_ARGS, ...(options.args ?? [])],
	});
}
