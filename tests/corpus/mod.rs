//! A synthetic clinical-note corpus, generated deterministically from a seed: notes with
//! planted identifiers (whose kind and byte range are recorded) among decoys that look
//! numeric but identify no one (dosages, vitals, lab values, ICD-10, CPT and NDC codes,
//! times, bare years, lot numbers shaped like invalid SSNs, room numbers).
//!
//! Dates of service and admission are planted as *dates*, not decoys: Safe Harbor
//! (§164.514(b)(2)(i)(C)) counts every date element other than the year that relates to the
//! individual, including admission and discharge dates.
//!
//! Shared by `tests/scanner.rs` (recall and false positives) and `benches/scan.rs` (speed),
//! via `#[path]`; nothing is committed but this code.

use std::ops::Range;

/// What a planted identifier is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Planted {
    Ssn,
    Phone,
    Fax,
    Email,
    Mrn,
    Date,
    Zip,
    Ip,
    Url,
    Account,
}

/// One note and where its identifiers are.
#[derive(Clone, Debug)]
pub struct Note {
    pub text: String,
    pub planted: Vec<(Planted, Range<usize>)>,
}

/// A small deterministic generator (SplitMix64): the corpus must not depend on a crate's
/// RNG algorithm staying the same across versions.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }

    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next_u64() % items.len() as u64) as usize]
    }

    pub fn chance(&mut self, percent: u64) -> bool {
        self.range(1, 100) <= percent
    }
}

struct Builder {
    text: String,
    planted: Vec<(Planted, Range<usize>)>,
}

impl Builder {
    fn say(&mut self, s: &str) {
        self.text.push_str(s);
    }

