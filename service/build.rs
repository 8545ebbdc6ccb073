//! Records the git commit the binaries are built from, for
//! `aplus_build_info{git}`.
//!
//! `APLUS_GIT_HASH` wins when set (a build from a tarball or a container
//! context without `.git`); otherwise `git rev-parse` in the source tree;
//! otherwise `unknown`. A build never fails for want of git.

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let output = Command::new("git")
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8(output.stdout).ok()?;
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn main() {
    println!("cargo:rerun-if-env-changed=APLUS_GIT_HASH");
    let hash = std::env::var("APLUS_GIT_HASH")
        .ok()
        .filter(|h| !h.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    // Rebuild when HEAD moves: HEAD itself (a checkout) and the branch it
    // points at (a commit). Both paths resolve inside worktrees too.
    for path in ["HEAD", "packed-refs"]
        .into_iter()
        .map(str::to_owned)
        .chain(git(&["symbolic-ref", "-q", "HEAD"]))
    {
        // A missing file would make cargo rebuild every time (a packed ref).
        if let Some(file) = git(&["rev-parse", "--path-format=absolute", "--git-path", &path])
            .filter(|f| std::path::Path::new(f).exists())
        {
            println!("cargo:rerun-if-changed={file}");
        }
    }
    println!("cargo:rustc-env=APLUS_GIT_HASH={hash}");
}
