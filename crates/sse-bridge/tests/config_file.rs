//! The config file, through the real binary: file values are used, the
//! environment beats the file and flags beat both; unknown keys and bad
//! values are errors naming the key; `config print` shows where every value
//! came from with secrets redacted; the example file at the repository root
//! lists every setting at its default and parses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use sse_bridge_testkit::process::{ChildProcess, free_port, wait_healthy};

const BINARY: &str = env!("CARGO_BIN_EXE_sse-bridge");
const EXAMPLE_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../sse-bridge.example.toml");

/// A directory of its own for a test's files (nextest runs each test in a
/// process of its own).
fn scratch_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("sse-bridge-config-{test}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    dir
}

fn write_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("writing a config file");
    path
}

/// Runs the binary with exactly `envs` as its `SSE_BRIDGE_*` variables;
/// fails the test if it runs longer than a few seconds (a `serve` that
/// should have refused to start).
fn run(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut command = Command::new(BINARY);
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("SSE_BRIDGE_")) {
        command.env_remove(name);
    }
    let mut child = command
        .args(args)
        .envs(envs.iter().copied())
        .env("RUST_LIB_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawning sse-bridge");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("waiting").is_none() {
        if Instant::now() > deadline {
            child.kill().expect("kill");
            panic!("`sse-bridge {}` did not exit", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output")
}

/// `config print`'s stdout, asserting success.
fn print_config(args: &[&str], envs: &[(&str, &str)]) -> String {
    let args = [&["config", "print"], args].concat();
    let output = run(&args, envs);
    assert!(
        output.status.success(),
        "config print failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("UTF-8")
}

/// The stderr of a run that must fail.
fn failure(args: &[&str], envs: &[(&str, &str)]) -> String {
    let output = run(args, envs);
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(
        !output.status.success(),
        "`{}` succeeded; stderr: {stderr}",
        args.join(" ")
    );
    stderr
}

/// A setting as `config print` shows it.
#[derive(Debug, PartialEq)]
struct Printed {
    /// The TOML value; `None` when not set.
    value: Option<String>,
    origin: String,
}

/// `config print`'s output by key.
fn printed_settings(print: &str) -> BTreeMap<String, Printed> {
    print
        .lines()
        .filter_map(|line| {
            let (setting, origin) = line.rsplit_once("  # ")?;
            let setting = setting.trim_end();
            let (key, value) = match setting.strip_prefix("# ") {
                Some(unset) => (unset.strip_suffix(" is not set")?, None),
                None => {
                    let (key, value) = setting.split_once(" = ")?;
                    (key, Some(value.to_owned()))
                }
            };
            Some((
                key.to_owned(),
                Printed {
                    value,
                    origin: origin.to_owned(),
                },
            ))
        })
        .collect()
}

fn setting(print: &str, key: &str) -> Printed {
    printed_settings(print)
        .remove(key)
        .unwrap_or_else(|| panic!("no `{key}` in:\n{print}"))
}

fn printed(value: &str, origin: &str) -> Printed {
    Printed {
        value: Some(value.to_owned()),
        origin: origin.to_owned(),
    }
}

/// The example file's settings: its `# key = value` lines, trailing comments cut.
fn example_settings() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(EXAMPLE_FILE).expect("the example file");
    text.lines()
        .filter_map(|line| {
            let (key, value) = line.strip_prefix("# ")?.split_once(" = ")?;
            key.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                .then(|| {
                    let value = value.split_once("  #").map_or(value, |(value, _)| value);
                    (key.to_owned(), value.trim().to_owned())
                })
        })
        .collect()
}

#[test]
fn file_values_are_used() {
    let dir = scratch_dir("used");
    let file = write_file(
        &dir,
        "sse-bridge.toml",
        "ack_timeout = \"7s\"\nmax_events = 5\nwith_worker = true\ncors_allow_origin = [\"https://a.example\", \"https://b.example\"]\n",
    );
    let print = print_config(&["--config", file.to_str().unwrap()], &[]);
    assert_eq!(setting(&print, "ack_timeout"), printed("\"7s\"", "file"));
    assert_eq!(setting(&print, "max_events"), printed("5", "file"));
    assert_eq!(setting(&print, "with_worker"), printed("true", "file"));
    assert_eq!(
        setting(&print, "cors_allow_origin"),
        printed("[\"https://a.example\", \"https://b.example\"]", "file")
    );
    assert_eq!(setting(&print, "heartbeat"), printed("\"15s\"", "default"));

    // The file named by the environment instead of a flag.
    let print = print_config(&[], &[("SSE_BRIDGE_CONFIG", file.to_str().unwrap())]);
    assert_eq!(setting(&print, "ack_timeout"), printed("\"7s\"", "file"));
}

#[test]
fn the_environment_beats_the_file_and_a_flag_beats_both() {
    let dir = scratch_dir("precedence");
    let file = write_file(
        &dir,
        "sse-bridge.toml",
        "ack_timeout = \"7s\"\nheartbeat = \"7s\"\nidle_timeout = \"7s\"\napi_key = [\"file=k1\"]\n",
    );
    let envs = [
        ("SSE_BRIDGE_HEARTBEAT", "8s"),
        ("SSE_BRIDGE_IDLE_TIMEOUT", "8s"),
        ("SSE_BRIDGE_API_KEYS", "env=k2,env2=k3"),
    ];
    let print = print_config(
        &["--config", file.to_str().unwrap(), "--idle-timeout", "9s"],
        &envs,
    );
    assert_eq!(setting(&print, "ack_timeout"), printed("\"7s\"", "file"));
    assert_eq!(
        setting(&print, "heartbeat"),
        printed("\"8s\"", "env SSE_BRIDGE_HEARTBEAT")
    );
    assert_eq!(
        setting(&print, "idle_timeout"),
        printed("\"9s\"", "flag --idle-timeout")
    );
    // A list from a higher layer replaces the file's, it does not extend it.
    assert_eq!(
        setting(&print, "api_key"),
        printed("[\"env=***\", \"env2=***\"]", "env SSE_BRIDGE_API_KEYS")
    );
}

#[test]
fn an_unknown_key_is_an_error_naming_it() {
    let dir = scratch_dir("unknown");
    let file = write_file(
        &dir,
        "typo.toml",
        "listen = \"127.0.0.1:0\"\nack_timeuot = \"1s\"\n",
    );
    let stderr = failure(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(
        stderr.contains("typo.toml:2: unknown key `ack_timeuot`"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean `ack_timeout`?"), "{stderr}");

    // Keys are snake_case only; the kebab-case spelling is pointed at it.
    let file = write_file(&dir, "kebab.toml", "ack-timeout = \"1s\"\n");
    let stderr = failure(
        &["config", "print", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(
        stderr.contains("unknown key `ack-timeout`; did you mean `ack_timeout`?"),
        "{stderr}"
    );

    let file = write_file(&dir, "nested.toml", "[session]\nack_timeout = \"1s\"\n");
    let stderr = failure(
        &["config", "print", "--config", file.to_str().unwrap()],
        &[],
    );
    assert!(stderr.contains("unknown key `session`"), "{stderr}");
}

#[test]
fn a_bad_value_is_clap_s_error_naming_the_key() {
    let dir = scratch_dir("bad-value");
    let file = write_file(&dir, "bad.toml", "# timings\n\nack_timeout = \"soon\"\n");
    let stderr = failure(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(
        stderr.contains("bad.toml:3: `ack_timeout`: invalid value 'soon' for '--ack-timeout"),
        "{stderr}"
    );

    let file = write_file(&dir, "choice.toml", "queue = \"rabbitmq\"\n");
    let stderr = failure(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(
        stderr.contains("`queue`: invalid value 'rabbitmq'"),
        "{stderr}"
    );
    assert!(
        stderr.contains("[possible values: embedded, redis, kafka]"),
        "{stderr}"
    );

    let file = write_file(&dir, "type.toml", "with_worker = \"yes\"\n");
    let stderr = failure(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(
        stderr.contains("type.toml:1: `with_worker` must be true or false, found string"),
        "{stderr}"
    );

    let file = write_file(&dir, "syntax.toml", "listen = 127.0.0.1\n");
    let stderr = failure(&["serve", "--config", file.to_str().unwrap()], &[]);
    assert!(stderr.contains("is not valid TOML"), "{stderr}");
    assert!(stderr.contains("line 1"), "{stderr}");

    let stderr = failure(
        &[
            "serve",
            "--config",
            dir.join("missing.toml").to_str().unwrap(),
        ],
        &[],
    );
    assert!(stderr.contains("cannot read the config file"), "{stderr}");
}

#[test]
fn config_print_redacts_secrets_and_shows_origins() {
    let dir = scratch_dir("redact");
    let file = write_file(
        &dir,
        "secrets.toml",
        r#"
api_key = ["alice=file-api-key-1", "bob=file-api-key-2"]
redis_url = "redis://app:file-redis-password@redis.internal:6379/0"
kafka_property = ["sasl.password=file-sasl-password", "ssl.key.password=file-ssl-password", "acks=all"]
log_ttl = "2h"
"#,
    );
    let print = print_config(
        &["--config", file.to_str().unwrap(), "--max-sessions", "7"],
        &[("SSE_BRIDGE_JWT_HS256_SECRET", "env-jwt-secret")],
    );
    for secret in [
        "file-api-key-1",
        "file-api-key-2",
        "file-redis-password",
        "file-sasl-password",
        "file-ssl-password",
        "env-jwt-secret",
    ] {
        assert!(!print.contains(secret), "`{secret}` leaked:\n{print}");
    }
    assert_eq!(
        setting(&print, "api_key"),
        printed("[\"alice=***\", \"bob=***\"]", "file")
    );
    assert_eq!(
        setting(&print, "redis_url"),
        printed("\"redis://app:***@redis.internal:6379/0\"", "file")
    );
    assert_eq!(
        setting(&print, "kafka_property"),
        printed(
            "[\"sasl.password=***\", \"ssl.key.password=***\", \"acks=all\"]",
            "file"
        )
    );
    assert_eq!(
        setting(&print, "jwt_hs256_secret"),
        printed("\"***\"", "env SSE_BRIDGE_JWT_HS256_SECRET")
    );
    assert_eq!(setting(&print, "log_ttl"), printed("\"2h\"", "file"));
    assert_eq!(
        setting(&print, "max_sessions"),
        printed("7", "flag --max-sessions")
    );
    assert_eq!(
        setting(&print, "listen"),
        printed("\"127.0.0.1:8000\"", "default")
    );
    assert_eq!(
        setting(&print, "jwt_audience"),
        Printed {
            value: None,
            origin: "default".into()
        }
    );
}

#[test]
fn config_print_output_is_a_config_file() {
    let dir = scratch_dir("round-trip");
    let first = print_config(
        &["--heartbeat", "3s", "--api-key", "a=1", "--with-worker"],
        &[],
    );
    let file = write_file(&dir, "printed.toml", &first);
    let second = print_config(&["--config", file.to_str().unwrap()], &[]);
    let values = |print: &str| -> BTreeMap<String, Option<String>> {
        printed_settings(print)
            .into_iter()
            .map(|(key, printed)| (key, printed.value))
            .collect()
    };
    // The API key's secret is redacted in the file, so only its name survives.
    let mut expected = values(&first);
    expected.insert("api_key".into(), Some("[\"a=***\"]".into()));
    assert_eq!(values(&second), expected);
    assert_eq!(setting(&second, "heartbeat"), printed("\"3s\"", "file"));
}

#[test]
fn the_example_file_lists_every_setting_at_its_default() {
    let print = print_config(&["--config", EXAMPLE_FILE], &[]);
    let defaults = printed_settings(&print);
    let example = example_settings();
    let missing: Vec<&String> = defaults
        .keys()
        .filter(|key| !example.iter().any(|(listed, _)| listed == *key))
        .collect();
    let unknown: Vec<&String> = example
        .iter()
        .map(|(key, _)| key)
        .filter(|key| !defaults.contains_key(*key))
        .collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "the example file lacks {missing:?} and lists unknown {unknown:?}"
    );

    for (key, value) in &example {
        let default = &defaults[key];
        assert_eq!(
            default.origin, "default",
            "`{key}` is set in the example file"
        );
        // Settings without a default (unset, or an empty list) show an example.
        if let Some(default) = default.value.as_deref().filter(|value| *value != "[]") {
            assert_eq!(
                value, default,
                "`{key}` in the example file is not its default"
            );
        }
    }
}

#[test]
fn every_example_value_is_valid() {
    let dir = scratch_dir("example-values");
    let uncommented: String = example_settings()
        .into_iter()
        // The one alternative the example lists: it conflicts with jwt_hs256_secret.
        .filter(|(key, _)| key != "jwt_rs256_public_key")
        .map(|(key, value)| format!("{key} = {value}\n"))
        .collect();
    let file = write_file(&dir, "everything.toml", &uncommented);
    let print = print_config(&["--config", file.to_str().unwrap()], &[]);
    for (key, printed) in printed_settings(&print) {
        if key != "jwt_rs256_public_key" {
            assert_eq!(printed.origin, "file", "`{key}`");
        }
    }
}

#[test]
fn worker_skips_the_keys_only_serve_has() {
    let dir = scratch_dir("worker");
    let file = write_file(
        &dir,
        "shared.toml",
        "listen = \"127.0.0.1:1\"\nconcurrency = 3\n",
    );
    // Parsing passed: the worker stops at its own check that Redis is needed.
    let stderr = failure(&["worker", "--config", file.to_str().unwrap()], &[]);
    assert!(stderr.contains("set --redis-url"), "{stderr}");

    let file = write_file(&dir, "typo.toml", "concurency = 3\n");
    let stderr = failure(&["worker", "--config", file.to_str().unwrap()], &[]);
    assert!(stderr.contains("unknown key `concurency`"), "{stderr}");
}

#[tokio::test]
async fn serve_listens_where_the_file_says() {
    let dir = scratch_dir("listen");
    let listen = format!("127.0.0.1:{}", free_port());
    let file = write_file(
        &dir,
        "serve.toml",
        &format!("listen = \"{listen}\"\ndemo_delay = \"1ms\"\n"),
    );
    let mut gateway = ChildProcess::spawn(
        Path::new(BINARY),
        &["serve", "--config", file.to_str().unwrap()],
        &[],
        "serve-config-file",
    );
    wait_healthy(
        &format!("http://{listen}"),
        &gateway,
        Duration::from_secs(20),
    )
    .await;
    let status = gateway.terminate(Duration::from_secs(15));
    assert!(
        status.success(),
        "exit {status:?}; log:\n{}",
        gateway.output()
    );
}
