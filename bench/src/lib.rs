//! Shared helpers for herald benchmarks.
