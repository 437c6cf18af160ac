//! HTTPS and HTTP/2 on the binary, with curl and reqwest as clients: a
//! private CA made by `openssl`, the gateway with `--tls-cert/--tls-key`.
//!
//! * Over TLS, ALPN gives HTTP/2 (`curl --http2`; reqwest, several
//!   sessions at once on one connection) and HTTP/1.1 still works;
//!   the plain port speaks HTTP/2 to a client with prior knowledge (h2c)
//!   and HTTP/1.1 to everyone else. A whole session streams on each.
//! * A client that resets its HTTP/2 stream mid-session is a disconnect:
//!   the worker is cancelled like after a dropped HTTP/1.1 connection.
//! * SIGHUP reloads the certificate: new handshakes get the new one, and a
//!   stream opened before the reload completes.
//! * Real Chromium over HTTPS: one page streams 10 sessions at once, all on
//!   HTTP/2 (`tests/interop/https.test.mjs`; needs
//!   `npm ci --prefix tests/interop` and Debian's `chromium`, as `.ci/run`
//!   installs).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use sse_bridge_testkit::process::{ChildProcess, free_port, run_to_end, wait_healthy};

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

const SESSION: &str = r#"{"user_query":"What is 2+3?"}"#;

/// A private CA and a certificate for `localhost` / 127.0.0.1 it signed.
struct Certificates {
    dir: PathBuf,
}

