//! The gateway behind nginx configured by `docs/nginx.conf` itself: the test
//! reads the documented file, changes only the gateway address and the
//! listen port, and runs Debian's nginx with it in front of a Redis-backed
//! gateway whose worker is the test. Through that configuration:
//!
//! * events reach the client one by one, unbuffered and uncompressed: each
//!   answer piece is published only once the previous one arrived, so a
//!   proxy that held bytes back would stall the test (even with gzip
//!   switched on for event streams globally, as a distribution's nginx.conf
//!   might);
//! * a follower that drops its connection is seen to leave by the gateway,
//!   and resumes with `Last-Event-ID` to exactly the events it missed — no
//!   gap, no duplicate — up to the terminal one, after which a resume
//!   answers `204`;
//! * request bodies up to the gateway's `--body-limit` pass, larger ones are
//!   refused by nginx.
//!
//! Needs `/usr/sbin/nginx` (Debian's `nginx` package, which `.ci/run`
//! installs) and the test Redis on 127.0.0.1:6379. nginx runs in the
//! foreground as a single process (nothing left behind when it is killed),
//! as whatever user runs the tests, with its pid, logs and temporary files in
//! a directory of its own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sse_bridge_core::SessionId;
use sse_bridge_redis::{RedisBus, RedisConfig};
use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};
use sse_bridge_testkit::redis::{REDIS_URL, TempKey, eventually, unique};
use sse_bridge_testkit::sse::{
    Frame, follow, read_all_frames, read_events, read_frames, read_rest,
};
use sse_bridge_worker::publish::Published;
use sse_bridge_worker::publish_event;

const NGINX: &str = "/usr/sbin/nginx";

/// The gateway's default `--body-limit`, which `client_max_body_size 64k`
/// in docs/nginx.conf matches.
const BODY_LIMIT: usize = 65536;

/// Every wait's bound.
const WAIT: Duration = Duration::from_secs(10);

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_sse-bridge"))
}

/// A client like the seed's browser page (a new connection per request)
/// that waits at most `WAIT` for any read: response headers held back by
/// nginx fail the request instead of hanging the test.
fn http_client() -> reqwest::Client {
    sse_bridge_testkit::sse::client_builder()
        .pool_max_idle_per_host(0)
        .read_timeout(WAIT)
        .build()
        .expect("a plain HTTP client always builds")
}

/// docs/nginx.conf, sending to the gateway at `gateway` and listening on
/// loopback `port`.
fn documented_config(gateway: &str, port: u16) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/nginx.conf");
    let documented = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let documented = replace_once(
        &documented,
        "server 127.0.0.1:8000;",
        &format!("server {gateway};"),
    );
    replace_once(
        &documented,
        "listen 80;",
        &format!("listen 127.0.0.1:{port};"),
    )
}

fn replace_once(text: &str, from: &str, to: &str) -> String {
    assert_eq!(
        text.matches(from).count(),
        1,
        "docs/nginx.conf must contain `{from}` exactly once: the test puts its own address there"
    );
    text.replacen(from, to, 1)
}

/// The main configuration around the documented file, as a distribution's
/// nginx.conf includes it from conf.d — except that everything nginx writes
/// stays in `dir`, and gzip is on for event streams globally, which the
/// documented file must undo.
fn main_config(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        "pid {dir}/nginx.pid;
error_log stderr notice;
events {{
    worker_connections 256;
}}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    gzip on;
    gzip_min_length 1;
    gzip_types text/event-stream application/json;
    include {dir}/sse-bridge.conf;
}}
"
    )
}

/// nginx serving docs/nginx.conf on a free loopback port, from a private
/// directory (configuration, pid, access log, temporary files) that is
/// removed on drop. Its error log is the process's output.
struct Nginx {
    process: ChildProcess,
    dir: PathBuf,
    url: String,
}

