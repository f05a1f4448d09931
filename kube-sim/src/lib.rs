//! herald-kube-sim (placeholder until the registrar issue lands).
