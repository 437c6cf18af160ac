//! The `sse-bridge` binary as a child process: start, wait until healthy,
//! kill (on drop too).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free loopback port.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// A child process, SIGKILLed on drop; its output goes to `log`.
pub struct ChildProcess {
    child: Option<Child>,
    pub log: std::path::PathBuf,
}

impl ChildProcess {
    pub fn spawn(program: &Path, args: &[&str], envs: &[(&str, &str)], name: &str) -> Self {
        let log = std::env::temp_dir().join(format!("{name}-{}.log", uuid::Uuid::new_v4()));
        let out = std::fs::File::create(&log).expect("log file");
        let child = Command::new(program)
            .args(args)
            .envs(envs.iter().copied())
            .env(
                "RUST_LOG",
                std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawning {}: {e}", program.display()));
        ChildProcess {
            child: Some(child),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// SIGKILL: a crash, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then the exit status within `limit`.
    pub fn terminate(&mut self, limit: Duration) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().expect("wait") {
                return status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "process did not exit within {limit:?} after SIGTERM; log: {}",
                    self.output()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Waits until `GET {url}/healthz` answers 200.
pub async fn wait_healthy(url: &str, process: &ChildProcess, limit: Duration) {
    let client = crate::sse::client_builder()
        .build()
        .expect("a plain HTTP client always builds");
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(response) = client.get(format!("{url}/healthz")).send().await
            && response.status() == 200
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "gateway not healthy within {limit:?}; log:\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `sse-bridge serve --listen <free port> <args>`, once healthy, and its URL.
pub async fn spawn_gateway(bin: &Path, args: &[&str], name: &str) -> (ChildProcess, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let mut all = vec!["serve", "--listen", &listen];
    all.extend(args);
    let process = ChildProcess::spawn(bin, &all, &[], name);
    let url = format!("http://{listen}");
    wait_healthy(&url, &process, Duration::from_secs(20)).await;
    (process, url)
}

/// How a command run to its end ended.
pub struct Finished {
    pub status: std::process::ExitStatus,
    /// Its stdout, then its stderr.
    pub report: String,
}

/// Runs `command` (stdin closed, output captured) to its end; panics naming
/// `what` if it takes longer than `limit` (it is killed then).
pub async fn run_to_end(
    mut command: tokio::process::Command,
    limit: Duration,
    what: &str,
) -> Finished {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{what} did not finish within {limit:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    Finished {
        status: out.status,
        report: format!(
            "{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}
