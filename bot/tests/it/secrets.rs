//! The `bot` binary at `RUST_LOG=trace` never writes its Discord token or its
//! database password, in any encoding, through IDENTIFY, a RESUME, REST calls
//! and a shutdown; secrets are read from files; a token on the command line
//! is refused.

use std::process::Command;
use std::time::Duration;

use crate::common::{WAIT, World, wait_count, world};
use discord_sim::{GatewayFault, NewMessage, Target};
use testkit::TestDb;
use testkit::child::Captured;
use testkit::secrets::{assert_no_leaks, leaks};

/// Shaped like a real token (dot-separated base64 parts).
const TOKEN: &str = "MTk4NjIy.canary-7f3a9c1e.5b2d_Tok-en";
/// Holds characters a URL must percent-encode.
const PASSWORD: &str = "pw/9d4e+1b@c7:f2";

fn bot_command(w: &World) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_bot"));
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("DISCORD_API_URL", w.sim.api_url())
        .env(
            "APLUS_CHANNELS",
            w.channels
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(","),
        )
        .env("BOT_HTTP_LISTEN", "127.0.0.1:0")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("RUST_LOG", "trace");
    command
}

/// Fails with every place a secret shows.
fn assert_no_leak(logs: &str, secrets: &[&str]) {
    assert_no_leaks(logs, secrets);
    // Not vacuous: the run logged at trace level.
    assert!(logs.contains(" TRACE "), "trace level was on:\n{logs}");
    assert!(
        logs.lines().count() > 30,
        "only {} lines:\n{logs}",
        logs.lines().count()
    );
}

fn used_token(w: &World) -> bool {
    w.sim
        .rest_calls()
        .iter()
        .any(|c| c.token.as_deref() == Some(TOKEN))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_password_never_appear_in_trace_logs_through_identify_resume_and_rest() {
    let t = TestDb::new().await;
    let role = t.password_role(PASSWORD).await;
    let w = world(1).await;
    let channel = w.channels[0];
    let mut command = bot_command(&w);
    command
        .env("DISCORD_TOKEN", TOKEN)
        .env("DATABASE_URL", &role.userinfo_url);
    let bot = Captured::spawn(command);

    w.sim
        .wait_for_identifies(1, WAIT)
        .await
        .expect("the bot identifies");
    for i in 0..3 {
        w.sim
            .post(NewMessage::text(channel, format!("setup {i}")))
            .expect("posted");
    }
    wait_count(&t.db, "SELECT count(*) FROM messages", 3).await;
    let rest_before = w.sim.rest_calls().len();
    // A resumable close: serenity sends RESUME with the token, and the bot
    // backfills over REST.
    w.sim.inject(
        Target::All,
        GatewayFault::Close {
            code: 4000,
            reason: "Unknown error.".into(),
        },
    );
    w.sim.wait_for_resumes(1, WAIT).await.expect("a resume");
    w.sim
        .post(NewMessage::text(channel, "after the resume"))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 4).await;
    testkit::eventually(WAIT, "a backfill after the resume", || async {
        (w.sim.rest_calls().len() > rest_before).then_some(())
    })
    .await;
    let (status, logs) = bot.terminate(WAIT).await;

    assert!(status.success(), "exit {status:?}");
    assert!(used_token(&w), "the bot authenticated with the canary");
    assert_eq!(w.sim.stats().identifies, 1, "a resume, not a new session");
    assert_no_leak(&logs, &[TOKEN, PASSWORD]);
    assert!(logs.contains("gateway session ready"));
    w.sim.shutdown().await;
    t.drop_role(&role).await;
}

