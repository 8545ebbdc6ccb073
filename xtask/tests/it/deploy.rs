//! The deployment files as an operator installs them: every systemd unit is
//! hardened (`systemd-analyze security` rates it 2.0 or lower), each service
//! has its own environment file and only the bot gets the Discord token, a
//! configuration error is never restarted in a loop, and every stop deadline
//! fits inside the process manager's wait.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Highest exposure `systemd-analyze security` may give a unit.
const MAX_EXPOSURE: f64 = 2.0;

/// The services' shutdown deadlines (`BOT_SHUTDOWN_TIMEOUT`,
/// `WORKER_SHUTDOWN_TIMEOUT` defaults); the reconciler finishes its pass,
/// whose statements stop after 30 s at most.
const DEADLINES: [(&str, u64); 3] = [("bot", 10), ("worker", 20), ("reconciler", 30)];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn units() -> Vec<PathBuf> {
    let mut units: Vec<PathBuf> = std::fs::read_dir(deploy().join("systemd"))
        .expect("deploy/systemd")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "service"))
        .collect();
    units.sort();
    assert_eq!(units.len(), 4, "{units:?}");
    units
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `systemd-analyze`, installed (Debian's `systemd` package) when missing
/// and we may.
fn systemd_analyze() -> PathBuf {
    let path = PathBuf::from("/usr/bin/systemd-analyze");
    if path.is_file() {
        return path;
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    assert!(
        root && Path::new("/usr/bin/apt-get").is_file(),
        "this test needs systemd-analyze: install systemd (Debian: apt-get install systemd)"
    );
    for args in [
        &["update", "-qq"][..],
        &["install", "-y", "-qq", "--no-install-recommends", "systemd"][..],
    ] {
        let status = Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .expect("apt-get runs");
        assert!(status.success(), "apt-get {args:?} failed");
    }
    assert!(
        path.is_file(),
        "systemd was installed but {} is missing",
        path.display()
    );
    path
}

/// The value of `key=` in an INI-style section text (the last one wins).
fn values<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

#[test]
fn every_systemd_unit_rates_2_0_or_lower_in_systemd_analyze_security() {
    let analyze = systemd_analyze();
    let mut scores = Vec::new();
    for unit in units() {
        let output = Command::new(&analyze)
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&unit)
            .output()
            .expect("systemd-analyze runs");
        let text = String::from_utf8_lossy(&output.stdout);
        let score: f64 = text
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no exposure level for {}: {text}{}",
                    unit.display(),
                    String::from_utf8_lossy(&output.stderr)
                )
            });
        println!("{}: {score}", unit.display());
        scores.push((unit, score));
    }
    for (unit, score) in &scores {
        assert!(
            *score <= MAX_EXPOSURE,
            "{} is rated {score}, above {MAX_EXPOSURE}",
            unit.display()
        );
    }
}

#[test]
fn each_service_has_its_own_environment_file_and_only_the_bot_gets_the_token() {
    for unit in units() {
        let text = read(&unit);
        let name = unit.file_stem().and_then(|s| s.to_str()).expect("name");
        let service = name.trim_start_matches("aplus-");
        assert_eq!(
            values(&text, "EnvironmentFile"),
            [format!("/etc/aplus/{service}.env")],
            "{name}"
        );
        let example = read(&deploy().join(format!("env/{service}.env.example")));
        assert!(
            !example.contains("DISCORD_TOKEN="),
            "{service}.env holds the token"
        );
        let credentials = values(&text, "LoadCredential");
        if service == "bot" {
            assert_eq!(credentials, ["discord-token:/etc/aplus/discord-token"]);
        } else {
            assert!(credentials.is_empty(), "{name}: {credentials:?}");
        }
    }
    let conf = read(&deploy().join("supervisord.conf"));
    for (program, section) in sections(&conf) {
        let environment = values(section, "environment").join(",");
        if program == "bot" {
            assert!(environment.contains("DISCORD_TOKEN_FILE"), "{environment}");
        } else {
            assert!(
                !environment.contains("DISCORD_TOKEN"),
                "{program}: {environment}"
            );
        }
        if ["bot", "worker", "reconciler"].contains(&program) {
            assert!(
                environment.contains(&format!("aplus_{program}.url")),
                "{program} logs in as its own role: {environment}"
            );
        }
    }
}

/// `[program:x]` sections of supervisord.conf.
fn sections(conf: &str) -> Vec<(&str, &str)> {
    conf.split("\n[program:")
        .skip(1)
        .map(|s| s.split_once(']').expect("a section header"))
        .collect()
}

#[test]
fn no_process_manager_restarts_a_service_after_a_configuration_error() {
    for unit in units() {
        let text = read(&unit);
        if values(&text, "Type") == ["oneshot"] {
            continue;
        }
        assert_eq!(
            values(&text, "RestartPreventExitStatus"),
            ["78"],
            "{}",
            unit.display()
        );
    }
    let conf = read(&deploy().join("supervisord.conf"));
    for (program, section) in sections(&conf) {
        if program == "discord-sim" {
            continue;
        }
        assert_eq!(values(section, "autorestart"), ["unexpected"], "{program}");
        assert_eq!(values(section, "exitcodes"), ["78"], "{program}");
        // Exiting within startsecs would be retried whatever the status.
        assert_eq!(values(section, "startsecs"), ["0"], "{program}");
    }
}

#[test]
fn every_shutdown_deadline_fits_inside_the_process_managers_wait() {
    let conf = read(&deploy().join("supervisord.conf"));
    let programs = sections(&conf);
    for (service, deadline) in DEADLINES {
        let unit = read(&deploy().join(format!("systemd/aplus-{service}.service")));
        let timeout: u64 = values(&unit, "TimeoutStopSec")[0].parse().expect("seconds");
        assert!(
            deadline < timeout,
            "{service}: {deadline} s vs TimeoutStopSec={timeout}"
        );
        let section = programs
            .iter()
            .find(|(p, _)| *p == service)
            .map(|(_, s)| *s)
            .expect("a program section");
        let wait: u64 = values(section, "stopwaitsecs")[0].parse().expect("seconds");
        assert!(
            deadline < wait,
            "{service}: {deadline} s vs stopwaitsecs={wait}"
        );
    }
}
