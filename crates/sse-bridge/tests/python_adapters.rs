//! The Python kit's framework adapters (`clients/python/sse_bridge_worker/
//! adapters`: LangGraph, Pydantic AI, OpenAI Agents) against this binary
//! and the real Redis: runs `clients/python/tests/adapters`, where each
//! framework's agent runs offline on the framework's own test model and is
//! read back through the gateway, by the official clients too.
//!
//! Needs `SSE_BRIDGE_PYTHON` with the kit and its extras installed
//! (`.ci/run`: `pip install -e 'clients/python[langgraph,pydantic-ai,openai-agents]'`
//! under `clients/python/constraints-adapters.txt`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sse_bridge_testkit::process::run_to_end;

/// Below nextest's 120 s limit, so a hang reports pytest's output.
const PYTEST_LIMIT: Duration = Duration::from_secs(110);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn the_framework_adapters_pass_their_tests_against_the_gateway() {
    let python = std::env::var("SSE_BRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let mut pytest = tokio::process::Command::new(&python);
    pytest
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--durations=5",
            "clients/python/tests/adapters",
        ])
        .current_dir(workspace_root())
        .env("SSE_BRIDGE_BIN", env!("CARGO_BIN_EXE_sse-bridge"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_to_end(pytest, PYTEST_LIMIT, "pytest clients/python/tests/adapters").await;
    let report = out.report;
    assert!(
        out.status.success(),
        "pytest clients/python/tests/adapters failed ({}):\n{report}",
        out.status
    );
    println!("{report}");
}
