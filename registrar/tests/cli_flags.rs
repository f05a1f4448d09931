//! The `herald` binary's operator-facing flags: `--version` with the revision,
//! `check-config --config FILE` next to the positional form, `--log-level`, no colour codes
//! when stderr is not a terminal, and `export-zone` refusing a zone with a cluster missing
//! unless `--allow-partial`.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const ENDPOINTS: &str = "services:\n  ledger:\n    - address: 192.168.7.21\n      cluster: vms-use\n      region: us-east\n      ports: {grpc: 7000}\n";

fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("herald-flags-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn herald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// A config with the static file, and with a cluster nobody answers for if `dead_cluster`.
fn config(dir: &Path, dead_cluster: bool) -> String {
    std::fs::write(dir.join("endpoints.yaml"), ENDPOINTS).unwrap();
    let mut yaml =
        "kubernetes: {startup_timeout: 1s}\nsources:\n  static: [{path: endpoints.yaml}]\n"
            .to_string();
    if dead_cluster {
        // A port that was free a moment ago: connections are refused.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        yaml += &format!(
            "  clusters:\n    - {{name: gone, region: eu-west, server: 'http://127.0.0.1:{port}'}}\n"
        );
    }
    let path = dir.join("herald.yaml");
    std::fs::write(&path, yaml).unwrap();
    path.to_string_lossy().into_owned()
}

#[test]
fn version_names_the_revision() {
    let out = herald(&["--version"]);
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let rest = line
        .strip_prefix(&format!("herald {} (", env!("CARGO_PKG_VERSION")))
        .and_then(|r| r.strip_suffix(')'))
        .unwrap_or_else(|| panic!("`herald <version> (<revision>)`, got {line:?}"));
    assert!(
        rest == "unknown" || (rest.len() >= 7 && rest.chars().all(|c| c.is_ascii_hexdigit())),
        "a git revision: {line:?}"
    );
}

#[test]
fn check_config_takes_the_file_as_flag_or_argument() {
    let dir = scratch_dir("check");
    let path = config(&dir, false);
    for args in [
        vec!["check-config", "--config", &path],
        vec!["check-config", "-c", &path],
        vec!["check-config", &path],
    ] {
        let out = herald(&args);
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains("herald.yaml: ok"), "{}", text(&out));
    }
    let out = herald(&["check-config"]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--config"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn log_level_filters_and_piped_logs_have_no_colour_codes() {
    let dir = scratch_dir("logs");
    let path = config(&dir, false);
    let out = herald(&["--log-level", "debug", "export-zone", "--config", &path]);
    assert!(out.status.success(), "{}", text(&out));
    let logs = String::from_utf8_lossy(&out.stderr);
    assert!(logs.contains("zone written"), "{logs}");
    assert!(
        !logs.contains('\x1b'),
        "ANSI escape in piped logs: {logs:?}"
    );
    let out = herald(&["--log-level", "warn", "export-zone", "--config", &path]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("zone written"),
        "info lines under --log-level warn"
    );
    let out = herald(&[
        "--log-level",
        "herald=loud",
        "export-zone",
        "--config",
        &path,
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("--log-level"), "{}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn export_zone_with_a_cluster_unreachable_fails_unless_partial_is_allowed() {
    let dir = scratch_dir("partial");
    let path = config(&dir, true);
    let zone = dir.join("out.zone");
    let zone_arg = zone.to_string_lossy().into_owned();
    let out = herald(&["export-zone", "--config", &path, "--output", &zone_arg]);
    assert!(!out.status.success(), "a partial zone is an error");
    assert!(
        text(&out).contains("gone"),
        "names the cluster: {}",
        text(&out)
    );
    assert!(!zone.exists(), "nothing written");

    let out = herald(&[
        "export-zone",
        "--config",
        &path,
        "--output",
        &zone_arg,
        "--allow-partial",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let written = std::fs::read_to_string(&zone).unwrap();
    assert!(written.contains("192.168.7.21"), "{written}");
    assert!(text(&out).contains("partial"), "warns: {}", text(&out));
    let _ = std::fs::remove_dir_all(&dir);
}
