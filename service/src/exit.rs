//! Exit statuses an operator and a process manager can act on.
//!
//! - 0: stopped as asked (SIGTERM, Ctrl-C).
//! - 1: failed for a reason a restart may fix (the database went away, an
//!   address was taken).
//! - [`USAGE`] (64, `EX_USAGE` of sysexits.h): the command line is wrong.
//!   clap would exit 2, which `reconciler diagnose` uses for "unhealthy".
//! - [`CONFIG`] (78, `EX_CONFIG`): the configuration cannot work (a missing
//!   variable, a URL that does not parse, a connection pooler in transaction
//!   mode, a token Discord rejects with close
//!   code 4004, intents it disallows with 4014). Restarting cannot fix it,
//!   so the process managers do not: systemd `RestartPreventExitStatus=78`,
//!   supervisord `autorestart=unexpected` with `exitcodes=78`.

use crate::pooler::SessionCheckError;
use crate::secret::SecretError;

/// `EX_USAGE`: a command-line usage error.
pub const USAGE: u8 = 64;

/// `EX_CONFIG`: a configuration error no restart can fix.
pub const CONFIG: u8 = 78;

/// Parses the command line; on a usage error prints clap's message and
/// exits [`USAGE`]. `--help` and `--version` print and exit 0.
pub fn parse_args<P: clap::Parser>() -> P {
    P::try_parse().unwrap_or_else(|error| exit_for(&error))
}

/// Exits as clap's `error` asks, but with [`USAGE`] instead of 2, or
/// [`CONFIG`] for a required value given nowhere: the services take every
/// value from the environment too, so under a process manager that is a
/// variable missing from the service's environment file.
pub fn exit_for(error: &clap::Error) -> ! {
    // Printing can only fail on a closed terminal; the status still tells.
    let _ = error.print();
    std::process::exit(status_for(error).into())
}

/// The status [`exit_for`] exits with.
pub fn status_for(error: &clap::Error) -> u8 {
    match error.kind() {
        _ if !error.use_stderr() => 0,
        clap::error::ErrorKind::MissingRequiredArgument => CONFIG,
        _ => USAGE,
    }
}

/// [`CONFIG`] when a cause of `error` is a configuration error (a secret
/// given nowhere or unreadable, a database URL that does not parse), else 1.
pub fn status_of(error: &(dyn std::error::Error + 'static)) -> u8 {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if e.downcast_ref::<SecretError>().is_some()
            || matches!(
                e.downcast_ref::<SessionCheckError>(),
                Some(SessionCheckError::Shared(_))
            )
            || matches!(
                e.downcast_ref::<sea_orm::sqlx::Error>(),
                Some(sea_orm::sqlx::Error::Configuration(_))
            )
        {
            return CONFIG;
        }
        cause = e.source();
    }
    1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_secret_is_a_configuration_error() {
        let missing = SecretError::Missing {
            variable: "DATABASE_URL",
            credential: "database-url",
        };
        let wrapped = anyhow::Error::from(sea_orm::sqlx::Error::Configuration(Box::new(missing)))
            .context("reading the database url");
        assert_eq!(status_of(wrapped.as_ref()), CONFIG);
    }

    #[derive(Debug, clap::Parser)]
    struct Flags {
        #[arg(long, env = "APLUS_EXIT_TEST_REQUIRED")]
        required: String,
    }

    #[test]
    fn a_missing_required_value_is_a_configuration_error_and_an_unknown_flag_a_usage_error() {
        use clap::Parser as _;
        let missing = Flags::try_parse_from(["x"]).expect_err("required");
        assert_eq!(status_for(&missing), CONFIG);
        let unknown =
            Flags::try_parse_from(["x", "--required", "a", "--nope"]).expect_err("unknown");
        assert_eq!(status_for(&unknown), USAGE);
        let help = Flags::try_parse_from(["x", "--help"]).expect_err("help");
        assert_eq!(status_for(&help), 0);
    }

    #[test]
    fn a_lost_database_is_not() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let wrapped = anyhow::Error::from(sea_orm::sqlx::Error::Io(io)).context("connecting");
        assert_eq!(status_of(wrapped.as_ref()), 1);
    }
}
