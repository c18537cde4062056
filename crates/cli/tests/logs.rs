//! Text logs are for people: coloured at a terminal, plain anywhere else. A log written to a file or a pipe
//! must carry no escape codes.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use spillway_testkit::Conf;

const BIN: &str = env!("CARGO_BIN_EXE_spillway");

#[test]
fn text_logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("spillway.toml");
    Conf::new().raw("[log]\nformat = \"text\"").upstream("origin", "127.0.0.1:9").route("/", "origin").write(&config);
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
        let done = line.contains("listening");
        seen.push(line);
        if done {
            break;
        }
    }
    child.kill().unwrap();
    let _ = child.wait();
    assert!(seen.iter().any(|l| l.contains("listening")), "the server never said it was listening: {seen:?}");
    assert!(seen.iter().all(|l| !l.contains('\u{1b}')), "escape codes in a piped log: {seen:?}");
}
