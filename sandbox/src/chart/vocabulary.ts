/*
 * The code systems and the coded things the sandbox's charts are made of,
 * shaped like athena's recorded preview data (shared/athena-observed.md):
 * SNOMED CT plus ICD-10-CM on conditions, LOINC plus UCUM on vital signs,
 * LOINC (some codes athena-local, some absent) with bare `unit`s on labs,
 * RxNorm or SNOMED on allergies, CVX on immunizations, CPT or SNOMED or text
 * only on encounters. Values and people are invented.
 */

export const SYSTEM = {
	loinc: "http://loinc.org",
	snomed: "http://snomed.info/sct",
	icd10: "http://hl7.org/fhir/sid/icd-10-cm",
	rxnorm: "http://www.nlm.nih.gov/research/umls/rxnorm",
	cvx: "http://hl7.org/fhir/sid/cvx",
	cpt: "http://www.ama-assn.org/go/cpt",
	ucum: "http://unitsofmeasure.org",
	actCode: "http://terminology.hl7.org/CodeSystem/v3-ActCode",
	observationCategory: "http://terminology.hl7.org/CodeSystem/observation-category",
	conditionCategory: "http://terminology.hl7.org/CodeSystem/condition-category",
	usCoreConditionCategory: "http://hl7.org/fhir/us/core/CodeSystem/condition-category",
	conditionClinical: "http://terminology.hl7.org/CodeSystem/condition-clinical",
	conditionVerification: "http://terminology.hl7.org/CodeSystem/condition-ver-status",
	allergyClinical: "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical",
	allergyVerification: "http://terminology.hl7.org/CodeSystem/allergyintolerance-verification",
	diagnosticService: "http://terminology.hl7.org/CodeSystem/v2-0074",
	documentCategory: "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category",
	dataAbsentReason: "http://terminology.hl7.org/CodeSystem/data-absent-reason",
	athenaPatient: "https://fhir.athena.io/sid/ah-patient",
	ssn: "http://hl7.org/fhir/sid/us-ssn",
} as const;

export const EXTENSION = {
	practice: "https://fhir.athena.io/StructureDefinition/ah-practice",
	chartSharingGroup: "https://fhir.athena.io/StructureDefinition/ah-chart-sharing-group",
	dataAbsentReason: "http://hl7.org/fhir/StructureDefinition/data-absent-reason",
} as const;

/** A diagnosis as athena codes it: SNOMED CT and ICD-10-CM side by side. */
export interface Diagnosis {
	snomed: string;
	snomedDisplay: string;
	icd10: string;
	icd10Display: string;
}

const dx = (snomed: string, snomedDisplay: string, icd10: string, icd10Display: string): Diagnosis => ({
	snomed,
	snomedDisplay,
	icd10,
	icd10Display,
});

export const DIAGNOSES = {
	hypertension: dx("59621000", "Essential hypertension", "I10", "Essential (primary) hypertension"),
	diabetes: dx("44054006", "Diabetes mellitus type 2", "E11.9", "Type 2 diabetes mellitus without complications"),
	hyperlipidemia: dx("55822004", "Hyperlipidemia", "E78.5", "Hyperlipidemia, unspecified"),
	lowBackPain: dx("279039007", "Low back pain", "M54.50", "Low back pain, unspecified"),
	upperRespiratoryInfection: dx(
		"54150009",
		"Upper respiratory infection",
		"J06.9",
		"Acute upper respiratory infection, unspecified",
	),
	vitaminD: dx("34713006", "Vitamin D deficiency", "E55.9", "Vitamin D deficiency, unspecified"),
	reflux: dx(
		"235595009",
		"Gastroesophageal reflux disease",
		"K21.9",
		"Gastro-esophageal reflux disease without esophagitis",
	),
	kneeArthritis: dx("239873007", "Osteoarthritis of knee", "M17.9", "Osteoarthritis of knee, unspecified"),
	bronchitis: dx("10509002", "Acute bronchitis", "J20.9", "Acute bronchitis, unspecified"),
	asthma: dx("195967001", "Asthma", "J45.909", "Unspecified asthma, uncomplicated"),
	mildAsthma: dx("426979002", "Mild asthma", "J45.20", "Mild intermittent asthma, uncomplicated"),
	prostate: dx("266569009", "Benign prostatic hyperplasia", "N40.0", "Benign prostatic hyperplasia without LUTS"),
	obesity: dx("414916001", "Obesity", "E66.9", "Obesity, unspecified"),
	formerSmoker: dx("8517006", "Ex-smoker", "Z87.891", "Personal history of nicotine dependence"),
	otitisMedia: dx("65363002", "Otitis media", "H66.90", "Otitis media, unspecified, unspecified ear"),
	wellChild: dx(
		"410620009",
		"Well child visit",
		"Z00.129",
		"Encounter for routine child health examination without abnormal findings",
	),
	allergicRhinitis: dx("367498001", "Seasonal allergic rhinitis", "J30.2", "Other seasonal allergic rhinitis"),
	migraine: dx("37796009", "Migraine", "G43.909", "Migraine, unspecified, not intractable"),
	anxiety: dx("48694002", "Anxiety", "F41.9", "Anxiety disorder, unspecified"),
} as const;

