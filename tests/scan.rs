//! Known answers of `coverage::scan_sources` over `tests/fixtures/unguarded-host`: every
//! `leak_*` function (and the PHI closure of `router`) is reported, no `ok_*` look-alike is.
#![allow(
    clippy::panic,
    reason = "test helpers fail the calling test loudly on an unexpected error"
)]

use std::path::{Path, PathBuf};

use guardrail_core::coverage::{ScanError, scan_sources};
use guardrail_core::{Category, Policy};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/unguarded-host")
}

fn fixture_policy() -> Policy {
    match Policy::from_path(fixture().join("policy.toml")) {
        Ok(p) => p,
        Err(e) => panic!("fixture policy: {e}"),
    }
}

const EXPECTED: &[&str] = &[
    "src/extra/legacy.rs:5: leak_in_path_module",
    "src/lib.rs:36: leak_nested_struct",
    "src/lib.rs:40: leak_renamed",
    "src/lib.rs:44: leak_alias",
    "src/lib.rs:48: leak_alias_of_alias",
    "src/lib.rs:53: Db::leak_trait_method",
    "src/lib.rs:59: Db::leak_inherent",
    "src/lib.rs:69: leak_async",
    "src/lib.rs:73: leak_sql_select",
    "src/lib.rs:77: leak_sql_update",
    "src/lib.rs:81: leak_sql_in_macro",
    "src/lib.rs:90: leak_calls_source",
    "src/lib.rs:94: leak_calls_source_method",
    "src/lib.rs:98: leak_json",
    "src/lib.rs:102: leak_option_vec",
    "src/lib.rs:106: leak_tuple",
    "src/lib.rs:110: leak_box",
    "src/lib.rs:114: leak_arc",
    "src/lib.rs:118: leak_reference",
    "src/lib.rs:122: leak_slice",
    "src/lib.rs:126: leak_result",
    "src/lib.rs:130: leak_phi_wrapper",
    "src/lib.rs:134: leak_impl_trait",
    "src/lib.rs:138: leak_crate_visible",
    "src/lib.rs:147: leak_private_helper",
    "src/main.rs:5: leak_in_bin",
    "src/model.rs:42: Chart::leak_self_new",
    "src/records/mod.rs:5: leak_in_mod_file",
    "src/web.rs:27: router::{closure}",
];

#[test]
fn fixture_findings_are_exactly_the_known_answers() {
    let report = match scan_sources(&fixture(), &fixture_policy()) {
        Ok(r) => r,
        Err(e) => panic!("scan: {e}"),
    };
    let got: Vec<String> = report
        .findings()
        .iter()
        .map(|f| format!("{}:{}: {}", f.file, f.line, f.function))
        .collect();
    assert_eq!(got, EXPECTED, "\n{report}");
    assert!(report.findings().iter().all(|f| !f.reasons.is_empty()));
    assert!(
        report
            .findings()
            .iter()
            .all(|f| !f.function.contains("ok_"))
    );
}

#[test]
fn reasons_name_the_type_the_table_and_the_source() {
    let report = scan_sources(&fixture(), &fixture_policy()).unwrap_or_default();
    let line = |name: &str| {
        report
            .findings()
            .iter()
            .find(|f| f.function == name)
            .map(ToString::to_string)
            .unwrap_or_default()
    };
    assert_eq!(
        line("leak_sql_update"),
        "src/lib.rs:77:8: leak_sql_update: SQL `update` on PHI table `patients` (diagnosis)"
    );
    assert_eq!(
        line("leak_sql_select"),
        "src/lib.rs:73:8: leak_sql_select: SQL `select` on PHI table `patients` (ssn, name)"
    );
    assert_eq!(
        line("leak_calls_source"),
        "src/lib.rs:90:8: leak_calls_source: calls `#[phi_source]` `load_chart_row`"
    );
    assert_eq!(
        line("leak_phi_wrapper"),
        "src/lib.rs:130:8: leak_phi_wrapper: takes PHI type `Phi<..>`"
    );
    assert_eq!(
        line("leak_nested_struct"),
        "src/lib.rs:36:8: leak_nested_struct: takes PHI type `Note`"
    );
}

#[test]
fn exemptions_are_listed_with_their_reason() {
    let report = scan_sources(&fixture(), &fixture_policy()).unwrap_or_default();
    let exempt: Vec<(String, String)> = report
        .exemptions()
        .iter()
        .map(|e| (e.function.clone(), e.reason.clone()))
        .collect();
    assert_eq!(
        exempt,
        [(
            "ok_exempt".to_owned(),
            "counts charts, no identifier leaves".to_owned()
        )]
    );
    assert_eq!(report.guarded_count(), 2);
}

#[test]
fn without_a_schema_sql_is_not_checked() {
    let policy = Policy::from_toml_str("version = \"1\"\n").unwrap_or_else(|e| panic!("{e}"));
    let report = scan_sources(&fixture(), &policy).unwrap_or_default();
    let names: Vec<&str> = report
        .findings()
        .iter()
        .map(|f| f.function.as_str())
        .collect();
    assert!(!names.contains(&"leak_sql_select"));
    assert!(names.contains(&"leak_json"));
}

