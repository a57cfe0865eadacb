//! The guided tour runs end to end against the clinic server over HTTP, its trails verify,
//! and the trail carries no raw PHI.

use clinic::demo;

#[test]
fn the_tour_runs_and_its_trails_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let summary = demo::run(dir.path(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(summary.verified, "{text}");
    assert_eq!(summary.allowed, 9, "{text}");
    assert_eq!(summary.denied, 11, "{text}");
    assert!(summary.events >= 20, "{text}");
    assert!(text.contains("file trail verified"), "{text}");
    // It went over HTTP: the requests and the server's answers are printed.
    assert!(
        text.contains("GET /provider/patients/p-100/chart  ->  200 OK"),
        "{text}"
    );
    assert!(
        text.contains(
            "GET /patient/patients/p-200/chart  ->  403 Forbidden denied (reason `not_own_subject`)"
        ),
        "{text}"
    );
    assert!(
        text.contains("->  422 Unprocessable Entity constraint"),
        "{text}"
    );
    assert!(
        text.contains("SQLite trail (outcomes written inside transactions) verified"),
        "{text}"
    );
    // Care teams: dr-hale treats neither patient; break-glass opens his emergency read.
    assert!(
        text.contains(
            "GET /provider/patients/p-100/chart  ->  403 Forbidden denied (reason `no_relationship`)"
        ),
        "{text}"
    );
    assert!(text.contains("relation=care_team"), "{text}");
    // Part 2: p-100 gave no consent, its program note stays masked; p-200's consent names
    // billing.
    assert!(text.contains("consent_missing=part2"), "{text}");
    assert!(!text.contains("Alcohol use disorder"), "{text}");
    assert!(text.contains("buprenorphine 8 mg daily"), "{text}");
    // Billing sees the code and amount, not the patient's name or the phone in the note.
    assert!(text.contains("icd10=E11.9 amount=18500"), "{text}");
    assert!(!text.contains("(415) 555-0142"), "{text}");
    assert!(text.contains("patient_name=\"[REDACTED]\""), "{text}");

    // No raw identifier of any patient reaches the durable trail.
    let trail = std::fs::read_dir(dir.path().join("audit"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap_or_default())
        .collect::<String>();
    for raw in [
        "p-100",
        "p-200",
        "Alice Moreno",
        "512-44-8231",
        "Bruno Okafor",
        "Type 2 diabetes",
        "555-0142",
        "MRN 0048213",
        "Alcohol use disorder",
        "buprenorphine",
    ] {
        assert!(!trail.contains(raw), "`{raw}` found in the audit trail");
    }
    assert!(trail.contains("hmac-sha256:"), "subjects are tokenized");
}

#[test]
fn tampering_with_the_tour_trail_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    demo::run(dir.path(), &mut Vec::new()).unwrap();
    let audit = dir.path().join("audit");
    assert!(clinic::trail::verify(&audit).is_ok());
    let file = std::fs::read_dir(&audit)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("audit-"))
        })
        .expect("a log file");
    let mut bytes = std::fs::read(&file).unwrap();
    let at = bytes.iter().position(|b| *b == b'\n').unwrap() + 40;
    bytes[at] ^= 0x01;
    std::fs::write(&file, bytes).unwrap();
    let err = clinic::trail::verify(&audit).unwrap_err();
    assert!(err.is_tampering(), "{err}");
    assert_eq!(err.seq(), Some(1), "{err}");
}