export type DiagnosisName = keyof typeof DIAGNOSES;

/** Encounter types: CPT, SNOMED, or only text (athena sends all three). */
export type EncounterType =
	| { system: "cpt" | "snomed"; code: string; display: string }
	| { system: "text"; text: string };

export const ENCOUNTER_TYPES: readonly EncounterType[] = [
	{ system: "cpt", code: "99213", display: "Office visit, established patient, low complexity" },
	{ system: "cpt", code: "99214", display: "Office visit, established patient, moderate complexity" },
	{ system: "snomed", code: "185349003", display: "Encounter for check up" },
	{ system: "snomed", code: "390906007", display: "Follow-up encounter" },
	{ system: "text", text: "OFFICE VISIT" },
];

export const VIRTUAL_ENCOUNTER_TYPES: readonly EncounterType[] = [
	{ system: "cpt", code: "99442", display: "Telephone evaluation and management, 11-20 minutes" },
	{ system: "text", text: "TELEHEALTH F/U" },
];

/** A vital sign: LOINC code, UCUM unit, and how a plausible value is drawn. */
export type VitalName = "bloodPressure" | "weight" | "height" | "bmi" | "temperature" | "heartRate" | "oxygen";

export const VITALS: Record<VitalName, { code: string; display: string; unit: string }> = {
	bloodPressure: { code: "85354-9", display: "Blood pressure panel with all children optional", unit: "mm[Hg]" },
	weight: { code: "29463-7", display: "Body weight", unit: "g" },
	height: { code: "8302-2", display: "Body height", unit: "cm" },
	bmi: { code: "39156-5", display: "Body mass index (BMI) [Ratio]", unit: "kg/m2" },
	temperature: { code: "8310-5", display: "Body temperature", unit: "[degF]" },
	heartRate: { code: "8867-4", display: "Heart rate", unit: "/min" },
	oxygen: { code: "59408-5", display: "Oxygen saturation in Arterial blood by Pulse oximetry", unit: "%" },
};

export const BLOOD_PRESSURE_PARTS = {
	systolic: { code: "8480-6", display: "Systolic blood pressure" },
	diastolic: { code: "8462-4", display: "Diastolic blood pressure" },
} as const;

/**
 * A lab test as athena reports it. `code` absent: athena sent only text.
 * `values`: a qualitative result, sent as `valueString`.
 */
export interface LabTest {
	code?: string;
	display: string;
	unit?: string;
	low?: number;
	high?: number;
	decimals?: number;
	values?: readonly string[];
	/** The reference range as athena writes it (text only). */
	range?: string;
}

const quantitative = (
	code: string | undefined,
	display: string,
	unit: string,
	low: number,
	high: number,
	decimals = 0,
): LabTest => ({
	...(code ? { code } : {}),
	display,
	unit,
	low,
	high,
	decimals,
	range: `${low}-${high}`,
});

const qualitative = (
	code: string | undefined,
	display: string,
	values: readonly string[],
	range?: string,
): LabTest => ({
	...(code ? { code } : {}),
	display,
	values,
	...(range ? { range } : {}),
});

const NEGATIVE = ["Negative", "Negative", "Negative", "Trace"] as const;

