//! `spillway spike` as a user runs it: flags or a scenario file, reports written, exit codes.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use serde_json::Value;
use spillway_testkit::Origin;

const BIN: &str = env!("CARGO_BIN_EXE_spillway");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flags_run_a_loop_and_write_both_reports() {
    let origin = Origin::start("hello").await;
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("report");
    let url = format!("http://{}/", origin.addr);
    let run = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["spike", "--url", &url, "--burst", "10", "--requests-per-user", "5", "--connections", "4"])
            .args(["--retry", "backoff:3:10ms", "--header", "x-test: 1", "--quiet", "--out"])
            .arg(&out)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let stdout = String::from_utf8_lossy(&run.stdout);
    assert!(stdout.contains("10 users (0 unfinished)") && stdout.contains("50 requests"), "{stdout}");
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("report/report.json")).unwrap()).unwrap();
    assert_eq!(json["requests"]["by_status"]["200"], 50);
    assert!(std::fs::read_to_string(dir.path().join("report/report.html")).unwrap().contains("<svg id=\"timeline\""));
}

#[test]
fn a_bad_scenario_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, "[arrival]\nkind = \"ramp\"\nfrom = 0\nto = 10\nover = \"10s\"\n[journey]\nkind = \"requests\"\nurl = \"http://127.0.0.1:1/\"\nmethdo = \"GET\"\n").unwrap();
    let out = Command::new(BIN).args(["spike", "--scenario"]).arg(&path).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("journey.methdo: unknown key"), "{stderr}");

    let out = Command::new(BIN).args(["spike", "--url", "http://192.0.2.1/", "--burst", "1"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("journey.url: 192.0.2.1 is not a loopback address"));
}
