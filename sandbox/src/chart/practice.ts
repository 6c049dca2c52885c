/*
 * A practice's directory: the practice itself (a shared `a-1.` entry, as
 * athena keeps practices), its departments, providers and chart-sharing
 * group. Charts point at these; reads of them are answered to any patient of
 * the practice. All names are invented.
 */

import type { FhirResource } from "./resource";

export const practiceReference = (practiceId: string) => `Organization/a-1.Practice-${practiceId}`;
export const chartSharingGroupReference = (practiceId: string) => `Organization/a-${practiceId}.CSG-2`;

export interface Provider {
	reference: string;
	display: string;
}

interface Directory {
	name: string;
	departments: Array<{ id: number; name: string }>;
	providers: Array<{ id: number; given: string; family: string; suffix: string }>;
}

const DIRECTORIES: Record<string, Directory> = {
	"80000": {
		name: "Sandbox Practice 80000",
		departments: [
			{ id: 6, name: "Sandbox Family Medicine" },
			{ id: 12, name: "Sandbox Pediatrics" },
		],
		providers: [
			{ id: 71, given: "Sam", family: "Sandboxdoctor", suffix: "MD" },
			{ id: 84, given: "Priya", family: "Placeholder", suffix: "NP" },
		],
	},
	"195900": {
		name: "Sandbox Practice 195900",
		departments: [{ id: 2, name: "Fixture Internal Medicine" }],
		providers: [{ id: 5, given: "Terry", family: "Testwell", suffix: "DO" }],
	},
};

function directory(practiceId: string): Directory {
	return (
		DIRECTORIES[practiceId] ?? {
			name: `Sandbox Practice ${practiceId}`,
			departments: [{ id: 1, name: "Sandbox Clinic" }],
			providers: [{ id: 1, given: "Sam", family: "Sandboxdoctor", suffix: "MD" }],
		}
	);
}

/** The practice's providers as charts reference them. */
export function providers(practiceId: string): Provider[] {
	return directory(practiceId).providers.map((p) => ({
		reference: `Practitioner/a-${practiceId}.Provider-${p.id}`,
		display: `${p.given} ${p.family}, ${p.suffix}`,
	}));
}

/** The practice's departments as `{ id, name }`, ids `a-{practice}.Department-{n}`. */
export function departments(practiceId: string): Array<{ id: string; name: string }> {
	return directory(practiceId).departments.map((d) => ({ id: `a-${practiceId}.Department-${d.id}`, name: d.name }));
}

/** Practice-level resources: visible to any patient of that practice. */
export function practiceResources(practiceId: string): FhirResource[] {
	const { name, providers: people } = directory(practiceId);
	const practice = { reference: practiceReference(practiceId) };
	return [
		{ resourceType: "Organization", id: `a-1.Practice-${practiceId}`, active: true, name },
		{
			resourceType: "Organization",
			id: `a-${practiceId}.CSG-2`,
			active: true,
			name: `${name} chart sharing group`,
			partOf: practice,
		},
		...departments(practiceId).flatMap(({ id, name: departmentName }) => [
			{ resourceType: "Organization", id, active: true, name: departmentName, partOf: practice },
			{
				resourceType: "Location",
				id,
				status: "active",
				name: departmentName,
				address: { line: ["1 Synthetic Way"], city: "Testville", state: "MA", postalCode: "02000" },
				managingOrganization: practice,
			},
		]),
		...people.map((p) => ({
			resourceType: "Practitioner",
			id: `a-${practiceId}.Provider-${p.id}`,
			active: true,
			name: [{ family: p.family, given: [p.given], suffix: [p.suffix] }],
		})),
	];
}