export const LAB_PANELS: Record<string, { code?: string; display: string; tests: readonly LabTest[] }> = {
	metabolic: {
		code: "24323-8",
		display: "Comprehensive metabolic panel",
		tests: [
			// athena's own code for glucose: not a valid LOINC code, yet sent as http://loinc.org.
			quantitative("12809", "Glucose", "mg/dL", 70, 99),
			quantitative("3094-0", "Urea nitrogen [Mass/volume] in Serum or Plasma", "mg/dL", 7, 20),
			quantitative("2160-0", "Creatinine [Mass/volume] in Serum or Plasma", "mg/dL", 0.6, 1.3, 2),
			qualitative("33914-3", "Glomerular filtration rate/1.73 sq M.predicted", [">60"], ">60 mL/min/1.73m2"),
			quantitative("2951-2", "Sodium [Moles/volume] in Serum or Plasma", "mmol/L", 136, 145),
			quantitative("2823-3", "Potassium [Moles/volume] in Serum or Plasma", "mmol/L", 3.5, 5.1, 1),
			quantitative("2075-0", "Chloride [Moles/volume] in Serum or Plasma", "mmol/L", 98, 107),
			quantitative("2028-9", "Carbon dioxide, total [Moles/volume] in Serum or Plasma", "mmol/L", 22, 29),
			quantitative("17861-6", "Calcium [Mass/volume] in Serum or Plasma", "mg/dL", 8.6, 10.3, 1),
			quantitative("2885-2", "Protein [Mass/volume] in Serum or Plasma", "g/dL", 6, 8.3, 1),
			quantitative("1751-7", "Albumin [Mass/volume] in Serum or Plasma", "g/dL", 3.5, 5, 1),
			quantitative("1975-2", "Bilirubin.total [Mass/volume] in Serum or Plasma", "mg/dL", 0.1, 1.2, 1),
			quantitative("6768-6", "Alkaline phosphatase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 44, 147),
			quantitative(
				"1920-8",
				"Aspartate aminotransferase [Enzymatic activity/volume] in Serum or Plasma",
				"U/L",
				10,
				40,
			),
			quantitative("1742-6", "Alanine aminotransferase [Enzymatic activity/volume] in Serum or Plasma", "U/L", 7, 56),
		],
	},
	lipids: {
		code: "57698-3",
		display: "Lipid panel with direct LDL",
		tests: [
			quantitative("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma", "mg/dL", 125, 200),
			quantitative("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma", "mg/dL", 40, 150),
			quantitative("2085-9", "Cholesterol in HDL [Mass/volume] in Serum or Plasma", "mg/dL", 40, 80),
			quantitative("13457-7", "Cholesterol in LDL [Mass/volume] in Serum or Plasma by calculation", "mg/dL", 50, 100),
		],
	},
	a1c: {
		code: "4548-4",
		display: "Hemoglobin A1c",
		tests: [quantitative("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood", "%", 4, 5.6, 1)],
	},
	bloodCount: {
		code: "58410-2",
		display: "CBC panel - Blood by Automated count",
		tests: [
			quantitative("6690-2", "Leukocytes [#/volume] in Blood by Automated count", "10*3/uL", 4.5, 11, 1),
			quantitative("789-8", "Erythrocytes [#/volume] in Blood by Automated count", "10*6/uL", 4.5, 5.9, 2),
			quantitative("718-7", "Hemoglobin [Mass/volume] in Blood", "g/dL", 13.5, 17.5, 1),
			quantitative("4544-3", "Hematocrit [Volume Fraction] of Blood by Automated count", "%", 41, 53, 1),
			quantitative("787-2", "MCV [Entitic volume] by Automated count", "fL", 80, 100, 1),
			quantitative("785-6", "MCH [Entitic mass] by Automated count", "pg", 27, 33, 1),
			quantitative("786-4", "MCHC [Mass/volume] by Automated count", "g/dL", 32, 36, 1),
			quantitative("777-3", "Platelets [#/volume] in Blood by Automated count", "10*3/uL", 150, 400),
		],
	},
	urinalysis: {
		code: "24356-8",
		display: "Urinalysis complete panel - Urine",
		tests: [
			qualitative("5778-6", "Color of Urine", ["Yellow", "Yellow", "Straw", "Dark yellow"], "Yellow"),
			qualitative("5767-9", "Appearance of Urine", ["Clear", "Clear", "Slightly cloudy"], "Clear"),
			qualitative(
				"5811-5",
				"Specific gravity of Urine by Test strip",
				["1.010", "1.015", "1.020", "1.025"],
				"1.005-1.030",
			),
			qualitative("5803-2", "pH of Urine by Test strip", ["5.5", "6.0", "6.5", "7.0"], "5.0-8.0"),
			qualitative("5792-7", "Glucose [Mass/volume] in Urine by Test strip", NEGATIVE, "Negative"),
			qualitative("20454-5", "Protein [Presence] in Urine by Test strip", NEGATIVE, "Negative"),
			qualitative("5797-6", "Ketones [Mass/volume] in Urine by Test strip", ["Negative"], "Negative"),
			qualitative("5794-3", "Hemoglobin [Presence] in Urine by Test strip", NEGATIVE, "Negative"),
			qualitative("5802-4", "Nitrite [Presence] in Urine by Test strip", ["Negative"], "Negative"),
			qualitative("5799-2", "Leukocyte esterase [Presence] in Urine by Test strip", ["Negative", "Small"], "Negative"),
		],
	},
	wellness: {
		display: "THYROID, PSA, VITAMIN D, B12",
		tests: [
			quantitative("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma", "uIU/mL", 0.4, 4, 2),
			quantitative("2857-1", "Prostate specific Ag [Mass/volume] in Serum or Plasma", "ng/mL", 0, 4, 1),
			quantitative("62292-8", "25-Hydroxyvitamin D2+D3 [Mass/volume] in Serum or Plasma", "ng/mL", 30, 100),
			quantitative("2132-9", "Cobalamin (Vitamin B12) [Mass/volume] in Serum or Plasma", "pg/mL", 200, 900),
		],
	},
	pointOfCare: {
		display: "POINT OF CARE TESTS",
		tests: [
			// athena sends in-office tests with a name and no code at all.
			quantitative(undefined, "HEMOGLOBIN A1C, POC", "%", 4, 5.6, 1),
			quantitative(undefined, "GLUCOSE, FINGERSTICK", "mg/dL", 70, 99),
		],
	},
	rapidTests: {
		display: "RAPID TESTS",
		tests: [
			qualitative(undefined, "COVID-19 ANTIGEN, RAPID", ["Negative", "Negative", "Positive"], "Negative"),
			qualitative(undefined, "STREP A ANTIGEN, RAPID", ["Negative"], "Negative"),
		],
	},
	microalbumin: {
		code: "14959-1",
		display: "Microalbumin/Creatinine [Mass Ratio] in Urine",
		tests: [quantitative("14959-1", "Microalbumin/Creatinine [Mass Ratio] in Urine", "mg/g", 0, 30)],
	},
};

/** The panels a routine lab draw is made of, cycled through over the years. */
export const DRAW_ROTATION: readonly (readonly string[])[] = [
	["metabolic", "lipids", "a1c", "bloodCount"],
	["urinalysis", "microalbumin"],
	["metabolic", "a1c"],
	["pointOfCare"],
	["wellness"],
	["lipids", "a1c"],
	["rapidTests"],
];

export const SMOKING_STATUS = { code: "72166-2", display: "Tobacco smoking status" } as const;

/** Reports that are not lab panels: LOINC part codes as their category (athena-observed.md). */
export const OTHER_REPORTS = [
	{
		category: { code: "LP29684-5", display: "Radiology" },
		code: "36643-5",
		display: "XR Chest 2 Views",
		text: "Two views of the chest. Lungs are clear. Heart size is normal. No acute findings.",
	},
	{
		category: { code: "LP29684-5", display: "Radiology" },
		code: "26257-6",
		display: "XR Knee 3 Views",
		text: "Three views of the right knee. Mild medial joint space narrowing. No fracture.",
	},
	{
		category: { code: "LP29708-2", display: "Cardiology" },
		code: "11524-6",
		display: "EKG study",
		text: "Normal sinus rhythm, rate 72. Normal axis. No ST changes.",
	},
	{
		category: { code: "LP7839-6", display: "Pathology" },
		code: "11526-1",
		display: "Pathology study",
		text: "Colon, random biopsies: colonic mucosa without significant abnormality.",
	},
] as const;

/** Allergies: RxNorm for drugs, SNOMED for the rest. */
export const ALLERGENS = [
	{ system: "rxnorm", code: "7980", display: "Penicillin G", category: "medication" },
	{ system: "rxnorm", code: "2670", display: "Codeine", category: "medication" },
	{ system: "snomed", code: "256349002", display: "Peanut - dietary", category: "food" },
	{ system: "snomed", code: "111088007", display: "Latex", category: "environment" },
	{ system: "rxnorm", code: "723", display: "Amoxicillin", category: "medication" },
	{ system: "snomed", code: "227493005", display: "Cashew nut", category: "food" },
] as const;

export const REACTIONS = [
	{ code: "247472004", display: "Hives" },
	{ code: "271807003", display: "Rash" },
	{ code: "39579001", display: "Anaphylaxis" },
	{ code: "422587007", display: "Nausea" },
] as const;

export const VACCINES = {
	flu: { code: "140", display: "Influenza, seasonal, injectable, preservative free" },
	covid: { code: "213", display: "SARS-COV-2 (COVID-19) vaccine, UNSPECIFIED FORMULATION" },
	pneumococcal: { code: "33", display: "pneumococcal polysaccharide vaccine, 23 valent" },
	tdap: { code: "115", display: "Tdap" },
	zoster: { code: "187", display: "zoster vaccine recombinant" },
	hepB: { code: "08", display: "Hep B, adolescent or pediatric" },
	dtap: { code: "20", display: "DTaP" },
	polio: { code: "10", display: "IPV" },
	mmr: { code: "03", display: "MMR" },
	varicella: { code: "21", display: "varicella" },
	pcv13: { code: "133", display: "Pneumococcal conjugate PCV 13" },
	hepA: { code: "83", display: "Hep A, ped/adol, 2 dose" },
} as const;

export type VaccineName = keyof typeof VACCINES;

export const MEDICATIONS = [
	{ code: "314076", display: "lisinopril 10 MG Oral Tablet", sig: "Take 1 tablet by mouth daily" },
	{
		code: "860975",
		display: "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
		sig: "Take 1 tablet by mouth with dinner",
	},
	{ code: "617310", display: "atorvastatin 20 MG Oral Tablet", sig: "Take 1 tablet by mouth at bedtime" },
	{ code: undefined, display: "OMEPRAZOLE 20 MG CAPSULE,DELAYED RELEASE", sig: "1 capsule before breakfast" },
	{ code: "197361", display: "amlodipine 5 MG Oral Tablet", sig: "Take 1 tablet by mouth daily" },
	{ code: undefined, display: "ALBUTEROL HFA 90 MCG/ACTUATION INHALER", sig: "2 puffs every 4 hours as needed" },
] as const;

export const PROCEDURES = [
	{ system: "snomed", code: "73761001", display: "Colonoscopy" },
	{ system: "cpt", code: "93000", display: "Electrocardiogram, routine, with interpretation and report" },
	{ system: "snomed", code: "80146002", display: "Appendectomy" },
	{ system: "cpt", code: "71046", display: "Radiologic examination, chest; 2 views" },
	{ system: "text", code: undefined, display: "KNEE INJECTION, RIGHT" },
	{ system: "snomed", code: "54885007", display: "Extraction of cataract" },
] as const;

export const GOALS = [
	"Walk 30 minutes, five days a week",
	"Keep HbA1c below 7%",
	"Lose 10 pounds by the next annual visit",
	"Check blood pressure at home twice a week",
	"Limit salt to 2 grams a day",
	"Climb stairs without the rail (knee strength)",
	"Eat five servings of vegetables a day",
	"Sleep 7 hours a night",
	"Bring a medication list to every visit",
	"Keep LDL below 100",
] as const;

export const DEVICES = [
	{ code: "72506001", display: "Implantable defibrillator" },
	{ code: undefined, display: "KNEE PROSTHESIS, RIGHT" },
	{ code: undefined, display: "CORONARY STENT" },
	{ code: "14106009", display: "Cardiac pacemaker" },
	{ code: undefined, display: "INTRAOCULAR LENS, LEFT" },
] as const;

export const DOCUMENT_TYPES = [
	{ code: "11506-3", display: "Progress note" },
	{ code: "34117-2", display: "History and physical note" },
	{ code: "18842-5", display: "Discharge summary" },
	{ code: "34133-9", display: "Summary of episode note" },
] as const;