/// Runs the bot until it stored a message, with the password given one way.
async fn run_with_password(t: &TestDb, configure: impl FnOnce(&mut Command)) -> String {
    let w = world(1).await;
    let mut command = bot_command(&w);
    command.env("DISCORD_TOKEN", TOKEN);
    configure(&mut command);
    let bot = Captured::spawn(command);
    w.sim
        .wait_for_identifies(1, WAIT)
        .await
        .expect("the bot identifies");
    w.sim
        .post(NewMessage::text(w.channels[0], "setup"))
        .expect("posted");
    wait_count(&t.db, "SELECT count(*) FROM messages", 1).await;
    let (status, logs) = bot.terminate(WAIT).await;
    assert!(status.success(), "exit {status:?}");
    assert!(used_token(&w), "the bot authenticated with the canary");
    w.sim.shutdown().await;
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_the_url_query_never_appears_in_trace_logs() {
    let t = TestDb::new().await;
    let role = t.password_role(PASSWORD).await;
    let logs = run_with_password(&t, |c| {
        c.env("DATABASE_URL", &role.query_url);
    })
    .await;
    assert_no_leak(&logs, &[TOKEN, PASSWORD]);
    // The redacted URL is still logged, so an operator sees where it went.
    assert!(logs.contains(&role.name), "the user is logged");
    t.drop_role(&role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_password_in_pgpassword_never_appears_in_trace_logs() {
    let t = TestDb::new().await;
    let role = t.password_role(PASSWORD).await;
    let logs = run_with_password(&t, |c| {
        c.env("DATABASE_URL", &role.bare_url)
            .env("PGPASSWORD", &role.password);
    })
    .await;
    assert_no_leak(&logs, &[TOKEN, PASSWORD]);
    t.drop_role(&role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_and_database_url_are_read_from_files_and_never_logged() {
    let t = TestDb::new().await;
    let role = t.password_role(PASSWORD).await;
    let dir = std::env::temp_dir().join(format!("aplus-secrets-{}", t.name));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let token_file = dir.join("token");
    let url_file = dir.join("url");
    // Editors and `echo` end files with a newline; it is not part of the secret.
    std::fs::write(&token_file, format!("{TOKEN}\n")).expect("token file");
    std::fs::write(&url_file, format!("{}\n", role.userinfo_url)).expect("url file");

    let logs = run_with_password(&t, |c| {
        c.env_remove("DISCORD_TOKEN")
            .env("DISCORD_TOKEN_FILE", &token_file)
            .env("DATABASE_URL_FILE", &url_file);
    })
    .await;
    assert_no_leak(&logs, &[TOKEN, PASSWORD]);

    // systemd's LoadCredential=: files named after the secret in $CREDENTIALS_DIRECTORY.
    let credentials = dir.join("credentials");
    std::fs::create_dir_all(&credentials).expect("credentials dir");
    std::fs::copy(&token_file, credentials.join("discord-token")).expect("copy");
    std::fs::copy(&url_file, credentials.join("database-url")).expect("copy");
    let logs = run_with_password(&t, |c| {
        c.env_remove("DISCORD_TOKEN")
            .env("CREDENTIALS_DIRECTORY", &credentials);
    })
    .await;
    assert_no_leak(&logs, &[TOKEN, PASSWORD]);
    let _ = std::fs::remove_dir_all(&dir);
    t.drop_role(&role).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_on_the_command_line_is_refused() {
    let t = TestDb::new().await;
    let w = world(1).await;
    let mut command = bot_command(&w);
    command
        .env("DATABASE_URL", &t.url)
        .args(["--discord-token", TOKEN]);
    let (status, logs) = Captured::spawn(command).wait(Duration::from_secs(30)).await;
    assert!(!status.success(), "{logs}");
    assert!(logs.contains("DISCORD_TOKEN_FILE"), "{logs}");
    assert!(!used_token(&w), "the bot never connected with it");
    assert!(leaks(&logs, TOKEN).is_empty(), "{logs}");
    w.sim.shutdown().await;
}

#[test]
fn the_token_never_shows_in_debug_output() {
    let config = <bot::BotConfig as clap::Parser>::try_parse_from([
        "bot",
        "--database-url",
        "postgres://u:p@h/d",
        "--discord-token",
        TOKEN,
        "--channels",
        "1",
    ])
    .expect("parses");
    assert!(leaks(&format!("{config:?}"), TOKEN).is_empty());
    assert!(leaks(&format!("{config:#?}"), TOKEN).is_empty());
}
