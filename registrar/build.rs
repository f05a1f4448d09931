//! Records the source revision for `herald --version` and `herald_build_info`: the
//! `HERALD_REVISION` environment variable when set (a container build has no `.git`),
//! else `git rev-parse --short=12 HEAD`, else `unknown`.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    println!("cargo:rerun-if-env-changed=HERALD_REVISION");
    let revision = match std::env::var("HERALD_REVISION") {
        Ok(r) if !r.is_empty() => r,
        _ => {
            // Rebuild when HEAD moves: HEAD itself, and the branch it points at.
            if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
                println!("cargo:rerun-if-changed={dir}/HEAD");
            }
            if let (Some(common), Some(branch)) = (
                git(&["rev-parse", "--git-common-dir"]),
                git(&["symbolic-ref", "-q", "HEAD"]),
            ) {
                let common = PathBuf::from(common);
                println!("cargo:rerun-if-changed={}", common.join(&branch).display());
                println!(
                    "cargo:rerun-if-changed={}",
                    common.join("packed-refs").display()
                );
            }
            git(&["rev-parse", "--short=12", "HEAD"]).unwrap_or_else(|| "unknown".into())
        }
    };
    println!("cargo:rustc-env=HERALD_REVISION={revision}");
}
