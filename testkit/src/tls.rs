//! A throwaway certificate authority and a server certificate it signed, for
//! tests that run PostgreSQL with TLS and the services with
//! `sslmode=verify-full`.
//!
//! Made with the `openssl` command (installed from Debian's `openssl` when
//! missing and the tests run as root), in a temporary directory removed on
//! drop. The server's key is handed to the user the test server runs as
//! (`postgres` when the tests run as root) with mode 0600, which PostgreSQL
//! insists on.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A certificate authority, a server certificate for 127.0.0.1 and
/// `localhost` signed by it, and a second authority that signed nothing.
#[derive(Debug)]
pub struct TestCa {
    dir: PathBuf,
    /// The authority's certificate: what `sslrootcert` names.
    pub ca_cert: PathBuf,
    /// The server's certificate (`ssl_cert_file`).
    pub server_cert: PathBuf,
    /// The server's private key (`ssl_key_file`).
    pub server_key: PathBuf,
    /// An unrelated authority's certificate: verifying against it must fail.
    pub other_ca_cert: PathBuf,
}

fn openssl() -> Result<(), String> {
    crate::packages::ensure("openssl", "openssl").map(|_| ())
}

fn run(dir: &Path, args: &[&str]) -> Result<(), String> {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run openssl: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A self-signed authority `name` in `dir`: `<name>.crt` and `<name>.key`.
fn authority(dir: &Path, name: &str) -> Result<(), String> {
    run(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            &format!("{name}.key"),
            "-out",
            &format!("{name}.crt"),
        ],
    )
}

impl TestCa {
    /// Makes the authorities and the server certificate. Panics, failing the
    /// test, when it cannot.
    pub fn generate() -> TestCa {
        Self::try_generate().unwrap_or_else(|e| panic!("cannot make test certificates: {e}"))
    }

    fn try_generate() -> Result<TestCa, String> {
        openssl()?;
        let dir = std::env::temp_dir().join(format!(
            "aplus-tls-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let ca = TestCa {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
            other_ca_cert: dir.join("other-ca.crt"),
            dir,
        };
        authority(&ca.dir, "ca")?;
        authority(&ca.dir, "other-ca")?;
        run(
            &ca.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-subj",
                "/CN=127.0.0.1",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
            ],
        )?;
        fs::write(
            ca.dir.join("server.ext"),
            "subjectAltName = IP:127.0.0.1, DNS:localhost\n\
             basicConstraints = CA:FALSE\n\
             keyUsage = critical, digitalSignature, keyEncipherment\n\
             extendedKeyUsage = serverAuth\n",
        )
        .map_err(|e| e.to_string())?;
        run(
            &ca.dir,
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                "server.ext",
                "-out",
                "server.crt",
            ],
        )?;
        // Readable by the server user only, as PostgreSQL requires of a key.
        fs::set_permissions(&ca.server_key, fs::Permissions::from_mode(0o600))
            .map_err(|e| e.to_string())?;
        if nix::unistd::Uid::effective().is_root()
            && let Some(postgres) = nix::unistd::User::from_name("postgres").ok().flatten()
        {
            for path in [&ca.dir, &ca.server_key, &ca.server_cert] {
                std::os::unix::fs::chown(path, Some(postgres.uid.as_raw()), None)
                    .map_err(|e| format!("chown {}: {e}", path.display()))?;
            }
        }
        Ok(ca)
    }

    /// Server settings that turn TLS on with the server certificate.
    pub fn server_settings(&self) -> Vec<(&'static str, String)> {
        vec![
            ("ssl", "on".to_owned()),
            ("ssl_cert_file", self.server_cert.display().to_string()),
            ("ssl_key_file", self.server_key.display().to_string()),
        ]
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}