    fn plant(&mut self, kind: Planted, value: &str) {
        let start = self.text.len();
        self.text.push_str(value);
        self.planted.push((kind, start..self.text.len()));
    }
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

pub fn ssn(r: &mut Rng) -> String {
    let area = loop {
        let a = r.range(1, 899);
        if a != 666 {
            break a;
        }
    };
    let sep = if r.chance(85) { "-" } else { " " };
    format!(
        "{area:03}{sep}{:02}{sep}{:04}",
        r.range(1, 99),
        r.range(1, 9999)
    )
}

/// Shaped like an SSN but with an area the SSA never issues: a decoy.
fn invalid_ssn(r: &mut Rng) -> String {
    let area = r.pick(&[0, 666, 900, 912, 987, 999]);
    format!("{area:03}-{:02}-{:04}", r.range(1, 99), r.range(1, 9999))
}

pub fn phone(r: &mut Rng) -> String {
    let (a, e, l) = (r.range(201, 989), r.range(200, 999), r.range(0, 9999));
    match r.range(0, 5) {
        0 => format!("({a}) {e}-{l:04}"),
        1 => format!("{a}-{e}-{l:04}"),
        2 => format!("{a}.{e}.{l:04}"),
        3 => format!("+1 {a} {e} {l:04}"),
        4 => format!("1-{a}-{e}-{l:04}"),
        _ => format!("({a}){e}-{l:04}"),
    }
}

pub fn email(r: &mut Rng) -> String {
    let first = r.pick(&["ada", "grace", "alan", "mary", "li", "omar", "ines", "kofi"]);
    let last = r.pick(&[
        "lovelace", "hopper", "turing", "seacole", "wei", "haddad", "sousa",
    ]);
    let domain = r.pick(&[
        "example.org",
        "mail.example.com",
        "patients.hospital.example.net",
        "example.co.uk",
    ]);
    match r.range(0, 3) {
        0 => format!("{first}.{last}@{domain}"),
        1 => format!("{first}_{last}{}@{domain}", r.range(1, 99)),
        2 => format!("{}{last}+portal@{domain}", &first[..1]),
        _ => format!("{last}{}@{domain}", r.range(1900, 2010)),
    }
}

fn mrn_digits(r: &mut Rng) -> String {
    let len = r.range(6, 10) as usize;
    (0..len)
        .map(|_| char::from(b'0' + r.range(0, 9) as u8))
        .collect()
}

/// A date with a month and a day, in one of the formats clinical text uses.
pub fn date(r: &mut Rng) -> String {
    let (y, m, d) = (r.range(1925, 2025), r.range(1, 12), r.range(1, 28));
    let month = MONTHS[(m - 1) as usize];
    match r.range(0, 8) {
        0 => format!("{m:02}/{d:02}/{y}"),
        1 => format!("{m}/{d}/{y}"),
        2 => format!("{y}-{m:02}-{d:02}"),
        3 => format!("{month} {d}, {y}"),
        4 => format!("{d} {} {y}", &month[..3]),
        5 => format!("{d:02}-{}-{y}", &month[..3]),
        6 => format!("{m:02}-{d:02}-{y}"),
        7 => format!("{m}/{d}/{:02}", y % 100),
        _ => format!("{}. {d}, {y}", &month[..3]),
    }
}

fn luhn_complete(prefix: &[u32]) -> u32 {
    // The check digit that makes `prefix ++ [check]` pass Luhn.
    let sum: u32 = prefix
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 0 {
                let d2 = d * 2;
                if d2 > 9 { d2 - 9 } else { d2 }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

pub fn card(r: &mut Rng) -> String {
    let mut ds: Vec<u32> = vec![4];
    ds.extend((0..14).map(|_| r.range(0, 9) as u32));
    let check = luhn_complete(&ds);
    ds.push(check);
    let s: String = ds.iter().map(|d| char::from(b'0' + *d as u8)).collect();
    if r.chance(50) {
        format!("{} {} {} {}", &s[0..4], &s[4..8], &s[8..12], &s[12..16])
    } else {
        s
    }
}

fn name(r: &mut Rng) -> String {
    format!(
        "{} {}",
        r.pick(&[
            "Ada", "Grace", "Alan", "Mary", "Li", "Omar", "Ines", "Kofi", "Maria"
        ]),
        r.pick(&[
            "Lovelace", "Hopper", "Turing", "Seacole", "Wei", "Haddad", "Sousa", "Okafor"
        ])
    )
}

const COMPLAINTS: [&str; 8] = [
    "follow-up of type 2 diabetes mellitus",
    "intermittent chest tightness on exertion",
    "productive cough for 5 days",
    "low back pain radiating to the left leg",
    "medication review and refill",
    "elevated blood pressure readings at home",
    "fatigue and polyuria",
    "shortness of breath when climbing 2 flights of stairs",
];

const MEDS: [&str; 10] = [
    "metformin 500 mg PO BID",
    "metformin 1000 mg PO daily with dinner",
    "lisinopril 10 mg daily",
    "atorvastatin 40 mg qHS",
    "albuterol 90 mcg/actuation 2 puffs q4-6h PRN",
    "insulin glargine 22 units SC qHS",
    "amoxicillin 875 mg PO q12h x 10 days",
    "gabapentin 300 mg PO TID",
    "aspirin 81 mg daily",
    "ondansetron 4 mg ODT q8h PRN nausea",
];

const CODES: [&str; 10] = [
    "E11.9", "I10", "J45.909", "M54.50", "Z79.4", "E78.5", "R07.89", "J20.9", "N39.0", "K21.9",
];

fn vitals(r: &mut Rng) -> String {
    format!(
        "Vitals: BP {}/{}, HR {}, RR {}, Temp {}.{} F, SpO2 {}% on RA, Wt {} lb, BMI {}.{}. ",
        r.range(100, 168),
        r.range(60, 99),
        r.range(52, 110),
        r.range(12, 22),
        r.range(97, 101),
        r.range(0, 9),
        r.range(91, 100),
        r.range(110, 290),
        r.range(18, 42),
        r.range(0, 9)
    )
}

fn labs(r: &mut Rng) -> String {
    format!(
        "Labs: Na {}, K {}.{}, Cl {}, CO2 {}, BUN {}, Cr {}.{}, glucose {} mg/dL, HbA1c {}.{}%, \
         WBC {}.{}, Hgb {}.{}, Plt {}, LDL {} mg/dL, TSH {}.{}. ",
        r.range(130, 146),
        r.range(3, 5),
        r.range(0, 9),
        r.range(96, 110),
        r.range(20, 30),
        r.range(7, 40),
        r.range(0, 2),
        r.range(5, 9),
        r.range(70, 320),
        r.range(5, 11),
        r.range(0, 9),
        r.range(3, 14),
        r.range(0, 9),
        r.range(9, 17),
        r.range(0, 9),
        r.range(120, 450),
        r.range(50, 190),
        r.range(0, 5),
        r.range(1, 99)
    )
}

/// One note, with on average one to two dozen identifiers among roughly 2 KB of text.
pub fn note(r: &mut Rng) -> Note {
    let mut b = Builder {
        text: String::with_capacity(2048),
        planted: Vec::new(),
    };
    b.say("PROGRESS NOTE\nPatient: ");
    b.say(&name(r));
    b.say("    DOB: ");
    let dob = date(r);
    b.plant(Planted::Date, &dob);
    b.say("    ");
    match r.range(0, 4) {
        0 => b.say("MRN: "),
        1 => b.say("MRN "),
        2 => b.say("MRN#"),
        3 => b.say("Medical record number: "),
        _ => b.say("MR# "),
    }
    b.plant(Planted::Mrn, &mrn_digits(r));
    b.say("\nDate of service: ");
    b.plant(Planted::Date, &date(r));
    b.say("    Room ");
    b.say(&r.range(100, 999).to_string());
    b.say("    Encounter type: office visit, CPT 992");
    b.say(&r.range(11, 15).to_string());
    b.say("\n\nCHIEF COMPLAINT: ");
    b.say(r.pick(&COMPLAINTS));
    b.say(".\n\nHPI: ");
    b.say(&format!(
        "{}-year-old seen for {}. Symptoms began about {} weeks ago; no fever. Reports taking ",
        r.range(23, 88),
        r.pick(&COMPLAINTS),
        r.range(1, 12)
    ));
    b.say(r.pick(&MEDS));
    b.say(" and ");
    b.say(r.pick(&MEDS));
    b.say(" as prescribed since ");
    b.say(&r.range(2005, 2024).to_string());
    b.say(". Last visit on ");
    b.plant(Planted::Date, &date(r));
    b.say(", when A1c was ");
    b.say(&format!("{}.{}%", r.range(5, 11), r.range(0, 9)));
    b.say(".\n\n");
    b.say(&vitals(r));
    b.say("\n");
    b.say(&labs(r));
    b.say("\n\n");
    if r.chance(70) {
        b.say("Contact: patient can be reached at ");
        b.plant(Planted::Phone, &phone(r));
        if r.chance(50) {
            b.say(" or by email at ");
            b.plant(Planted::Email, &email(r));
        }
        b.say(". ");
    }
    if r.chance(40) {
        b.say("Referring office fax: ");
        b.plant(Planted::Fax, &phone(r));
        b.say(". ");
    }
    if r.chance(35) {
        match r.range(0, 2) {
            0 => b.say("SSN on file: "),
            1 => b.say("Social security number "),
            _ => b.say("ID verified (SSN "),
        }
        b.plant(Planted::Ssn, &ssn(r));
        b.say(". ");
    }
    if r.chance(35) {
        b.say("Lives at ");
        b.say(&format!("{} Elm St, Springfield, ", r.range(1, 999)));
        let state = r.pick(&["MA", "IL", "OR", "TX", "NY"]);
        b.say(state);
        b.say(" ");
        let zip = if r.chance(70) {
            format!("{:05}", r.range(1001, 99950))
        } else {
            format!("{:05}-{:04}", r.range(1001, 99950), r.range(1, 9999))
        };
        b.plant(Planted::Zip, &zip);
        b.say(". ");
    }
    if r.chance(15) {
        b.say("Portal message sent via ");
        b.plant(
            Planted::Url,
            &format!("https://portal.example.org/msg/{}", r.range(10_000, 99_999)),
        );
        b.say(" from ");
        b.plant(
            Planted::Ip,
            &format!(
                "10.{}.{}.{}",
                r.range(0, 255),
                r.range(0, 255),
                r.range(1, 254)
            ),
        );
        b.say(". ");
    }
    if r.chance(10) {
        b.say("Copay charged to card ");
        b.plant(Planted::Account, &card(r));
        b.say(". ");
    }
    b.say("\n\nASSESSMENT AND PLAN:\n1. ");
    b.say(r.pick(&CODES));
    b.say(" - continue ");
    b.say(r.pick(&MEDS));
    b.say("; recheck BMP in ");
    b.say(&r.range(2, 12).to_string());
    b.say(" weeks. Goal A1c under 7.0%.\n2. ");
    b.say(r.pick(&CODES));
    b.say(" - start ");
    b.say(r.pick(&MEDS));
    b.say(", NDC 0002-");
    b.say(&format!("{:04}-{:02}", r.range(1000, 9999), r.range(1, 99)));
    b.say(", lot ");
    b.say(&invalid_ssn(r));
    b.say(". Dose 0.5 mL IM at 14:");
    b.say(&format!("{:02}", r.range(0, 59)));
    b.say(".\n3. Follow-up on ");
    b.plant(Planted::Date, &date(r));
    b.say(" or sooner if symptoms worsen; return precautions reviewed. Total time ");
    b.say(&r.range(15, 45).to_string());
    b.say(" minutes, over 50% counseling.\n");
    if r.chance(50) {
        b.say("Addendum ");
        b.plant(Planted::Date, &date(r));
        b.say(": patient called ");
        b.plant(Planted::Phone, &phone(r));
        b.say(" asking about the 1000 mg dose and a 90-day supply.\n");
    }
    Note {
        text: b.text,
        planted: b.planted,
    }
}

const NARRATIVE: [&str; 24] = [
    "She reports good adherence to her regimen and denies hypoglycemic episodes.",
    "No chest pain, palpitations, orthopnea or paroxysmal nocturnal dyspnea.",
    "He walks about 2 miles most days and has cut back on sweetened drinks.",
    "Sleep is fragmented; she wakes 3 times a night to urinate.",
    "Denies fever, chills, night sweats or unintentional weight loss.",
    "Lungs are clear to auscultation bilaterally without wheezes or crackles.",
    "Heart has a regular rate and rhythm with no murmurs, rubs or gallops.",
    "Abdomen is soft, non-tender and non-distended with normal bowel sounds.",
    "Extremities show no edema; distal pulses are 2+ and symmetric.",
    "Monofilament sensation is intact in both feet; no ulcers or calluses noted.",
    "Mood is euthymic and affect is congruent; PHQ-9 score today is 4.",
    "We discussed carbohydrate counting and the plate method at length.",
    "Home glucose log shows fasting values mostly between 110 and 140 mg/dL.",
    "Blood pressure at home averages in the low 130s systolic per her cuff.",
    "She tolerates the statin without myalgias; CK was not repeated.",
    "Influenza and pneumococcal vaccines are up to date per the registry.",
    "He quit smoking 10 years ago after a 20 pack-year history.",
    "Alcohol use is 1 to 2 drinks per week; no other substances.",
    "Retinal exam last year showed no diabetic retinopathy.",
    "Urine albumin to creatinine ratio was 18 mg/g, within goal.",
    "Counseled on foot care, hypoglycemia recognition and sick-day rules.",
    "Shared decision making regarding adding a GLP-1 receptor agonist.",
    "Reviewed the risks of NSAIDs given her kidney function and blood pressure.",
    "Patient verbalized understanding of the plan and agrees to proceed.",
];

/// A long narrative note as clinicians write them: a header with a few identifiers, then
/// paragraphs of prose with the numbers clinical text is full of (doses, vitals, labs,
/// scores) and no identifiers. About 6 KB, with 3 to 5 identifiers.
pub fn narrative_note(r: &mut Rng) -> String {
    let mut t = String::with_capacity(8192);
    t.push_str("PROGRESS NOTE\nPatient: ");
    t.push_str(&name(r));
    t.push_str("    DOB: ");
    t.push_str(&date(r));
    t.push_str("    MRN: ");
    t.push_str(&mrn_digits(r));
    t.push_str("\nDate of service: ");
    t.push_str(&date(r));
    t.push_str("\n\nHISTORY OF PRESENT ILLNESS:\n");
    for paragraph in 0..6 {
        for _ in 0..6 {
            t.push_str(r.pick(&NARRATIVE));
            t.push(' ');
        }
        if paragraph == 2 {
            t.push_str("Current medications: ");
            t.push_str(r.pick(&MEDS));
            t.push_str(", ");
            t.push_str(r.pick(&MEDS));
            t.push_str(". ");
        }
        if paragraph == 3 {
            t.push_str(&vitals(r));
            t.push_str(&labs(r));
        }
        t.push_str("\n\n");
    }
    t.push_str("ASSESSMENT AND PLAN: ");
    t.push_str(r.pick(&CODES));
    t.push_str(", ");
    t.push_str(r.pick(&CODES));
    t.push_str(". Continue current regimen, recheck labs in 3 months.");
    if r.chance(30) {
        t.push_str(" Daughter may be reached at ");
        t.push_str(&phone(r));
        t.push('.');
    }
    t.push('\n');
    t
}

/// Narrative notes joined by blank lines until the text holds at least `min_bytes`.
pub fn narrative_text(seed: u64, min_bytes: usize) -> String {
    let mut r = Rng::new(seed);
    let mut text = String::with_capacity(min_bytes + 8192);
    while text.len() < min_bytes {
        text.push_str(&narrative_note(&mut r));
        text.push_str("\n\n");
    }
    text
}

/// `count` notes from `seed`.
pub fn notes(seed: u64, count: usize) -> Vec<Note> {
    let mut r = Rng::new(seed);
    (0..count).map(|_| note(&mut r)).collect()
}

/// Notes joined by blank lines until the text holds at least `min_bytes`.
pub fn corpus_text(seed: u64, min_bytes: usize) -> String {
    let mut r = Rng::new(seed);
    let mut text = String::with_capacity(min_bytes + 4096);
    while text.len() < min_bytes {
        text.push_str(&note(&mut r).text);
        text.push_str("\n\n");
    }
    text
}