impl Nginx {
    async fn start(gateway: &str) -> Nginx {
        assert!(
            Path::new(NGINX).is_file(),
            "{NGINX} is missing: install Debian's nginx (`apt-get install nginx`; .ci/run does)"
        );
        let dir = std::env::temp_dir().join(unique("sse-bridge-nginx"));
        std::fs::create_dir(&dir).expect("creating nginx's directory in the temp dir");
        let port = free_port();
        std::fs::write(
            dir.join("sse-bridge.conf"),
            documented_config(gateway, port),
        )
        .expect("writing the documented configuration");
        let main = dir.join("nginx.conf");
        std::fs::write(&main, main_config(&dir)).expect("writing nginx.conf");

        let dir_arg = dir.to_str().expect("the temp dir's path is UTF-8");
        let main_arg = main.to_str().expect("the temp dir's path is UTF-8");
        // One foreground process: killing it leaves no worker behind.
        let args = [
            "-p",
            dir_arg,
            "-c",
            main_arg,
            "-e",
            "stderr",
            "-g",
            "daemon off; master_process off;",
        ];
        let check = Command::new(NGINX)
            .arg("-t")
            .args(args)
            .output()
            .expect("running nginx -t");
        assert!(
            check.status.success(),
            "nginx -t refuses the configuration made from docs/nginx.conf:\n{}",
            String::from_utf8_lossy(&check.stderr)
        );
        let process = ChildProcess::spawn(Path::new(NGINX), &args, &[], "nginx");
        let url = format!("http://127.0.0.1:{port}");
        // /healthz answers through nginx once nginx listens.
        wait_healthy(&url, &process, WAIT).await;
        Nginx { process, dir, url }
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        self.process.kill();
        // Best effort: a leftover directory in the temp dir is harmless.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis-backed gateway with no worker (the test plays the worker), nginx
/// in front of it, and the test's own link to the session logs. Dropped in
/// field order: nginx, gateway, Redis link, job stream.
struct Stack {
    nginx: Nginx,
    _gateway: ChildProcess,
    bus: RedisBus,
    _jobs: TempKey,
}

impl Stack {
    async fn start() -> Stack {
        let jobs = TempKey::new("sse_jobs_nginx");
        let group = unique("sse_workers_nginx");
        let listen = format!("127.0.0.1:{}", free_port());
        // The session outlives every wait of the test, so a stalled step
        // fails with its own message rather than as an ack_timeout.
        let args = [
            "serve",
            "--listen",
            &listen,
            "--ack-timeout",
            "30s",
            "--redis-url",
            REDIS_URL,
            "--redis-stream",
            &jobs,
            "--group",
            &group,
        ];
        let gateway = ChildProcess::spawn(bin(), &args, &[], "nginx-gateway");
        wait_healthy(
            &format!("http://{listen}"),
            &gateway,
            Duration::from_secs(20),
        )
        .await;
        let nginx = Nginx::start(&listen).await;
        let config = RedisConfig {
            client_name: unique("t-nginx"),
            ..RedisConfig::new(REDIS_URL)
        };
        let bus = RedisBus::connect(config)
            .await
            .expect("the test Redis on 127.0.0.1:6379");
        Stack {
            nginx,
            _gateway: gateway,
            bus,
            _jobs: jobs,
        }
    }

    fn url(&self) -> &str {
        &self.nginx.url
    }

    /// `POST /v1/react/sessions` with `body` through nginx, accepting gzip
    /// (which an event stream must not get).
    async fn post(&self, http: &reqwest::Client, body: String) -> reqwest::Response {
        http.post(format!("{}/v1/react/sessions", self.url()))
            .header("content-type", "application/json")
            .header("accept-encoding", "gzip")
            .body(body)
            .send()
            .await
            .expect("POST /v1/react/sessions through nginx, headers within WAIT")
    }

    /// Starts a session through nginx: its open event stream and its id.
    async fn start_session(&self, http: &reqwest::Client) -> (reqwest::Response, SessionId) {
        let response = self
            .post(http, json!({"user_query": "through nginx"}).to_string())
            .await;
        assert_eq!(response.status(), 200);
        let session = response.headers()["x-session-id"]
            .to_str()
            .expect("x-session-id is ASCII")
            .parse()
            .expect("x-session-id is a session id");
        (response, session)
    }

    /// Logs and publishes one event as the session's worker: the frame a
    /// follower gets for it.
    async fn publish(&self, session: SessionId, event_type: &str, payload: Value) -> Frame {
        let event = json!({"event_type": event_type, "payload": payload});
        match publish_event(&self.bus, session, None, event_type, payload).await {
            Ok(Published::Logged { id, .. }) => Frame {
                id: Some(id.to_string()),
                event,
            },
            other => panic!("publishing {event_type}: {other:?}"),
        }
    }
}

/// The gateway's `sse_bridge_followers_active` gauge, read through nginx.
async fn followers_active(http: &reqwest::Client, url: &str) -> f64 {
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("GET /metrics through nginx")
        .text()
        .await
        .expect("the /metrics body");
    metrics
        .lines()
        .find_map(|line| line.strip_prefix("sse_bridge_followers_active "))
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("no sse_bridge_followers_active in /metrics:\n{metrics}"))
}

#[tokio::test]
async fn events_pass_through_nginx_one_by_one_unbuffered_and_uncompressed() {
    let stack = Stack::start().await;
    let (response, session) = stack.start_session(&http_client()).await;
    let headers = response.headers();
    assert_eq!(headers["content-type"], "text/event-stream");
    assert!(
        !headers.contains_key("content-encoding"),
        "the stream was compressed: {headers:?}"
    );
    let mut stream = response.bytes_stream();

    let ack = stack.publish(session, "worker_ack", json!({})).await;
    assert_eq!(read_events(&mut stream, 1).await, [ack.event]);
    for piece in ["N", "o", " ", "b", "u", "f", "f", "e", "r"] {
        let frame = stack
            .publish(session, "FinalAnswerStream", json!({"char": piece}))
            .await;
        // The next piece is published only once this one arrived: a proxy
        // holding bytes back stalls here until read_events gives up.
        assert_eq!(read_events(&mut stream, 1).await, [frame.event]);
    }
    stack
        .publish(session, "FinalAnswerStreamEnd", json!({}))
        .await;
    let rest = read_rest(stream, WAIT, "the POST stream after its terminal event").await;
    assert_eq!(
        rest,
        "data: {\"event_type\":\"FinalAnswerStreamEnd\",\"payload\":{}}\n\n"
    );
}

#[tokio::test]
async fn a_dropped_follower_resumes_through_nginx_without_gap_or_duplicate() {
    let stack = Stack::start().await;
    let http = http_client();
    // The creator's stream stays open throughout, so the session is never
    // cancelled for lack of clients.
    let (_creator, session) = stack.start_session(&http).await;
    let session_path = session.to_string();
    let mut published = vec![
        stack.publish(session, "worker_ack", json!({})).await,
        stack
            .publish(session, "FinalAnswerStream", json!({"char": "a"}))
            .await,
        stack
            .publish(session, "FinalAnswerStream", json!({"char": "b"}))
            .await,
    ];

    // Follow from the start: the log so far, then live.
    let first = follow(&http, stack.url(), &session_path, None).await;
    assert_eq!(first.status(), 200);
    let mut first = first.bytes_stream();
    assert_eq!(read_frames(&mut first, 3).await, published);
    published.push(
        stack
            .publish(session, "FinalAnswerStream", json!({"char": "c"}))
            .await,
    );
    assert_eq!(read_frames(&mut first, 1).await, published[3..]);
    let last_seen = published[3].id.clone().expect("logged events have ids");

    // The follower drops its connection: nginx closes its own to the
    // gateway, which sees the follower leave.
    drop(first);
    let (http_ref, url) = (&http, stack.url());
    eventually(
        WAIT,
        "the gateway to see the follower leave",
        || async move { followers_active(http_ref, url).await == 0.0 },
    )
    .await;

    // What happens while nobody follows, up to the terminal event.
    for piece in ["d", "e"] {
        published.push(
            stack
                .publish(session, "FinalAnswerStream", json!({"char": piece}))
                .await,
        );
    }
    published.push(
        stack
            .publish(session, "FinalAnswerStreamEnd", json!({}))
            .await,
    );

    // Last-Event-ID passes through nginx: exactly the missed events.
    let resumed = follow(&http, stack.url(), &session_path, Some(&last_seen)).await;
    assert_eq!(read_all_frames(resumed, WAIT).await, published[4..]);

    let terminal = published
        .last()
        .and_then(|frame| frame.id.clone())
        .expect("the terminal event is logged");
    let after_the_end = follow(&http, stack.url(), &session_path, Some(&terminal)).await;
    assert_eq!(after_the_end.status(), 204);
}

#[tokio::test]
async fn nginx_passes_bodies_up_to_the_gateways_limit_and_refuses_larger_ones() {
    let stack = Stack::start().await;
    let http = http_client();
    // A session request exactly `len` bytes long.
    let body_of = |len: usize| {
        let empty = json!({"user_query": ""}).to_string();
        json!({"user_query": "x".repeat(len - empty.len())}).to_string()
    };

    let at_limit = stack.post(&http, body_of(BODY_LIMIT)).await;
    assert_eq!(at_limit.status(), 200, "a body of --body-limit bytes");

    let over_limit = stack.post(&http, body_of(BODY_LIMIT + 1)).await;
    assert_eq!(over_limit.status(), 413);
    assert!(
        over_limit.headers()["content-type"]
            .to_str()
            .is_ok_and(|kind| kind.starts_with("text/html")),
        "nginx itself refuses it (the gateway would answer JSON): {:?}",
        over_limit.headers()
    );
}
