//! Records the commit HEAD pointed at when the harness was built
//! (`TIJORI_LOADTEST_GIT`, "unknown" outside a git checkout) for the run
//! metadata in its reports. Uncommitted changes are not reflected.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn main() {
    // Rebuild when HEAD moves (a commit, a checkout, a reset).
    for path in ["HEAD", "logs/HEAD"] {
        if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", path]) {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    let commit = match git(&["rev-parse", "HEAD"]) {
        Some(c) if !c.is_empty() => c,
        _ => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=TIJORI_LOADTEST_GIT={commit}");
}
