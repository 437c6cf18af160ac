//! The Prometheus exporter behind `GET /metrics`.
//!
//! Metric names live in `sse_bridge_core::metrics`; this installs the
//! recorder that renders them, with histogram buckets fit for a streaming
//! gateway: from a millisecond (an in-process ack) to half an hour (the
//! longest session).

use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// Bucket bounds, in seconds, of every `_seconds` histogram.
const SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    300.0, 1800.0,
];

/// Installs the process-wide recorder and describes every metric; the
/// handle renders `/metrics`.
pub fn install_metrics() -> Result<PrometheusHandle, BuildError> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)?
        .install_recorder()?;
    sse_bridge_core::metrics::describe();
    Ok(handle)
}
