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

/// A `spillway` child process (`serve`, `origin`), with its JSON log lines readable as events.
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
        let config = config.to_str().unwrap();
        let (mut s, listening) = Self::start(bin, &["serve", "--config", config], "listening").await;
        s.public = listening["public"].as_str().unwrap().parse().unwrap();
        s.admin = listening["admin"].as_str().unwrap().parse().unwrap();
        s
    }

    /// Starts `bin origin --listen 127.0.0.1:0 --log-format json ARGS...`; `public` is where it listens.
    pub async fn origin(bin: &str, args: &[&str]) -> Self {
        let mut all = vec!["origin", "--listen", "127.0.0.1:0", "--log-format", "json"];
        all.extend_from_slice(args);
        let (mut s, listening) = Self::start(bin, &all, "sample origin listening").await;
        s.public = listening["listen"].as_str().unwrap().parse().unwrap();
        s
    }

    /// Starts `bin ARGS...` (logging JSON) and waits for the log event `ready`, which it returns.
    pub async fn start(bin: &str, args: &[&str], ready: &str) -> (Self, Value) {
        let mut child = Command::new(bin)
            .args(args)
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
        let event = s.log(ready).await;
        (s, event)
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
