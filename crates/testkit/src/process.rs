//! The real `spillway` binary as a child process, for tests that need signals, restarts or SIGKILL.
#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;

/// A safety net so a broken build fails instead of hanging; events, not this, decide when to go on.
const PATIENCE: Duration = Duration::from_secs(60);

/// A `spillway serve` child process, with its JSON log lines readable as events.
#[derive(Debug)]
pub struct Spillway {
    pub child: Child,
    logs: mpsc::UnboundedReceiver<Value>,
    pub public: SocketAddr,
    pub admin: SocketAddr,
}

impl Spillway {
    /// Starts `bin serve --config config` (the config must log JSON) and waits until it listens.
    pub async fn serve(bin: &str, config: &Path) -> Self {
        let mut child = Command::new(bin)
            .args(["serve", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, logs) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => drop(tx.send(v)),
                    Err(_) => panic!("non-JSON log line: {line}"),
                }
            }
        });
        let mut s = Self { child, logs, public: ([0, 0, 0, 0], 0).into(), admin: ([0, 0, 0, 0], 0).into() };
        let listening = s.log("listening").await;
        s.public = listening["public"].as_str().unwrap().parse().unwrap();
        s.admin = listening["admin"].as_str().unwrap().parse().unwrap();
        s
    }

    /// Waits for the next log event with this message.
    pub async fn log(&mut self, message: &str) -> Value {
        loop {
            let event = tokio::time::timeout(PATIENCE, self.logs.recv())
                .await
                .unwrap_or_else(|_| panic!("no {message:?} log within {PATIENCE:?}"))
                .unwrap_or_else(|| panic!("spillway exited before logging {message:?}"));
            if event["message"] == message {
                return event;
            }
        }
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Peak resident memory so far, from the kernel's own accounting.
    pub fn peak_rss_bytes(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let kb = status.lines().find_map(|l| l.strip_prefix("VmHWM:")).unwrap();
        kb.trim().trim_end_matches("kB").trim().parse::<u64>().unwrap() * 1024
    }

    /// SIGKILL: no drain, no flush, no destructor; what a power cut looks like to the process.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn wait(mut self) -> std::process::ExitStatus {
        self.child.wait().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.public)
    }
}

/// Ends the process however the test ended, so no server outlives its test.
impl Drop for Spillway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
