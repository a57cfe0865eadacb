//! `guardrail scan`: output lines, sorting and exit status over the fixture host crate.
#![allow(
    clippy::panic,
    reason = "test helpers fail the calling test loudly on an unexpected error"
)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/unguarded-host")
}

fn run(args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_guardrail"))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run guardrail: {e}"));
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn findings_exit_1_with_one_sorted_line_each() {
    let dir = fixture();
    let policy = dir.join("policy.toml");
    let (code, stdout, _) = run(&[
        "scan".as_ref(),
        dir.as_os_str(),
        "--policy".as_ref(),
        policy.as_os_str(),
    ]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 29, "{stdout}");
    assert!(lines.contains(
        &"src/lib.rs:77:8: leak_sql_update: SQL `update` on PHI table `patients` (diagnosis)"
    ));
    assert_eq!(
        lines.first(),
        Some(&"src/extra/legacy.rs:5:8: leak_in_path_module: takes PHI type `Chart`")
    );
    let mut sorted = lines.clone();
    sorted.sort_by_key(|l| {
        let mut parts = l.splitn(3, ':');
        let file = parts.next().unwrap_or("").to_owned();
        let line: usize = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        (file, line)
    });
    assert_eq!(lines, sorted);
}

#[test]
fn a_clean_crate_exits_0_and_an_error_exits_2() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    std::fs::create_dir_all(dir.path().join("src")).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(dir.path().join("src/lib.rs"), "pub fn f() {}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, stdout, _) = run(&["scan".as_ref(), dir.path().as_os_str()]);
    assert_eq!((code, stdout.as_str()), (0, ""));

    std::fs::write(dir.path().join("src/lib.rs"), "pub fn f( {}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let (code, _, stderr) = run(&["scan".as_ref(), dir.path().as_os_str()]);
    assert_eq!(code, 2);
    assert!(stderr.contains("src/lib.rs:1:"), "{stderr}");
}
