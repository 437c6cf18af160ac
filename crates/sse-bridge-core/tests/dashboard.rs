//! The Grafana dashboard in `docs/` queries only metrics the gateway emits
//! (the names declared in `src/metrics.rs`), so a rename cannot leave it
//! showing empty panels.

use std::collections::BTreeSet;
use std::path::Path;

/// Every `sse_bridge_…` name after `prefix` in `text` (histogram series
/// by their metric's name).
fn names_in(text: &str, prefix: &str) -> BTreeSet<String> {
    let prefix = format!("{prefix}sse_bridge_");
    text.match_indices(&prefix)
        .map(|(at, _)| {
            let tail = &text[at + prefix.len() - "sse_bridge_".len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            name.strip_suffix("_bucket").unwrap_or(name).to_owned()
        })
        .collect()
}

#[test]
fn the_dashboard_queries_only_emitted_metrics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    // The string constants, not the names in doc comments.
    let declared = names_in(
        &std::fs::read_to_string(root.join("src/metrics.rs")).unwrap(),
        "\"",
    );
    let dashboard =
        std::fs::read_to_string(root.join("../../docs/grafana-dashboard.json")).unwrap();
    let queried = names_in(&dashboard, "");
    assert!(queried.len() >= 10, "{queried:?}");
    for name in &queried {
        assert!(
            declared.contains(name),
            "the dashboard queries {name}, which is not emitted"
        );
    }
    let unused: Vec<_> = declared.difference(&queried).collect();
    assert!(unused.is_empty(), "metrics without a panel: {unused:?}");
}
