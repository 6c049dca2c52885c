/**
 * Dates as a patient reads them ("Apr 12, 1968"). FHIR dates carry no time
 * zone for birth dates and onsets, so formatting is in UTC: a birth date must
 * never shift by a day because of where the worker runs.
 */
const DATE = new Intl.DateTimeFormat("en-US", { dateStyle: "medium", timeZone: "UTC" });

/** An ISO 8601 date or date-time (FHIR `date`/`dateTime`) as "Apr 12, 1968"; the input itself when it does not parse. */
export function formatDate(iso: string): string {
	// A bare year or year-month (allowed by FHIR) is shown as given rather than invented into a day.
	if (/^\d{4}(-\d{2})?$/.test(iso)) return iso;
	const time = Date.parse(iso);
	return Number.isFinite(time) ? DATE.format(time) : iso;
}

/** The date part of an ISO date-time, for `<time datetime>`. */
export function isoDay(iso: string): string {
	return iso.slice(0, 10);
}
