/*
 * addAthenaScopes: ticks every scope of every product on the athena developer
 * portal's Scopes tab.
 *
 * Paste this whole file into the DevTools console while the app's Scopes tab
 * is open, then run:
 *
 *   await addAthenaScopes({ dryRun: true }) // counts only, ticks nothing
 *   await addAthenaScopes()                 // ticks every unticked scope
 *
 * It never clicks Save: review the table it prints, then click the portal's
 * Save button yourself. Results stay on window.__athenaScopeResults;
 * `copy(__athenaScopeResults.checkedScopes.join("\n"))` puts the ticked
 * scopes on the clipboard for `node tools/athena-scopes/scope-string.mjs`.
 *
 * Why it is this careful: the portal's scope table is virtualized. Only the
 * rows in view are mounted, and every scroll replaces them, so a checkbox
 * found a moment ago may already be detached. The helper therefore works by
 * scope value, never by element, and checks each click took effect.
 */
(() => {
	const PRODUCT = ".ScopeProduct_Container";
	const HEADER = ".ScopeProduct_Header";
	const BADGE = ".ScopeProduct_StatusTag";
	const SELECTED = "ScopeProduct_Selected";
	const CHECKBOX = 'input[name="scopes_checkbox_group"]';
	const LOG = "[athena-scopes]";
	// Anything that looks like it would persist the form is off limits.
	const SAVE_LIKE = /\b(save|submit)\b/i;

	const DEFAULTS = {
		dryRun: false,
		// Pause after each checkbox click before verifying it.
		perClickDelay: 60,
		// Pause after a product becomes active, for its table to render.
		perProductDelay: 400,
		// Pause after each scroll, for the table to mount the rows in view.
		postScrollDelay: 150,
		// Extra clicks on a checkbox that did not end up ticked.
		verifyRetries: 2,
		// How long a product may take to become active before it is skipped.
		activationTimeout: 10000,
	};

	let running = false;

	const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

	// Waits for the browser to paint twice (scroll handlers have run), but
	// never hangs when the tab is in the background and frames stop.
	const settle = (ms) =>
		sleep(ms).then(
			() =>
				new Promise((resolve) => {
					const done = setTimeout(resolve, 100);
					requestAnimationFrame(() =>
						requestAnimationFrame(() => {
							clearTimeout(done);
							resolve();
						}),
					);
				}),
		);

	async function waitFor(condition, timeout, interval = 50) {
		const deadline = Date.now() + timeout;
		for (;;) {
			if (condition()) return true;
			if (Date.now() >= deadline) return false;
			await sleep(interval);
		}
	}

	function refuseSaveLike(element) {
		const control = element.closest('button, [type="submit"], [role="button"], a');
		const text = `${element.textContent} ${element.getAttribute("aria-label") ?? ""}`;
		if (
			(control && SAVE_LIKE.test(control.textContent ?? "")) ||
			(element.tagName !== "INPUT" && SAVE_LIKE.test(text)) ||
			element.type === "submit"
		) {
			throw new Error(`${LOG} refusing to click a save/submit control`);
		}
	}

	const products = () => Array.from(document.querySelectorAll(PRODUCT));

	function describeProduct(container, index) {
		const header = container.querySelector(HEADER) ?? container;
		const badge = container.querySelector(BADGE);
		const status = badge ? badge.textContent.trim() : "";
		let name = header.textContent.trim();
		if (status && header.contains(badge)) {
			name = name.replace(badge.textContent, "").trim();
		}
		return { name: name || `product ${index + 1}`, status };
	}

	const isActive = (index) => products()[index]?.classList.contains(SELECTED) ?? false;

	const mounted = () => Array.from(document.querySelectorAll(CHECKBOX));

	const findCheckbox = (value) => mounted().find((box) => box.value === value) ?? null;

	const overflows = (element) => element.scrollHeight > element.clientHeight + 1;

	// The table's scroll container is the nearest scrollable ancestor of any
	// mounted checkbox; re-found every time because the portal may replace it.
	// Some virtual lists hide the native scrollbar (overflow: hidden) yet
	// still follow scrollTop, so such an ancestor is the fallback.
	function findScroller() {
		const box = mounted()[0];
		let hidden = null;
		for (let el = box?.parentElement; el; el = el.parentElement) {
			if (!overflows(el)) continue;
			const { overflowY } = getComputedStyle(el);
			if (/(auto|scroll|overlay)/.test(overflowY)) return el;
			if (overflowY === "hidden" && hidden === null) hidden = el;
		}
		return hidden;
	}

	async function scrollTo(scroller, top, options) {
		scroller.scrollTop = top;
		await settle(options.postScrollDelay);
	}

	const atBottom = (scroller) => scroller.scrollTop + scroller.clientHeight >= scroller.scrollHeight - 1;

	// Scrolls the table top to bottom, one viewport (less a little overlap) at
	// a time, and records each scope value, whether it is ticked, and the
	// scroll position where its row was mounted.
	async function sweep(options) {
		const seen = new Map();
		const record = (scrollTop) => {
			for (const box of mounted()) {
				if (!seen.has(box.value)) {
					seen.set(box.value, {
						value: box.value,
						checked: box.checked,
						scrollTop,
					});
				} else {
					seen.get(box.value).checked = box.checked;
				}
			}
		};
		const scroller = findScroller();
		if (!scroller) {
			record(0);
			return [...seen.values()];
		}
		await scrollTo(scroller, 0, options);
		for (;;) {
			const current = findScroller() ?? scroller;
			record(current.scrollTop);
			if (atBottom(current)) break;
			const before = current.scrollTop;
			const step = Math.max(1, Math.floor(current.clientHeight * 0.75));
			await scrollTo(current, before + step, options);
			if (current.scrollTop <= before) break;
		}
		return [...seen.values()];
	}

	// Brings the row for `value` back into the DOM: first where the sweep saw
	// it, then the top, then the bottom, then step by step from the top.
	async function bringBack(value, hint, options) {
		let box = findCheckbox(value);
		if (box) return box;
		const scroller = findScroller();
		if (!scroller) return null;
		const tries = [hint, 0, scroller.scrollHeight];
		for (const top of tries) {
			if (top === undefined) continue;
			await scrollTo(scroller, top, options);
			box = findCheckbox(value);
			if (box) return box;
		}
		await scrollTo(scroller, 0, options);
		for (;;) {
			box = findCheckbox(value);
			if (box) return box;
			if (atBottom(scroller)) return null;
			const before = scroller.scrollTop;
			const step = Math.max(1, Math.floor(scroller.clientHeight * 0.75));
			await scrollTo(scroller, before + step, options);
			if (scroller.scrollTop <= before) return null;
		}
	}

	// One attempt: find the row, click if unticked, and read the state back
	// from a freshly found checkbox (the clicked one may have unmounted).
	async function tickOnce(value, hint, options) {
		const box = await bringBack(value, hint, options);
		if (!box) return false;
		if (box.checked) return true;
		refuseSaveLike(box);
		box.click();
		await sleep(options.perClickDelay);
		const after = findCheckbox(value) ?? (await bringBack(value, hint, options));
		return after?.checked === true;
	}

	async function tick(value, hint, options) {
		for (let attempt = 0; attempt <= options.verifyRetries; attempt++) {
			if (await tickOnce(value, hint, options)) return true;
		}
		return false;
	}

	async function activate(index, options) {
		if (isActive(index)) return true;
		const container = products()[index];
		const header = container.querySelector(HEADER) ?? container;
		refuseSaveLike(header);
		header.click();
		return waitFor(() => isActive(index), options.activationTimeout);
	}

	async function processProduct(index, options) {
		const { name, status } = describeProduct(products()[index], index);
		if (!(await activate(index, options))) {
			console.warn(`${LOG} ${name}: skipped, it did not become active within ${options.activationTimeout} ms`);
			return {
				skipped: {
					product: name,
					status,
					reason: `did not become active within ${options.activationTimeout} ms`,
				},
			};
		}
		await sleep(options.perProductDelay);

		const before = await sweep(options);
		const already = before.filter((s) => s.checked).length;
		const unticked = before.filter((s) => !s.checked);
		const row = {
			product: name,
			status,
			total: before.length,
			already,
			added: 0,
			missed: 0,
			toTick: unticked.length,
			missedValues: [],
			checkedValues: before.filter((s) => s.checked).map((s) => s.value),
		};
		if (before.length === 0) {
			console.log(`${LOG} ${name}: no scopes`);
			return { row };
		}
		if (options.dryRun) {
			console.log(`${LOG} ${name}: ${before.length} scopes, ${already} ticked, ${unticked.length} would be ticked`);
			return { row };
		}
		if (unticked.length === 0) {
			console.log(`${LOG} ${name}: all ${before.length} scopes already ticked`);
			return { row };
		}
		console.log(`${LOG} ${name}: ${before.length} scopes, ${already} ticked, ticking ${unticked.length}…`);

		const misses = [];
		for (const scope of unticked) {
			if (!(await tick(scope.value, scope.scrollTop, options))) misses.push(scope);
		}
		// Once more at the end: a row that kept unmounting mid-click often
		// behaves once the table has settled.
		for (const scope of misses) {
			await tickOnce(scope.value, scope.scrollTop, options);
		}

		// The verdict comes from reading the table again, not from our clicks.
		const after = await sweep(options);
		const checkedAfter = new Set(after.filter((s) => s.checked).map((s) => s.value));
		const wasChecked = new Set(before.filter((s) => s.checked).map((s) => s.value));
		row.checkedValues = before.map((s) => s.value).filter((v) => checkedAfter.has(v));
		row.missedValues = before.map((s) => s.value).filter((v) => !checkedAfter.has(v));
		row.added = row.checkedValues.filter((v) => !wasChecked.has(v)).length;
		row.missed = row.missedValues.length;
		if (row.missed > 0) {
			console.warn(`${LOG} ${name}: could not tick ${row.missed}:`, row.missedValues);
		}
		return { row };
	}

	async function addAthenaScopes(overrides = {}) {
		if (running) throw new Error(`${LOG} already running; wait for it to finish`);
		const options = { ...DEFAULTS, ...overrides };
		running = true;
		try {
			const count = products().length;
			if (count === 0) {
				throw new Error(`${LOG} no products found (${PRODUCT}); open the app's Scopes tab first`);
			}
			console.log(`${LOG} ${options.dryRun ? "Dry run over" : "Ticking scopes in"} ${count} products…`);
			const rows = [];
			const skipped = [];
			for (let i = 0; i < count; i++) {
				const { row, skipped: skip } = await processProduct(i, options);
				if (row) rows.push(row);
				if (skip) skipped.push(skip);
			}

			const sum = (key) => rows.reduce((n, r) => n + r[key], 0);
			const results = {
				dryRun: options.dryRun,
				finishedAt: new Date().toISOString(),
				products: rows,
				skipped,
				missed: rows.flatMap((r) => r.missedValues.map((value) => ({ product: r.product, value }))),
				totals: {
					products: count,
					total: sum("total"),
					added: sum("added"),
					already: sum("already"),
					missed: sum("missed"),
					skipped: skipped.length,
				},
				checkedScopes: [...new Set(rows.flatMap((r) => r.checkedValues))],
			};
			window.__athenaScopeResults = results;

			console.table([
				...rows.map((r) => ({
					product: r.product,
					status: r.status,
					total: r.total,
					added: options.dryRun ? `(${r.toTick} to tick)` : r.added,
					already: r.already,
					missed: r.missed,
				})),
				...skipped.map((s) => ({
					product: s.product,
					status: s.status,
					total: "skipped",
					added: "",
					already: "",
					missed: s.reason,
				})),
			]);
			if (skipped.length > 0) {
				console.warn(
					`${LOG} skipped ${skipped.length}: ${skipped.map((s) => s.product).join(", ")}. Open each by hand and run again.`,
				);
			}
			if (options.dryRun) {
				console.log(`${LOG} Dry run: nothing was ticked.`);
			} else {
				console.log(
					`${LOG} Ticked ${results.totals.added}, ${results.totals.already} were already ticked, ${results.totals.missed} missed.`,
				);
				console.log(`${LOG} Nothing is saved yet: click the portal's Save button yourself.`);
			}
			console.log(
				`${LOG} Details: window.__athenaScopeResults. Ticked scopes: copy(__athenaScopeResults.checkedScopes.join("\\n"))`,
			);
			return results;
		} finally {
			running = false;
		}
	}

	window.addAthenaScopes = addAthenaScopes;
	console.log(`${LOG} Ready. Run: await addAthenaScopes({ dryRun: true }), then await addAthenaScopes()`);
})();
