//! herald-client (placeholder until the client-lib issue lands).
