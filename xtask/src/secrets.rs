//! The secrets `cargo xtask up` generates and hands to the services: in
//! `<data folder>/secrets` (mode 0700), one file each (mode 0600).
//!
//! - `postgres`: the private cluster's superuser password.
//! - `aplus_owner`, `aplus_bot`, `aplus_worker`, `aplus_reconciler`: each
//!   role's password (set by `migration roles --password-dir`).
//! - `<role>.url`: the database URL each service logs in with, handed over
//!   as `DATABASE_URL_FILE`, so no password is in any environment or argv.
//! - `discord-token`: the bot's token (`DISCORD_TOKEN_FILE`): the worker and
//!   the reconciler never receive it.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use testkit::cluster;

/// The roles of `migration/src/roles.rs`.
pub const ROLES: [&str; 4] = [
    "aplus_owner",
    "aplus_bot",
    "aplus_worker",
    "aplus_reconciler",
];

/// The secrets directory, created with mode 0700.
pub fn dir() -> PathBuf {
    cluster::data_root().join("secrets")
}

fn ensure_dir() -> Result<PathBuf> {
    let dir = dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting the mode of {}", dir.display()))?;
    Ok(dir)
}

/// Writes `name` in the secrets directory, mode 0600 from its creation.
pub fn write(name: &str, content: &str) -> Result<PathBuf> {
    let path = ensure_dir()?.join(name);
    // Replaced, not truncated: a file left by an older version may have
    // been created with a wider mode.
    let _ = std::fs::remove_file(&path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(content.as_bytes())
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

/// The password kept as `name`, generated (32 hex digits from the system's
/// random source) the first time.
pub fn password(name: &str) -> Result<String> {
    let path = ensure_dir()?.join(name);
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_owned());
    }
    let mut bytes = [0u8; 16];
    let mut random = std::fs::File::open("/dev/urandom").context("opening /dev/urandom")?;
    std::io::Read::read_exact(&mut random, &mut bytes).context("reading /dev/urandom")?;
    let password: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    write(name, &password)?;
    Ok(password)
}

/// `admin_url` with `role` and its password as the user.
pub fn role_url(admin_url: &str, role: &str, password: &str) -> Result<String> {
    let mut url = url::Url::parse(admin_url).context("the database url does not parse")?;
    url.set_username(role)
        .map_err(|()| anyhow::anyhow!("the database url has no host"))?;
    url.set_password(Some(password))
        .map_err(|()| anyhow::anyhow!("the database url has no host"))?;
    Ok(url.into())
}

/// The path of a secret file (whether or not it exists).
pub fn path(name: &str) -> PathBuf {
    dir().join(name)
}
