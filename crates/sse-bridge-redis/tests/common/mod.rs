//! Test helpers live in `sse-bridge-testkit`, shared with the other crates.

#![allow(unused_imports)] // each test binary uses a subset

pub use sse_bridge_testkit::redis::*;