impl Certificates {
    fn new(name: &str) -> Self {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a directory for the certificates");
        let certificates = Certificates { dir };
        certificates.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=sse-bridge test CA",
        ]);
        certificates.issue("first");
        certificates
    }

    /// Issues a new server certificate (`cert.pem`, `key.pem`) named `cn`.
    fn issue(&self, cn: &str) {
        std::fs::write(
            self.dir.join("ext.cnf"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
        )
        .expect("the extensions file");
        self.openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "server.csr",
            "-subj",
            &format!("/CN={cn}"),
        ]);
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ]);
    }

    fn openssl(&self, args: &[&str]) {
        let status = Command::new("openssl")
            .args(args)
            .current_dir(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("openssl is installed (.ci/run installs it)");
        assert!(status.success(), "openssl {args:?} failed");
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The gateway (embedded broker, demo agent) with `extra` flags, started on
/// a free port: the process, its port and its listen address.
fn spawn_gateway(extra: &[&str]) -> (ChildProcess, u16, String) {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args = vec!["serve", "--listen", &listen];
    args.extend(extra);
    (
        ChildProcess::spawn(bin(), &args, &[], "gateway"),
        port,
        listen,
    )
}

/// A plain gateway, once it answers.
async fn gateway(extra: &[&str]) -> (ChildProcess, u16) {
    let (process, port, listen) = spawn_gateway(extra);
    wait_healthy(
        &format!("http://{listen}"),
        &process,
        Duration::from_secs(20),
    )
    .await;
    (process, port)
}

/// A gateway serving HTTPS with `certificates`' `cert.pem` and `key.pem`
/// (the demo agent pausing `demo_delay` per piece), once it listens.
async fn tls_gateway(certificates: &Certificates, demo_delay: &str) -> (ChildProcess, u16) {
    let (cert, key) = (certificates.path("cert.pem"), certificates.path("key.pem"));
    let (process, port, listen) = spawn_gateway(&[
        "--tls-cert",
        &cert,
        "--tls-key",
        &key,
        "--demo-delay",
        demo_delay,
    ]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(&listen).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "gateway did not listen:\n{}",
            process.output()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (process, port)
}

/// Runs curl; returns its stdout (the body, then `HTTP <version>`).
fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--max-time",
            "30",
            "-w",
            "\nHTTP %{http_version}",
        ])
        .args(args)
        .output()
        .expect("curl is installed (.ci/run installs it)");
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

/// A whole demo session streamed by curl with `options` to `url`.
fn streams_a_session(options: &[&str], url: &str, version: &str) {
    let mut args = options.to_vec();
    args.extend([
        "-X",
        "POST",
        "-H",
        "content-type: application/json",
        "-d",
        SESSION,
    ]);
    let endpoint = format!("{url}/v1/react/sessions");
    args.push(&endpoint);
    let out = curl(&args);
    assert!(
        out.ends_with(&format!("HTTP {version}")),
        "{options:?}: {out}"
    );
    assert!(
        out.starts_with("data: {\"event_type\":\"worker_ack\""),
        "{options:?}: {out}"
    );
    assert!(
        out.contains("{\"event_type\":\"FinalAnswerStreamEnd\",\"payload\":{}}"),
        "{options:?}: {out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_speaks_http2_and_http1_and_the_plain_port_speaks_h2c() {
    let certificates = Certificates::new("protocols");
    let ca = certificates.path("ca.pem");
    let (_tls_gateway, tls_port) = tls_gateway(&certificates, "1ms").await;
    let https = format!("https://localhost:{tls_port}");
    streams_a_session(&["--http2", "--cacert", &ca], &https, "2");
    streams_a_session(&["--http1.1", "--cacert", &ca], &https, "1.1");
    // The CA is what makes it trusted: without it the handshake fails.
    let untrusted = Command::new("curl")
        .args(["-sS", "--max-time", "10", &format!("{https}/healthz")])
        .output()
        .expect("curl");
    assert!(!untrusted.status.success());

    let (_plain_gateway, plain_port) = gateway(&["--demo-delay", "1ms"]).await;
    let http = format!("http://127.0.0.1:{plain_port}");
    streams_a_session(&["--http2-prior-knowledge"], &http, "2");
    streams_a_session(&["--http1.1"], &http, "1.1");
}

/// reqwest trusting only `certificates`' CA, offering `h2` and
/// `http/1.1` by ALPN.
fn https_client(certificates: &Certificates) -> reqwest::Client {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for ca in CertificateDer::pem_file_iter(certificates.path("ca.pem")).expect("ca.pem") {
        roots
            .add(ca.expect("a PEM certificate"))
            .expect("a CA certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    sse_bridge_testkit::sse::client_builder()
        .tls_backend_preconfigured(tls)
        .build()
        .expect("a reqwest client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reqwest_streams_sessions_over_https_with_http2() {
    let certificates = Certificates::new("reqwest");
    let (_gateway, port) = tls_gateway(&certificates, "1ms").await;
    let client = https_client(&certificates);
    let url = format!("https://localhost:{port}/v1/react/sessions");
    let session = |_| {
        let (client, url) = (client.clone(), url.clone());
        async move {
            let response = client
                .post(url)
                .header("content-type", "application/json")
                .body(SESSION)
                .send()
                .await
                .expect("the session starts");
            assert_eq!(response.status(), 200);
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
            response.text().await.expect("the stream completes")
        }
    };
    let streams = futures::future::join_all((0..8).map(session)).await;
    for stream in streams {
        assert!(
            stream.starts_with("data: {\"event_type\":\"worker_ack\""),
            "{stream}"
        );
        assert!(
            stream.ends_with("data: {\"event_type\":\"FinalAnswerStreamEnd\",\"payload\":{}}\n\n"),
            "{stream}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reset_http2_stream_cancels_the_worker_like_a_dropped_connection() {
    let (_gateway, port) = gateway(&["--demo-delay", "50ms", "--cancel-grace", "0s"]).await;
    let base = format!("http://127.0.0.1:{port}");
    let cancels = || {
        let metrics = curl(&[&format!("{base}/metrics")]);
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "sse_bridge_cancels_published_total{reason=\"client_disconnected\"} ",
                )
            })
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let before = cancels();
    // curl gives up after 1 s mid-session: over HTTP/2 that resets the
    // stream (RST_STREAM) while the connection itself stays healthy.
    let cut = Command::new("curl")
        .args([
            "-sS",
            "-N",
            "--http2-prior-knowledge",
            "--max-time",
            "1",
            "-X",
            "POST",
        ])
        .args(["-H", "content-type: application/json", "-d", SESSION])
        .arg(format!("{base}/v1/react/sessions"))
        .output()
        .expect("curl");
    assert_eq!(cut.status.code(), Some(28), "curl timed out mid-stream");
    assert!(String::from_utf8_lossy(&cut.stdout).contains("worker_ack"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while cancels() < before + 1.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no cancel after the stream was reset"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_certificate_and_live_streams_go_on() {
    let certificates = Certificates::new("reload");
    let ca = certificates.path("ca.pem");
    let (gateway, port) = tls_gateway(&certificates, "30ms").await;
    let https = format!("https://localhost:{port}");
    let subject = || {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "openssl s_client -connect 127.0.0.1:{port} -servername localhost </dev/null 2>/dev/null | openssl x509 -noout -subject"
            ))
            .output()
            .expect("openssl s_client");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert!(subject().contains("CN = first"), "{}", subject());

    // A session of ~3 s, over HTTP/2, opened before the reload.
    let live = {
        let (ca, https) = (ca.clone(), https.clone());
        std::thread::spawn(move || {
            let endpoint = format!("{https}/v1/react/sessions");
            curl(&[
                "--http2",
                "--cacert",
                &ca,
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                SESSION,
                &endpoint,
            ])
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    certificates.issue("second");
    let hup = Command::new("kill")
        .args(["-HUP", &gateway.pid().to_string()])
        .status()
        .expect("kill");
    assert!(hup.success());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !subject().contains("CN = second") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "still {}",
            subject()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let out = live.join().expect("the live session's curl");
    assert!(
        out.contains("FinalAnswerStreamEnd") && out.ends_with("HTTP 2"),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_streams_ten_sessions_at_once_over_http2() {
    let certificates = Certificates::new("chromium");
    let (gateway, port) = tls_gateway(&certificates, "20ms").await;
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut node = tokio::process::Command::new("node");
    node.args([
        "--test",
        "--test-reporter=spec",
        "tests/interop/https.test.mjs",
    ])
    .current_dir(&workspace)
    .env("SSE_BRIDGE_HTTPS_URL", format!("https://localhost:{port}"));
    let out = run_to_end(node, Duration::from_secs(100), "`node --test` (Node 20+)").await;
    let report = out.report;
    assert!(
        out.status.success(),
        "{report}\ngateway:\n{}",
        gateway.output()
    );
}
