//! The Node.js worker kit (`clients/js-worker`, package `sse-bridge-worker`)
//! against this binary and the real Redis: type-checks it (`tsc`, which
//! also writes its `.d.ts`) and runs its `node --test` suite, which starts
//! `sse-bridge serve` itself and drives sessions through the kit's worker —
//! the worker loop, and the AI SDK adapter with `MockLanguageModelV3` read
//! back by the `ai` chat (the approval flow included).
//!
//! Needs Node.js 20+ and `npm ci --prefix clients/js-worker` (`.ci/run`
//! does it).

use std::path::{Path, PathBuf};
use std::time::Duration;

use sse_bridge_testkit::process::run_to_end;

/// Below nextest's 120 s limit, so a hang reports node's output.
const NODE_LIMIT: Duration = Duration::from_secs(100);

fn kit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../clients/js-worker")
}

#[tokio::test]
async fn js_worker_kit_passes_its_tests_against_the_gateway() {
    let dir = kit_dir();
    for package in ["ioredis", "ai", "typescript"] {
        assert!(
            dir.join("node_modules").join(package).is_dir(),
            "the npm package {package} is missing: run `npm ci --prefix clients/js-worker` at the workspace root"
        );
    }

    let mut tsc = tokio::process::Command::new("node");
    tsc.args(["node_modules/typescript/bin/tsc", "-p", "."])
        .current_dir(&dir);
    let out = run_to_end(tsc, NODE_LIMIT, "tsc -p clients/js-worker").await;
    assert!(
        out.status.success(),
        "tsc -p clients/js-worker failed ({}):\n{}",
        out.status,
        out.report
    );

    let mut node = tokio::process::Command::new("node");
    node.arg("--test")
        .current_dir(&dir)
        .env("SSE_BRIDGE_BIN", env!("CARGO_BIN_EXE_sse-bridge"));
    let out = run_to_end(node, NODE_LIMIT, "node --test (clients/js-worker)").await;
    let report = out.report;
    assert!(
        out.status.success(),
        "node --test in clients/js-worker failed ({}):\n{report}",
        out.status
    );
    assert!(
        report.contains("# fail 0"),
        "node --test reported failures:\n{report}"
    );
    println!("{report}");
}
