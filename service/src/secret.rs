//! Secrets given directly, in a file, or as a systemd credential.
//!
//! A secret in the environment is inherited by every child process and shows
//! in `/proc/<pid>/environ` to root; one on the command line shows in `ps` to
//! every local user. A file readable only by the service (`DISCORD_TOKEN_FILE`,
//! `DATABASE_URL_FILE`), or systemd's `LoadCredential=` (a file named after
//! the credential in `$CREDENTIALS_DIRECTORY`), keeps it out of both.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret as _, SecretString};

/// Why a secret could not be had. Never holds the secret itself.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// Given nowhere.
    #[error(
        "{variable} is not set: set {variable}, or {variable}_FILE to a file holding it, \
         or run under systemd with LoadCredential={credential}:<file>"
    )]
    Missing {
        /// The environment variable, e.g. `DATABASE_URL`.
        variable: &'static str,
        /// The systemd credential name, e.g. `database-url`.
        credential: &'static str,
    },
    /// The file could not be read.
    #[error("cannot read {variable} from {}", path.display())]
    Read {
        variable: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file holds nothing but white space.
    #[error("{} is empty, so it holds no {variable}", path.display())]
    Empty {
        variable: &'static str,
        path: PathBuf,
    },
}

/// Where one secret may come from, in order: the value itself, a file, and
/// the systemd credential.
#[derive(Debug, Clone, Copy)]
pub struct SecretSource<'a> {
    /// The value given directly (flag or environment); empty when not given.
    pub value: &'a SecretString,
    /// The file named by `<variable>_FILE` or its flag.
    pub file: Option<&'a Path>,
    /// The environment variable of the value, for messages.
    pub variable: &'static str,
    /// The systemd credential's name: `$CREDENTIALS_DIRECTORY/<credential>`.
    pub credential: &'static str,
}

impl SecretSource<'_> {
    /// The secret from the first place that has it.
    pub fn load(&self) -> Result<SecretString, SecretError> {
        self.load_with(std::env::var_os("CREDENTIALS_DIRECTORY"))
    }

    fn load_with(
        &self,
        credentials_directory: Option<OsString>,
    ) -> Result<SecretString, SecretError> {
        if !self.value.expose_secret().is_empty() {
            return Ok(self.value.clone());
        }
        let path = match (self.file, credentials_directory) {
            (Some(file), _) => file.to_path_buf(),
            (None, Some(directory)) if !directory.is_empty() => {
                let path = Path::new(&directory).join(self.credential);
                if !path.exists() {
                    return Err(self.missing());
                }
                path
            }
            (None, _) => return Err(self.missing()),
        };
        let text = std::fs::read_to_string(&path).map_err(|source| SecretError::Read {
            variable: self.variable,
            path: path.clone(),
            source,
        })?;
        // A trailing newline (from `echo` or an editor) is not part of it.
        let secret = text.trim();
        if secret.is_empty() {
            return Err(SecretError::Empty {
                variable: self.variable,
                path,
            });
        }
        Ok(SecretString::from(secret.to_owned()))
    }

    fn missing(&self) -> SecretError {
        SecretError::Missing {
            variable: self.variable,
            credential: self.credential,
        }
    }
}

/// Whether this process was started with `flag` on its command line (as
/// `--flag value` or `--flag=value`), where every local user can read it.
pub fn on_command_line(flag: &str) -> bool {
    flag_in(std::env::args_os().skip(1), flag)
}

/// Logs a warning when `flag` was given on the command line: its value
/// (a database URL may hold a password) is readable by every local user.
pub fn warn_if_on_command_line(flag: &str) {
    if on_command_line(flag) {
        tracing::warn!(
            flag,
            "a secret may be on the command line, visible to every local user; \
             prefer the environment variable or its _FILE variant"
        );
    }
}

fn flag_in(args: impl Iterator<Item = OsString>, flag: &str) -> bool {
    let with_value = format!("{flag}=");
    args.map(|a| a.to_string_lossy().into_owned())
        .take_while(|a| a != "--")
        .any(|a| a == flag || a.starts_with(&with_value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source<'a>(value: &'a SecretString, file: Option<&'a Path>) -> SecretSource<'a> {
        SecretSource {
            value,
            file,
            variable: "DISCORD_TOKEN",
            credential: "discord-token",
        }
    }

    #[test]
    fn a_value_given_directly_wins_then_the_file_then_the_credential() {
        let dir = std::env::temp_dir().join(format!("aplus-secret-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("token");
        std::fs::write(&file, "from-file\n").expect("write");
        std::fs::write(dir.join("discord-token"), "from-credential").expect("write");
        let given = SecretString::from("given");
        let empty = SecretString::from("");

        let load = |s: SecretSource<'_>| {
            s.load_with(Some(dir.clone().into_os_string()))
                .map(|v| v.expose_secret().to_owned())
        };
        assert_eq!(load(source(&given, Some(&file))).unwrap(), "given");
        assert_eq!(load(source(&empty, Some(&file))).unwrap(), "from-file");
        assert_eq!(load(source(&empty, None)).unwrap(), "from-credential");
        assert!(matches!(
            source(&empty, None).load_with(None),
            Err(SecretError::Missing { .. })
        ));
        assert!(matches!(
            source(&empty, Some(&dir.join("absent"))).load_with(None),
            Err(SecretError::Read { .. })
        ));
        std::fs::write(&file, "\n").expect("write");
        assert!(matches!(
            source(&empty, Some(&file)).load_with(None),
            Err(SecretError::Empty { .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_flag_counts_with_a_separate_or_attached_value_but_not_as_a_prefix() {
        let args = |a: &[&str]| a.iter().map(OsString::from).collect::<Vec<_>>().into_iter();
        assert!(flag_in(args(&["--discord-token", "x"]), "--discord-token"));
        assert!(flag_in(args(&["--discord-token=x"]), "--discord-token"));
        assert!(!flag_in(
            args(&["--discord-token-file", "/run/t"]),
            "--discord-token"
        ));
        assert!(!flag_in(
            args(&["--", "--discord-token"]),
            "--discord-token"
        ));
    }
}