fn crate_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    for (path, text) in files {
        let p = dir.path().join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap_or_else(|e| panic!("{e}"));
        }
        std::fs::write(p, text).unwrap_or_else(|e| panic!("{e}"));
    }
    dir
}

#[test]
fn an_unparsable_file_is_an_error_naming_file_and_line() {
    let dir = crate_with(&[
        ("src/lib.rs", "mod broken;\npub fn fine() {}\n"),
        ("src/broken.rs", "pub fn ok() {}\n\npub fn oops( {\n"),
    ]);
    let policy = fixture_policy();
    match scan_sources(dir.path(), &policy) {
        Err(e @ ScanError::Parse { .. }) => {
            let text = e.to_string();
            assert!(text.starts_with("src/broken.rs:3:"), "{text}");
        }
        other => panic!("expected a parse error, got {other:?}"),
    }
}

#[test]
fn a_missing_module_file_is_an_error() {
    let dir = crate_with(&[("src/lib.rs", "\nmod gone;\n")]);
    let err = scan_sources(dir.path(), &fixture_policy())
        .err()
        .map(|e| e.to_string());
    assert_eq!(
        err.as_deref(),
        Some("src/lib.rs:2: module `gone` has no file (tried src/gone.rs, src/gone/mod.rs)")
    );
    let empty = crate_with(&[("Cargo.toml", "")]);
    assert!(matches!(
        scan_sources(empty.path(), &fixture_policy()),
        Err(ScanError::NoRoot { .. })
    ));
}

#[test]
fn the_scan_never_panics_on_odd_input() {
    // Import cycles, alias cycles, self-referential globs, recursive modules via #[path].
    let dir = crate_with(&[(
        "src/lib.rs",
        r#"
        pub mod a { pub use super::b::*; pub use super::b::X as Y; }
        pub mod b { pub use super::a::*; pub use super::a::Y as X; }
        type L = M; type M = L;
        pub fn f(x: L, y: a::Y, z: Self) -> <T as Tr>::Out { "SELECT" ; "select ssn from" ; "" }
        #[path = "lib.rs"] mod again;
        "#,
    )]);
    let report = scan_sources(dir.path(), &fixture_policy());
    assert!(report.is_ok(), "{report:?}");
}

#[test]
fn the_schema_section_is_parsed_and_checked() {
    let policy = fixture_policy();
    let schema = policy.schema();
    assert!(schema.is_phi_table("PATIENTS"));
    assert_eq!(schema.column("patients", "SSN"), Some(Category::Ssn));
    assert_eq!(
        schema.column("lab_results", "value"),
        Some(Category::LabResult)
    );
    assert_eq!(
        schema.tables().collect::<Vec<_>>(),
        ["lab_results", "patients"]
    );

    let err = |text: &str| Policy::from_toml_str(text).err().map(|e| e.to_string());
    let unknown = err("version = \"1\"\n[schema.patients]\nssn = \"social\"\n").unwrap_or_default();
    assert!(
        unknown.contains("3:7") && unknown.contains("unknown PHI category `social`"),
        "{unknown}"
    );
    let bad_table =
        err("version = \"1\"\n[schema.\"pat ients\"]\nssn = \"ssn\"\n").unwrap_or_default();
    assert!(
        bad_table.contains("is not an SQL identifier"),
        "{bad_table}"
    );
    let not_string = err("version = \"1\"\n[schema.patients]\nssn = 3\n").unwrap_or_default();
    assert!(not_string.contains("expected a string"), "{not_string}");
    let empty = err("version = \"1\"\n[schema.patients]\n").unwrap_or_default();
    assert!(empty.contains("lists no column"), "{empty}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Any text as `src/lib.rs`: a report or an error, never a panic.
    #[test]
    fn any_source_text_is_a_report_or_an_error(
        text in "(?s)(pub fn f|mod m|use a::b|type T =|#\\[derive\\(Phi\\)\\]|struct S|[{}()<>;:,&\\[\\]]|\"SELECT ssn FROM patients\"|[ a-z\n]){0,40}"
    ) {
        let dir = crate_with(&[("src/lib.rs", text.as_str())]);
        match scan_sources(dir.path(), &fixture_policy()) {
            Ok(_) | Err(ScanError::Parse { .. } | ScanError::ModuleNotFound { .. }) => {}
            Err(other) => proptest::prop_assert!(false, "unexpected error: {other}"),
        }
    }
}

#[test]
fn deeply_nested_source_does_not_overflow() {
    let depth = 5_000;
    let body = format!("{}1{}", "(".repeat(depth), ")".repeat(depth));
    let dir = crate_with(&[("src/lib.rs", &format!("pub fn f() -> u8 {{ {body} }}\n"))]);
    let report = scan_sources(dir.path(), &fixture_policy()).expect("a deep body still scans");
    // `f` touches no PHI: scanned, and not reported.
    assert!(report.findings().is_empty(), "{report}");
}
