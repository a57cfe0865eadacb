//! Minimum necessary: `#[derive(Phi)]` with the masking strategies, the policy's `reveal`
//! lists through a guarded call, and the Safe Harbor rules of `generalize`.

use guardrail_core::mask::strategy::{self, RESTRICTED_ZIP3};
use guardrail_core::mask::{MaskingConfig, Strategy as Mask, default_strategy, scrub_text};
use guardrail_core::prelude::*;
use guardrail_core::{CategorySet, Masker};
use proptest::prelude::*;
use serde::Serialize;

fn key(byte: u8) -> AuditKey {
    AuditKey::from_bytes(&[byte; 32]).expect("32 bytes is a key")
}

// ---- the macro's category list is core's -------------------------------------------------

#[test]
fn macro_category_names_match_core() {
    let source = include_str!("../guardrail-macros/src/categories.rs");
    let list = source
        .split("pub(crate) const NAMES: &[&str] = &[")
        .nth(1)
        .and_then(|rest| rest.split("];").next())
        .expect("the NAMES array in categories.rs");
    let names: Vec<&str> = list
        .split(',')
        .map(|s| s.trim().trim_matches('"'))
        .filter(|s| !s.is_empty())
        .collect();
    assert_eq!(names, Category::NAMES);
}

macro_rules! all_categories {
    ($($c:ident),+ $(,)?) => {
        /// One field per category, each named after its category.
        #[derive(Phi, Debug, Clone)]
        struct AllCategories {
            $(#[phi($c)] $c: String,)+
        }

        impl AllCategories {
            fn new() -> AllCategories {
                AllCategories { $($c: format!("raw-{}", stringify!($c)),)+ }
            }

            fn fields(&self) -> Vec<(&'static str, &str)> {
                vec![$((stringify!($c), self.$c.as_str()),)+]
            }
        }
    };
}

all_categories!(
    name,
    address,
    zip,
    date,
    birth_date,
    age,
    phone,
    fax,
    email,
    ssn,
    mrn,
    health_plan,
    account,
    license,
    vehicle,
    device,
    url,
    ip,
    biometric,
    photo,
    other_id,
    diagnosis,
    medication,
    lab_result,
    note,
    substance_use,
    psychotherapy_note,
    hiv_status,
    reproductive_health,
);

#[test]
fn each_category_attribute_masks_as_that_category() {
    let mut config = MaskingConfig::default();
    for c in Category::ALL {
        config.set(*c, Mask::Redact);
    }
    let key = key(1);
    assert_eq!(AllCategories::new().fields().len(), Category::ALL.len());
    for hidden in Category::ALL {
        // Everything revealed but `hidden`: exactly the field named after it is masked.
        let reveal: CategorySet = Category::ALL
            .iter()
            .copied()
            .filter(|c| c != hidden)
            .collect();
        let mut record = AllCategories::new();
        record.redact(&Masker::new(reveal, &config, &key));
        for (field, value) in record.fields() {
            if field == hidden.as_str() {
                assert_eq!(value, "[REDACTED]", "{field} under a hidden {hidden}");
            } else {
                assert_eq!(
                    value,
                    format!("raw-{field}"),
                    "{field} with {hidden} hidden"
                );
            }
        }
    }
}

// ---- scalars and maps marked as PHI --------------------------------------------------------

#[derive(Phi, Debug, Clone, PartialEq)]
struct Vitals {
    #[phi(lab_result)]
    a1c: f64,
    #[phi(lab_result)]
    glucose: f32,
    #[phi(diagnosis)]
    diabetic: bool,
    #[phi(age)]
    age: u32,
    #[phi(medication)]
    doses: std::collections::HashMap<String, String>,
    #[phi(lab_result)]
    panel: std::collections::BTreeMap<String, f64>,
    #[phi(diagnosis)]
    flags: std::collections::HashMap<u32, bool>,
    #[phi(lab_result)]
    readings: Vec<f32>,
    not_phi: f64,
}

fn vitals() -> Vitals {
    Vitals {
        a1c: 7.9,
        glucose: 182.5,
        diabetic: true,
        age: 93,
        doses: [("metformin".to_owned(), "500mg twice daily".to_owned())].into(),
        panel: [("ldl".to_owned(), 161.0)].into(),
        flags: [(250, true)].into(),
        readings: vec![140.0, 201.5],
        not_phi: 1.5,
    }
}

/// `f32`, `f64` and `bool` fields marked `#[phi(..)]` are reset unless revealed, and so are
/// the values of a marked `HashMap`/`BTreeMap` (keys stay: they are not PHI of the field).
#[test]
fn scalar_and_map_phi_fields_are_masked_unless_revealed() {
    let config = MaskingConfig::default();
    let key = key(3);
    let mut masked = vitals();
    masked.redact(&Masker::new(CategorySet::EMPTY, &config, &key));
    assert_eq!(masked.a1c, 0.0);
    assert_eq!(masked.glucose, 0.0);
    assert!(!masked.diabetic);
    assert_eq!(masked.age, 90, "an age over 89 is capped under generalize");
    assert_eq!(masked.doses.len(), 1);
    assert_eq!(masked.doses["metformin"], "[REDACTED]");
    assert_eq!(masked.panel["ldl"], 0.0);
    assert!(!masked.flags[&250]);
    assert_eq!(masked.readings, [0.0, 0.0]);
    assert_eq!(masked.not_phi, 1.5, "an unmarked field is kept");

    let mut revealed = vitals();
    revealed.redact(&Masker::new(CategorySet::ALL, &config, &key));
    assert_eq!(
        revealed,
        vitals(),
        "revealing every category keeps every value"
    );

    // Revealing one category keeps exactly its fields.
    let mut labs = vitals();
    let reveal = CategorySet::EMPTY.with(Category::LabResult);
    labs.redact(&Masker::new(reveal, &config, &key));
    assert_eq!(
        (labs.a1c, labs.glucose, labs.panel["ldl"]),
        (7.9, 182.5, 161.0)
    );
    assert_eq!(labs.readings, [140.0, 201.5]);
    assert!(!labs.diabetic);
    assert!(!labs.flags[&250]);
    assert_eq!(labs.doses["metformin"], "[REDACTED]");
}

// ---- random records, random reveal lists ---------------------------------------------------

#[derive(Phi, Debug, Clone, Serialize)]
enum Contact {
    Phone(#[phi(phone)] String),
    Fax {
        #[phi(fax)]
        number: String,
    },
    Unlisted,
}

#[derive(Phi, Debug, Clone, Serialize)]
struct Visit {
    code: String,
    amount_cents: u64,
    #[phi(date)]
    seen: String,
    #[phi(note)]
    note: String,
    #[phi(diagnosis)]
    diagnosis: String,
    #[phi(account)]
    account: Option<String>,
}

#[derive(Phi, Debug, Clone, Serialize)]
struct Patient {
    #[phi(name)]
    name: String,
    #[phi(ssn)]
    ssn: String,
    #[phi(mrn)]
    mrn: String,
    #[phi(birth_date)]
    dob: String,
    #[phi(zip)]
    zip: String,
    #[phi(email)]
    email: Option<String>,
    contact: Contact,
    visits: Vec<Visit>,
    #[phi(age)]
    age: u8,
}

impl Patient {
    /// Every PHI value with its category (age aside: ages up to 89 stay by design).
    fn phi_values(&self) -> Vec<(Category, String)> {
        let mut out = vec![
            (Category::Name, self.name.clone()),
            (Category::Ssn, self.ssn.clone()),
            (Category::Mrn, self.mrn.clone()),
            (Category::BirthDate, self.dob.clone()),
            (Category::Zip, self.zip.clone()),
        ];
        out.extend(self.email.clone().map(|e| (Category::Email, e)));
        match &self.contact {
            Contact::Phone(p) => out.push((Category::Phone, p.clone())),
            Contact::Fax { number } => out.push((Category::Fax, number.clone())),
            Contact::Unlisted => {}
        }
        for v in &self.visits {
            out.push((Category::Date, v.seen.clone()));
            out.push((Category::Note, v.note.clone()));
            out.push((Category::Diagnosis, v.diagnosis.clone()));
            out.extend(v.account.clone().map(|a| (Category::Account, a)));
        }
        out
    }
}

fn ssn() -> impl proptest::strategy::Strategy<Value = String> {
    (1u32..=899, 1u32..=99, 1u32..=9999)
        .prop_filter("area 666 is never issued", |(a, _, _)| *a != 666)
        .prop_map(|(a, g, s)| format!("{a:03}-{g:02}-{s:04}"))
}

fn phone() -> impl proptest::strategy::Strategy<Value = String> {
    (200u32..=989, 200u32..=999, 0u32..=9999).prop_map(|(a, e, l)| format!("({a}) {e}-{l:04}"))
}

fn date() -> impl proptest::strategy::Strategy<Value = String> {
    (1900u32..=2025, 1u32..=12, 1u32..=28, 0..3).prop_map(|(y, m, d, f)| match f {
        0 => format!("{y}-{m:02}-{d:02}"),
        1 => format!("{m:02}/{d:02}/{y}"),
        _ => format!("{d:02}.{m:02}.{y}"),
    })
}

/// Values that cannot occur by chance in masked output (mixed case, separators, length).
/// `prefix` keeps values of different fields apart.
fn word(prefix: &'static str) -> impl proptest::strategy::Strategy<Value = String> {
    "[a-z]{6,10}".prop_map(move |w| format!("{prefix}{w}"))
}

fn visit() -> impl proptest::strategy::Strategy<Value = Visit> {
    (
        "99[0-9]{3}",
        0u64..1_000_000,
        date(),
        (word("Za"), phone(), word("Zb")),
        word("Zd"),
        proptest::option::of("4[0-9]{15}"),
    )
        .prop_map(
            |(code, amount_cents, seen, (a, p, b), diagnosis, account)| Visit {
                code,
                amount_cents,
                seen,
                // A note always names an identifier the scanner finds, so `scan` changes it.
                note: format!("{a} called from {p} about {b}"),
                diagnosis,
                account,
            },
        )
}

fn patient() -> impl proptest::strategy::Strategy<Value = Patient> {
    (
        (word("Zn"), ssn(), "MRN[0-9]{8,10}", date()),
        (
            "[0-9]{5}-[0-9]{4}",
            proptest::option::of("zq[a-z]{4,8}@example\\.org"),
        ),
        prop_oneof![
            phone().prop_map(Contact::Phone),
            phone().prop_map(|number| Contact::Fax { number }),
            Just(Contact::Unlisted),
        ],
        proptest::collection::vec(visit(), 0..4),
        0u8..=120,
    )
        .prop_map(
            |((name, ssn, mrn, dob), (zip, email), contact, visits, age)| Patient {
                name,
                ssn,
                mrn,
                dob,
                zip,
                email,
                contact,
                visits,
                age,
            },
        )
}

fn reveal_list() -> impl proptest::strategy::Strategy<Value = CategorySet> {
    proptest::sample::subsequence(Category::ALL.to_vec(), 0..=Category::ALL.len())
        .prop_map(|cs| cs.into_iter().collect())
}

fn strategy_choice() -> impl proptest::strategy::Strategy<Value = Mask> {
    prop_oneof![
        Just(Mask::Redact),
        Just(Mask::Partial),
        Just(Mask::Tokenize),
        Just(Mask::Generalize),
        Just(Mask::Scan),
    ]
}

fn config() -> impl proptest::strategy::Strategy<Value = MaskingConfig> {
    prop_oneof![
        Just(MaskingConfig::default()),
        proptest::collection::vec(strategy_choice(), Category::ALL.len()).prop_map(|choices| {
            let mut config = MaskingConfig::default();
            for (c, s) in Category::ALL.iter().zip(choices) {
                config.set(*c, s);
            }
            config
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// For random records, reveal lists and strategies: no raw value of an unrevealed field
    /// appears anywhere in the masked value's Debug or JSON, and every revealed one is intact.
    #[test]
    fn unrevealed_values_never_appear(
        p in patient(),
        reveal in reveal_list(),
        config in config(),
    ) {
        let key = key(9);
        let values = p.phi_values();
        let mut masked = p.clone();
        masked.redact(&Masker::new(reveal, &config, &key));
        let debug = format!("{masked:?}");
        let json = serde_json::to_string(&masked).expect("serializes");
        for (category, raw) in &values {
            let scanned = config.strategy(*category) == Mask::Scan
                && strategy::scan_applies(*category);
            if scanned && !reveal.contains(*category) && scrub_text(raw) == *raw {
                // `scan` on clinical free text shows it with identifiers masked; text that
                // holds none (a diagnosis here) is shown as is, by the policy's choice.
                continue;
            }
            if reveal.contains(*category) {
                prop_assert!(debug.contains(raw.as_str()), "revealed {} {:?} is gone", category, raw);
            } else {
                prop_assert!(!debug.contains(raw.as_str()), "{} {:?} in {}", category, raw, debug);
                prop_assert!(!json.contains(raw.as_str()), "{} {:?} in {}", category, raw, json);
            }
        }
        // Non-PHI fields are the caller's to see, whatever the reveal list.
        for (before, after) in p.visits.iter().zip(&masked.visits) {
            prop_assert_eq!(&before.code, &after.code);
            prop_assert_eq!(before.amount_cents, after.amount_cents);
        }
        // Ages: kept up to 89, 90 (the "90 or older" category) above, 0 unless generalized.
        if !reveal.contains(Category::Age) {
            let expected = match config.strategy(Category::Age) {
                Mask::Generalize => p.age.min(90),
                _ => 0,
            };
            prop_assert_eq!(masked.age, expected);
        }
    }

    #[test]
    fn tokens_are_stable_under_a_key_and_differ_across_keys(
        value in "[[:print:]]{1,40}",
        a in any::<[u8; 32]>(),
        b in any::<[u8; 32]>(),
        c in proptest::sample::select(Category::ALL.to_vec()),
        other in proptest::sample::select(Category::ALL.to_vec()),
    ) {
        prop_assume!(a != b);
        let (ka, kb) = (AuditKey::from_bytes(&a).expect("key"), AuditKey::from_bytes(&b).expect("key"));
        let t = strategy::tokenize(c, &value, &ka);
        prop_assert_eq!(&t, &strategy::tokenize(c, &value, &ka));
        prop_assert_ne!(&t, &strategy::tokenize(c, &value, &kb));
        prop_assert!(!t.contains(value.as_str()) || value.len() < 4);
        if other != c {
            // Domain-separated: an MRN and an account number with the same digits differ.
            prop_assert_ne!(&t, &strategy::tokenize(other, &value, &ka));
        }
        // The same through the masker.
        let mut config = MaskingConfig::default();
        config.set(c, Mask::Tokenize);
        let mut s = value.clone();
        Masker::new(CategorySet::EMPTY, &config, &ka).mask_string(c, &mut s);
        prop_assert_eq!(s, t);
    }

    #[test]
    fn dates_generalize_to_their_year(
        y in 1000u32..=2999, m in 1u32..=12, d in 1u32..=28, f in 0..9usize,
    ) {
        const MONTHS: [&str; 12] = ["January", "February", "March", "April", "May", "June",
            "July", "August", "September", "October", "November", "December"];
        let month = MONTHS[(m - 1) as usize];
        let text = match f {
            0 => format!("{y}-{m:02}-{d:02}"),
            1 => format!("{m:02}/{d:02}/{y}"),
            2 => format!("{m}/{d}/{y}"),
            3 => format!("{d:02}.{m:02}.{y}"),
            4 => format!("{month} {d}, {y}"),
            5 => format!("{d} {} {y}", &month[..3]),
            6 => format!("{d:02}-{}-{y}", &month[..3]),
            7 => format!("{y}{m:02}{d:02}"),
            _ => format!("{y}-{m:02}-{d:02}T08:30:00Z"),
        };
        prop_assert_eq!(strategy::generalize_at(Category::Date, &text, 2026), y.to_string());
        let birth = strategy::generalize_at(Category::BirthDate, &text, 2026);
        if 2026 - i64::from(y) >= 90 {
            prop_assert_eq!(birth, "90+");
        } else {
            prop_assert_eq!(birth, y.to_string());
        }
    }

    #[test]
    fn zips_generalize_to_three_digits_or_000(zip in 0u32..=99_999, plus4 in proptest::option::of(0u32..=9999)) {
        let text = match plus4 {
            Some(p) => format!("{zip:05}-{p:04}"),
            None => format!("{zip:05}"),
        };
        let prefix = format!("{:03}", zip / 100);
        let expected = if RESTRICTED_ZIP3.contains(&prefix.as_str()) { "000".to_owned() } else { prefix };
        prop_assert_eq!(strategy::generalize_at(Category::Zip, &text, 2026), expected);
    }

    #[test]
    fn ages_over_89_become_90_plus(age in 0u32..=150) {
        let out = strategy::generalize_at(Category::Age, &age.to_string(), 2026);
        if age > 89 { prop_assert_eq!(out, "90+") } else { prop_assert_eq!(out, age.to_string()) }
    }

    #[test]
    fn partial_shows_at_most_four_digits_and_never_the_whole(
        digits in "[0-9]{0,20}",
        sep in proptest::sample::select(vec!["", "-", " ", "."]),
        c in proptest::sample::select(Category::ALL.to_vec()),
    ) {
        let value: String = digits.chars().enumerate().flat_map(|(i, ch)| {
            let s = if i > 0 && i % 3 == 0 { sep } else { "" };
            s.chars().chain(std::iter::once(ch)).collect::<Vec<_>>()
        }).collect();
        let out = strategy::partial(c, &value);
        let shown = out.chars().filter(char::is_ascii_digit).count();
        prop_assert!(shown <= 4, "{value:?} -> {out:?}");
        prop_assert!(digits.is_empty() || out != value, "{value:?} shown whole");
        if shown > 0 {
            prop_assert!(digits.len() >= 8 && digits.ends_with(&out.chars().filter(char::is_ascii_digit).collect::<String>()));
        }
    }
}

#[test]
fn safe_harbor_zip_list_is_the_hhs_list() {
    // HHS de-identification guidance (2000 Census): 17 three-digit areas of 20,000 or fewer.
    assert_eq!(
        RESTRICTED_ZIP3,
        [
            "036", "059", "063", "102", "203", "556", "692", "790", "821", "823", "830", "831",
            "878", "879", "884", "890", "893"
        ]
    );
    for z in RESTRICTED_ZIP3 {
        assert_eq!(
            strategy::generalize_at(Category::Zip, &format!("{z}42"), 2026),
            "000"
        );
    }
    assert_eq!(strategy::generalize_at(Category::Zip, "03742", 2026), "037");
}

#[test]
fn unparseable_values_fail_closed() {
    let key = key(3);
    for (c, s, v) in [
        (Category::Date, Mask::Generalize, "next Tuesday"),
        (Category::Zip, Mask::Generalize, "Boston"),
        (Category::Age, Mask::Generalize, "ninety-two"),
        (Category::Name, Mask::Generalize, "Ada"),
        (Category::Ssn, Mask::Partial, "1234"),
        (Category::Email, Mask::Partial, "ada@example.org"),
        (Category::Name, Mask::Scan, "Ada Lovelace"),
    ] {
        let mut value = v.to_owned();
        guardrail_core::mask::apply(s, c, &mut value, &key);
        assert_eq!(value, "[REDACTED]", "{c} under {s:?}: {v}");
    }
}

#[test]
fn defaults_follow_the_documented_table() {
    use Category as C;
    for (c, s) in [
        (C::Ssn, Mask::Partial),
        (C::Phone, Mask::Partial),
        (C::Fax, Mask::Partial),
        (C::Account, Mask::Partial),
        (C::Mrn, Mask::Tokenize),
        (C::HealthPlan, Mask::Tokenize),
        (C::Zip, Mask::Generalize),
        (C::Date, Mask::Generalize),
        (C::BirthDate, Mask::Generalize),
        (C::Age, Mask::Generalize),
        (C::Note, Mask::Redact),
        (C::Name, Mask::Redact),
        (C::Diagnosis, Mask::Redact),
    ] {
        assert_eq!(default_strategy(c), s, "{c}");
        assert_eq!(MaskingConfig::default().strategy(c), s, "{c}");
    }
}

// ---- the policy's reveal list through a guarded call --------------------------------------

const POLICY: &str = r#"
version = "masking-test-1"

[masking]
ssn = "partial"
NOTE_STRATEGY

[[rule]]
id = "billing-sees-codes-and-amounts"
effect = "allow"
actions = ["masking.visit.read"]
roles = ["billing"]
reveal = ["account"]

[[rule]]
id = "providers-see-the-chart"
effect = "allow"
actions = ["masking.visit.read"]
roles = ["provider"]
reveal = ["*"]

[[rule]]
id = "front-desk-sees-contact"
effect = "allow"
actions = ["masking.visit.read"]
roles = ["front_desk"]
reveal = ["name", "phone"]
"#;

#[derive(Phi, Debug, Clone, PartialEq)]
struct VisitRecord {
    visit_id: u64,
    cpt: String,
    icd10: Vec<String>,
    amount_cents: u64,
    #[phi(name)]
    patient: String,
    #[phi(ssn)]
    ssn: String,
    #[phi(phone)]
    phone: String,
    #[phi(account)]
    account: String,
    #[phi(date)]
    seen: String,
    #[phi(note)]
    note: String,
    #[phi(diagnosis)]
    diagnosis: String,
}

fn raw_visit() -> VisitRecord {
    VisitRecord {
        visit_id: 41,
        cpt: "99214".into(),
        icd10: vec!["E11.9".into(), "I10".into()],
        amount_cents: 18_450,
        patient: "Ada Lovelace".into(),
        ssn: "123-45-6789".into(),
        phone: "(617) 555-0142".into(),
        account: "ACCT-0042-7781".into(),
        seen: "03/14/2026".into(),
        note: "Ada reports polyuria; daughter Grace can be reached at 617-555-0199.".into(),
        diagnosis: "Type 2 diabetes mellitus without complications".into(),
    }
}

#[phi_action(kind = "read", roles = ["billing", "provider", "front_desk"], name = "masking.visit.read")]
fn read_visit(ctx: &Context) -> Result<VisitRecord, GuardError> {
    // The body works with raw data; only what leaves is masked.
    let v = raw_visit();
    assert_eq!(v.ssn, "123-45-6789");
    Ok(v)
}

fn guardrail(note_strategy: &str) -> Guardrail {
    let policy = POLICY.replace("NOTE_STRATEGY", &format!("note = \"{note_strategy}\""));
    Guardrail::builder()
        .policy(Policy::from_toml_str(&policy).expect("the test policy loads"))
        .audit(MemorySink::new())
        .audit_key(key(5))
        .build()
        .expect("guardrail builds")
}

fn read_as(g: &Guardrail, role: &str) -> VisitRecord {
    read_visit(&g.context(Principal::new(format!("{role}-1")).role(role))).expect("allowed")
}

#[test]
fn billing_clerk_sees_codes_and_amounts_not_the_clinical_note() {
    let g = guardrail("redact");
    let v = read_as(&g, "billing");
    let raw = raw_visit();
    // What billing needs.
    assert_eq!(
        (v.visit_id, &v.cpt, &v.icd10, v.amount_cents),
        (41, &raw.cpt, &raw.icd10, 18_450)
    );
    assert_eq!(v.account, raw.account, "account is revealed to billing");
    // What it does not.
    assert_eq!(v.note, "[REDACTED]");
    assert_eq!(v.diagnosis, "[REDACTED]");
    assert_eq!(v.patient, "[REDACTED]");
    assert_eq!(v.ssn, "***-**-6789");
    assert_eq!(v.phone, "(***) ***-0142");
    assert_eq!(v.seen, "2026");
    let shown = format!("{v:?}");
    for secret in [
        "Ada", "Lovelace", "polyuria", "diabetes", "123-45", "555-0199", "03/14",
    ] {
        assert!(!shown.contains(secret), "{secret} reached billing: {shown}");
    }
}

#[test]
fn provider_with_reveal_all_sees_everything() {
    let g = guardrail("redact");
    assert_eq!(read_as(&g, "provider"), raw_visit());
}

#[test]
fn front_desk_sees_exactly_its_reveal_list() {
    let g = guardrail("scan");
    let v = read_as(&g, "front_desk");
    assert_eq!(v.patient, "Ada Lovelace");
    assert_eq!(v.phone, "(617) 555-0142");
    assert_eq!(v.account, "****-****-7781", "account is partial by default");
    // `note = "scan"`: the note is readable with its identifiers masked.
    assert_eq!(
        v.note,
        "Ada reports polyuria; daughter Grace can be reached at [PHONE]."
    );
    assert_eq!(v.ssn, "***-**-6789");
}
