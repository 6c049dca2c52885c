// @ts-check
/**
 * An expected refusal or failure of the key CLI. `code` is stable for tests
 * and callers; `message` says what happened and what to do, and never holds
 * key material.
 */
export class KeysError extends Error {
	/** @param {string} code @param {string} message */
	constructor(code, message) {
		super(message);
		this.name = "KeysError";
		this.code = code;
	}
}
