/* The shapes a chart is built from, shared by the generator and the FHIR routes. */

export type FhirResource = { resourceType: string; id: string } & Record<string, unknown>;

/**
 * Resources in search order, read by position and found by id: a chart's
 * list, or resources made on demand (chart/generated.ts) when there are too
 * many to hold.
 */
export interface ResourceSequence {
	readonly length: number;
	/** The resource at this position (undefined outside 0..length-1). */
	at(index: number): FhirResource | undefined;
	/** The position of the resource with this id, or -1. */
	indexOf(id: string): number;
}

/** A list as a ResourceSequence. */
export function listSequence(list: readonly FhirResource[]): ResourceSequence {
	return { length: list.length, at: (index) => list[index], indexOf: (id) => list.findIndex((r) => r.id === id) };
}

/** `first`, then `second`: positions in `second` come after all of `first`. */
export function concatSequences(first: ResourceSequence, second: ResourceSequence): ResourceSequence {
	return {
		length: first.length + second.length,
		at: (index) => (index < first.length ? first.at(index) : second.at(index - first.length)),
		indexOf: (id) => {
			const inFirst = first.indexOf(id);
			if (inFirst >= 0) return inFirst;
			const inSecond = second.indexOf(id);
			return inSecond < 0 ? -1 : first.length + inSecond;
		},
	};
}

export interface BinaryContent {
	contentType: string;
	bytes: Uint8Array;
}

export interface Coding {
	system: string;
	code: string;
	display?: string;
}

/** A CodeableConcept; `text` defaults to the first coding's display. */
export function concept(codings: Coding[], text?: string): Record<string, unknown> {
	const shown = text ?? codings[0]?.display;
	return { coding: codings, ...(shown !== undefined ? { text: shown } : {}) };
}

export function toBase64(text: string): string {
	let binary = "";
	for (const b of new TextEncoder().encode(text)) binary += String.fromCharCode(b);
	return btoa(binary);
}

/** A tiny but well-formed one-page PDF, served raw by Binary reads. */
export function samplePdf(title: string): Uint8Array {
	const content = `BT /F1 12 Tf 72 720 Td (${title}) Tj ET`;
	const objects = [
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
		`<< /Length ${content.length} >>\nstream\n${content}\nendstream`,
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	];
	let pdf = "%PDF-1.4\n";
	const offsets: number[] = [];
	objects.forEach((body, i) => {
		offsets.push(pdf.length);
		pdf += `${i + 1} 0 obj\n${body}\nendobj\n`;
	});
	const xref = pdf.length;
	pdf += `xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`;
	for (const offset of offsets) pdf += `${String(offset).padStart(10, "0")} 00000 n \n`;
	pdf += `trailer\n<< /Size ${objects.length + 1} /Root 1 0 R >>\nstartxref\n${xref}\n%%EOF\n`;
	return new TextEncoder().encode(pdf);
}
