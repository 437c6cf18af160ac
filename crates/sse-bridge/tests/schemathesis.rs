//! Schemathesis (PyPI) against `/openapi.json` of a running gateway
//! (embedded broker, demo agent): it generates requests for every
//! operation from the document — valid ones, and invalid ones derived
//! from them — and checks that no answer is a 5xx and that every status,
//! content type, header and body (each event of a stream, too) is what
//! the document says. Bounded by a fixed seed, 20 examples per operation
//! and a time budget; by hand, drop `--seed` and add the `coverage` phase
//! to explore further.
//!
//! Needs a Python with schemathesis, named by `SSE_BRIDGE_PYTHON`
//! (default `python3`); `.ci/run`'s venv (`target/ci-venv`) has it.

use std::path::Path;
use std::time::Duration;

use sse_bridge_testkit::process::{ChildProcess, free_port, run_to_end, wait_healthy};

/// Schemathesis's own budget, and ours (below nextest's 120 s limit).
const BUDGET_SECONDS: &str = "60";
const LIMIT: Duration = Duration::from_secs(100);

/// The checks the document must pass (Schemathesis's
/// `positive_data_acceptance` is left out: the document cannot say that a
/// message list must hold a user message with text, so some generated
/// "valid" bodies are rightly refused with 422).
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
    response_headers_conformance,response_schema_conformance";

#[tokio::test]
async fn schemathesis_finds_no_server_error_and_no_answer_outside_the_document() {
    let python = std::env::var("SSE_BRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let available = std::process::Command::new(&python)
        .args(["-c", "import schemathesis"])
        .status();
    assert!(
        available.is_ok_and(|s| s.success()),
        "{python} cannot import schemathesis; run .ci/run (its venv has it) or \
         `pip install schemathesis` and set SSE_BRIDGE_PYTHON"
    );

    let listen = format!("127.0.0.1:{}", free_port());
    let bin = Path::new(env!("CARGO_BIN_EXE_sse-bridge"));
    let gateway = ChildProcess::spawn(
        bin,
        &["serve", "--listen", &listen, "--demo-delay", "0ms"],
        &[],
        "schemathesis-gateway",
    );
    let url = format!("http://{listen}");
    wait_healthy(&url, &gateway, Duration::from_secs(20)).await;

    let mut schemathesis = tokio::process::Command::new(&python);
    schemathesis
        .args([
            "-m",
            "schemathesis.cli",
            "run",
            &format!("{url}/openapi.json"),
        ])
        .args(["--checks", CHECKS])
        .args(["--max-examples", "20", "--seed", "1"])
        .args(["--max-time", BUDGET_SECONDS, "--request-timeout", "10"])
        .args(["--workers", "2"])
        // Its coverage phase's generator can fail inside Hypothesis on a
        // loaded machine ("FlakyFailure: Inconsistent results", no request
        // sent): a failure of the tool, not of the gateway. Examples,
        // fuzzing and the stateful phase still run every operation.
        .args(["--phases", "examples,fuzzing,stateful"])
        .env("NO_COLOR", "1")
        // Where it keeps its example database, out of the source tree.
        .current_dir(env!("CARGO_TARGET_TMPDIR"));
    let out = run_to_end(schemathesis, LIMIT, "schemathesis").await;
    let report = out.report;
    assert!(
        out.status.success(),
        "schemathesis failed ({}):\n{report}",
        out.status
    );
    assert!(report.contains("passed"), "{report}");
    println!("{report}");
    drop(gateway);
}
