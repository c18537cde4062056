//! `spillway demo` as a newcomer runs it, scaled down: it must sell exactly the stock, oversell nothing,
//! give nobody two items, write the report, and exit cleanly.
#![allow(clippy::unwrap_used)]

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_spillway");

#[test]
fn a_small_demo_sells_exactly_its_stock_and_writes_the_report() {
    let out = tempfile::tempdir().unwrap();
    let run = Command::new(BIN)
        .args(["demo", "--users", "300", "--items", "30", "--line-seconds", "2", "--out"])
        .arg(out.path())
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(run.status.success(), "exit {:?}\n{stdout}\n{}", run.status, String::from_utf8_lossy(&run.stderr));
    assert!(stdout.contains("OK: 30 of 30 items sold, 0 oversold, 0 duplicate users"), "{stdout}");
    assert!(stdout.contains("the room admitted 300 users"), "{stdout}");
    let html = std::fs::read_to_string(out.path().join("report.html")).unwrap();
    assert!(html.starts_with("<!doctype html>") || html.starts_with("<!DOCTYPE html>"), "an HTML page");
    assert!(html.contains("<svg"), "with its charts");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(json["surge"]["claims"]["confirmed"], 30);
    assert_eq!(json["surge"]["claims"]["oversold"], 0);
}

#[test]
fn bad_options_are_named() {
    let run = Command::new(BIN).args(["demo", "--users", "0"]).output().unwrap();
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr).contains("--users"));
}
