//! The `clinic-server` binary as a supervisor runs it: started with `--listen` and
//! `--data`, it serves; on SIGTERM it stops accepting, finishes, closes its trail with a
//! final checkpoint and exits 0, and the trail verifies whole.
#![cfg(unix)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn sigterm_stops_the_server_cleanly_and_its_trail_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_clinic-server"))
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(dir.path())
        .env_remove("DATABASE_URL")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in `{line}`"))
        .to_owned();

    let status = reqwest::blocking::Client::new()
        .get(format!("{url}/provider/patients/p-100/chart"))
        .bearer_auth("demo-dr-grey")
        .header("x-purpose-of-use", "treatment")
        .send()
        .unwrap()
        .status();
    assert_eq!(status, reqwest::StatusCode::OK);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server did not stop within 30 s of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    // Killed by the signal's default action, the exit has no code.
    assert_eq!(exit.code(), Some(0), "{exit:?}");

    let audit = dir.path().join("audit");
    let events = clinic_server::trail::verify(&audit).unwrap();
    assert_eq!(events, 2, "the read's decision and outcome");
    // The final checkpoint covers every event: nothing was left unsigned.
    let checkpoints =
        std::fs::read_to_string(clinic_server::trail::checkpoint_path(&audit)).unwrap();
    let last = checkpoints.lines().last().unwrap();
    assert!(last.contains("\"seq\":1"), "{last}");
}
