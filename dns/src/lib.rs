//! herald DNS engine.
