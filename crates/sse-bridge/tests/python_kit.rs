//! The Python worker kit (`clients/python`, package `sse-bridge-worker`)
//! against this binary and the real Redis: runs its pytest suite
//! (`clients/python/tests`), which starts `sse-bridge serve` itself and
//! drives sessions through the kit's asyncio and threaded workers.
//!
//! Needs a Python with redis-py, pytest and the kit installed, named by
//! `SSE_BRIDGE_PYTHON` (default `python3`); `.ci/run` makes one in
//! `target/ci-venv`. By hand:
//! `python3 -m venv target/ci-venv && target/ci-venv/bin/pip install redis pytest -e clients/python`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use sse_bridge_testkit::process::run_to_end;

/// Below nextest's 120 s limit, so a hang reports pytest's output.
const PYTEST_LIMIT: Duration = Duration::from_secs(100);

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[tokio::test]
async fn python_worker_kit_passes_its_tests_against_the_gateway() {
    let python = std::env::var("SSE_BRIDGE_PYTHON").unwrap_or_else(|_| "python3".into());
    let can_import = std::process::Command::new(&python)
        .args(["-c", "import redis, pytest, sse_bridge_worker"])
        .status();
    assert!(
        can_import.is_ok_and(|s| s.success()),
        "{python} cannot import redis, pytest and sse_bridge_worker; run .ci/run (its venv has them) or \
         `pip install redis pytest -e clients/python` and set SSE_BRIDGE_PYTHON"
    );

    let mut pytest = tokio::process::Command::new(&python);
    pytest
        .args([
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--durations=5",
            // The adapters have their own run (`python_adapters.rs`).
            "--ignore=clients/python/tests/adapters",
            "clients/python/tests",
        ])
        .current_dir(workspace_root())
        .env("SSE_BRIDGE_BIN", env!("CARGO_BIN_EXE_sse-bridge"))
        .env("PYTHONDONTWRITEBYTECODE", "1");
    let out = run_to_end(pytest, PYTEST_LIMIT, "pytest clients/python/tests").await;
    let report = out.report;
    assert!(
        out.status.success(),
        "pytest clients/python/tests failed ({}):\n{report}",
        out.status
    );
    println!("{report}");
}
