//! Tools the tests need from the machine (Prometheus, Chromium): found on
//! `PATH`, or installed from Debian's packages when missing and running as
//! root, the way the suite gets PostgreSQL. Otherwise the test fails with
//! a message saying what to install; it never skips.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `name` on `PATH` (or in `/usr/bin`, `/usr/sbin`).
pub fn find(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// The path of `binary`, installing Debian's `package` first when it is
/// missing and this process may (root, `apt-get` present). Concurrent
/// callers (tests in parallel) install once: they take a file lock.
///
/// # Errors
/// When the binary is missing and cannot be installed; the text says what
/// to install.
pub fn ensure(binary: &str, package: &str) -> Result<PathBuf, String> {
    if let Some(found) = find(binary) {
        return Ok(found);
    }
    let manual = format!(
        "`{binary}` is not installed and this process cannot install it; \
         install the Debian package `{package}` (apt-get install {package})"
    );
    if !is_root() || find("apt-get").is_none() {
        return Err(manual);
    }
    let lock_path = std::env::temp_dir().join("aplus-testkit-apt.lock");
    let lock = std::fs::File::create(&lock_path)
        .map_err(|e| format!("creating {}: {e}", lock_path.display()))?;
    fs4::fs_std::FileExt::lock_exclusive(&lock)
        .map_err(|e| format!("locking {}: {e}", lock_path.display()))?;
    // Another test may have installed it while this one waited.
    if let Some(found) = find(binary) {
        return Ok(found);
    }
    eprintln!("testkit: installing {package} (apt-get install {package})");
    let run = |args: &[&str]| -> Result<(), String> {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .map_err(|e| format!("running apt-get: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "apt-get {} failed ({status}); {manual}",
                args.join(" ")
            ))
        }
    };
    // A stale package list makes install fail; update first, once.
    run(&["update", "-q"])?;
    run(&["install", "-y", "-q", "--no-install-recommends", package])?;
    find(binary).ok_or(manual)
}
