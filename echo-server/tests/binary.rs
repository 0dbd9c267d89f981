//! Runs the real `echo-server` binary: it logs where it listens and each
//! request, and exits 0 on SIGTERM and on SIGINT (Ctrl-C).
#![cfg(unix)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

type TestResult = Result<(), Box<dyn std::error::Error + Send + Sync>>;

const TIMEOUT: Duration = Duration::from_secs(15);

struct Running {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Running {
    fn start() -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_echo-server"))
            .args(["--bind", "127.0.0.1:0"])
            .env("RUST_LOG", "info")
            .env_remove("ECHO_SERVER_BIND")
            .env_remove("ECHO_SERVER_ALLOWED_HOSTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Self { child, lines, seen: Vec::new() })
    }

    /// Waits for a log line containing `needle` and returns it.
    fn wait_for(&mut self, needle: &str) -> Result<String, String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if line.contains(needle) {
                        return Ok(line);
                    }
                }
                Err(_) => {
                    return Err(format!("no log line with {needle:?}; saw: {:#?}", self.seen));
                }
            }
        }
    }

    fn signal(&self, signal: libc::c_int) -> Result<(), String> {
        let pid = libc::pid_t::try_from(self.child.id()).map_err(|e| e.to_string())?;
        // SAFETY: kill(2) with a pid this test spawned and still owns.
        let rc = unsafe { libc::kill(pid, signal) };
        if rc == 0 {
            Ok(())
        } else {
            Err(format!("kill failed: {}", std::io::Error::last_os_error()))
        }
    }

    fn wait_exit(&mut self) -> Result<std::process::ExitStatus, String> {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err("server did not exit after the signal".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn listening_url(line: &str) -> Result<String, String> {
    line.split_whitespace()
        .find(|w| w.starts_with("http://"))
        .map(str::to_owned)
        .ok_or_else(|| format!("no URL in {line:?}"))
}

async fn exits_cleanly_on(signal: libc::c_int) -> TestResult {
    let mut server = Running::start()?;
    let line = server.wait_for("listening on")?;
    let url = listening_url(&line)?;
    assert!(url.starts_with("http://127.0.0.1:") && url.ends_with("/mcp"), "{url}");

    let response = reqwest::Client::new()
        .post(&url)
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .body(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#)
        .timeout(TIMEOUT)
        .send()
        .await?;
    assert_eq!(response.status().as_u16(), 200);
    drop(response);

    // One log line per request, with method, path, status and latency.
    let logged = server.wait_for("finished processing request")?;
    for part in ["latency=", "status=200", "POST", "/mcp"] {
        let in_line = logged.contains(part);
        let in_span = server.seen.iter().any(|l| l.contains(part));
        assert!(in_line || in_span, "{part:?} not logged: {:#?}", server.seen);
    }

    server.signal(signal)?;
    let status = server.wait_exit()?;
    assert!(status.success(), "exit status {status:?}; log: {:#?}", server.seen);
    server.wait_for("stopped")?;
    Ok(())
}

#[tokio::test]
async fn sigterm_exits_zero() -> TestResult {
    exits_cleanly_on(libc::SIGTERM).await
}

#[tokio::test]
async fn sigint_exits_zero() -> TestResult {
    exits_cleanly_on(libc::SIGINT).await
}

#[test]
fn bad_bind_address_exits_two() -> TestResult {
    let output = Command::new(env!("CARGO_BIN_EXE_echo-server"))
        .args(["--bind", "not-an-address"])
        .output()?;
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid listen address"), "{stderr}");
    Ok(())
}

#[test]
fn help_exits_zero() -> TestResult {
    let output = Command::new(env!("CARGO_BIN_EXE_echo-server")).arg("--help").output()?;
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("--allowed-host") && stdout.contains("ECHO_SERVER_BIND"), "{stdout}");
    Ok(())
}
