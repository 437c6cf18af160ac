//! Redis backends (work in progress).
