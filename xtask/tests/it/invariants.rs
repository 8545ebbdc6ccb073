//! Architecture invariants that a look at the workspace itself can check:
//! who writes `events` and `inbox`, which crate may depend on which, and how
//! long a source file may grow. Each test names the invariant as
//! ARCHITECTURE.md phrases it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::Value;

/// The longest a source file may be, tests included.
const MAX_LINES: usize = 600;

/// Files outside `outbox/src` that may write `events` or `inbox`, each with
/// the reason. Keep it short: a new entry needs as good a reason.
const WRITERS_ALLOWED: &[(&str, &str)] = &[(
    "loadbench/src/yardstick.rs",
    "pgbench scripts that replay the bot's write as it was at a named commit: a yardstick \
     must not follow the code it measures",
)];

/// The service crates: each runs as a process of its own and talks to the
/// others only through PostgreSQL.
const SERVICES: [&str; 3] = ["bot", "worker", "reconciler"];

/// Crates that exist for development only (tests, simulations, benchmarks,
/// project tasks); no service may need one to build or run.
const DEVELOPMENT_ONLY: [&str; 6] = [
    "discord-sim",
    "testkit",
    "chaos",
    "loadbench",
    "cluster",
    "xtask",
];

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace");
    root.canonicalize()
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
}

/// Every `.rs` file under `dir`, skipping `target` and hidden directories.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if path.is_dir() {
                if name != "target" && !name.starts_with('.') {
                    pending.push(path);
                }
            } else if name.ends_with(".rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(path: &Path, root: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

/// `cargo metadata` of the workspace's own packages.
fn metadata() -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "metadata",
            "--format-version",
            "1",
            "--no-deps",
            "--offline",
        ])
        .current_dir(workspace_root())
        .output()
        .expect("running cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

/// A workspace package: its name, its directory, and its dependencies on
/// other workspace packages as (name, kind), kind being `normal`, `build`
/// or `dev`.
struct Package {
    name: String,
    dir: PathBuf,
    deps: Vec<(String, String)>,
}

fn packages() -> Vec<Package> {
    let metadata = metadata();
    let list = metadata["packages"].as_array().expect("a package list");
    let names: BTreeSet<&str> = list.iter().filter_map(|p| p["name"].as_str()).collect();
    list.iter()
        .map(|p| Package {
            name: p["name"].as_str().expect("a package name").to_owned(),
            dir: Path::new(p["manifest_path"].as_str().expect("a manifest path"))
                .parent()
                .expect("a manifest lives in a directory")
                .to_path_buf(),
            deps: p["dependencies"]
                .as_array()
                .expect("a dependency list")
                .iter()
                .filter_map(|d| {
                    let name = d["name"].as_str()?;
                    names.contains(name).then(|| {
                        let kind = d["kind"].as_str().unwrap_or("normal");
                        (name.to_owned(), kind.to_owned())
                    })
                })
                .collect(),
        })
        .collect()
}

/// A SQL write of rows of `events` or `inbox`, in any case and spacing.
static SQL_WRITE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)\b(insert\s+into|update|delete\s+from|copy|merge\s+into|truncate(\s+table)?)\s+("?public"?\s*\.\s*)?"?(events|inbox)\b"#,
    )
    .expect("a valid pattern")
});

/// A sea-orm write through the `events` or `inbox` entity.
static ENTITY_WRITE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(events|inbox)\s*::\s*(ActiveModel|Entity\s*::\s*(insert|update|delete)\w*)")
        .expect("a valid pattern")
});

/// The part of a source file that is built into a library or binary: a
/// `#[cfg(test)]` module written inline ends it (they come last, by habit).
fn non_test_code(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let end = lines
        .windows(2)
        .position(|w| {
            w[0].trim() == "#[cfg(test)]"
                && w[1].trim_start().starts_with("mod ")
                && w[1].ends_with('{')
        })
        .unwrap_or(lines.len());
    // A string continued on the next line (`"INSERT INTO \` then `events"`)
    // reads as words apart; the line breaks stay, for the line numbers.
    lines[..end].join("\n").replace("\\\n", " \n")
}

/// **Architecture Invariant:** only `outbox` writes SQL against `events`
/// and `inbox`; other crates may read them, every write goes through
/// `outbox`.
///
/// Scanned: the library and binary code of every workspace crate, that is
/// every `.rs` file under a crate's `src/` except `outbox/src`, files named
/// `tests.rs` or under a `tests/` directory there, and the inline
/// `#[cfg(test)]` module that ends a file. A write is SQL text (embedded
/// strings included) that inserts into, updates, deletes from, merges into,
/// truncates or copies into `events` or `inbox`, or a sea-orm write through
/// their entities (`events::ActiveModel`, `inbox::Entity::insert...`).
///
/// Not scanned, on purpose: test code (each crate's `tests/`, unit-test
/// modules), which may corrupt rows to prove a failure is caught (the role
/// tests write `events` to see the server refuse). `migration/src` is
/// scanned like any crate: its DDL and its grants write no rows and match
/// nothing, but a migration that inserted rows would count. The few other
/// files allowed are in [`WRITERS_ALLOWED`], each with its reason.
#[test]
fn only_outbox_writes_sql_against_events_and_inbox() {
    let root = workspace_root();
    let mut writes = Vec::new();
    let mut allowed_seen = BTreeSet::new();
    for package in packages() {
        if package.name == "outbox" {
            continue;
        }
        let src = package.dir.join("src");
        if !src.is_dir() {
            continue;
        }
        for file in rust_files(&src) {
            let path = relative(&file, &root);
            let in_tests = file
                .strip_prefix(&src)
                .is_ok_and(|p| p.components().any(|c| c.as_os_str() == "tests"))
                || file.file_name().is_some_and(|n| n == "tests.rs");
            if in_tests {
                continue;
            }
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let code = non_test_code(&text);
            let found: Vec<String> = SQL_WRITE
                .find_iter(&code)
                .chain(ENTITY_WRITE.find_iter(&code))
                .map(|m| {
                    let line = code[..m.start()].matches('\n').count() + 1;
                    format!(
                        "{path}:{line}: {}",
                        m.as_str().split_whitespace().collect::<Vec<_>>().join(" ")
                    )
                })
                .collect();
            if found.is_empty() {
                continue;
            }
            if WRITERS_ALLOWED.iter().any(|(allowed, _)| *allowed == path) {
                allowed_seen.insert(path);
            } else {
                writes.extend(found);
            }
        }
    }
    assert!(
        writes.is_empty(),
        "only outbox writes SQL against events and inbox; these write them directly \
         (go through outbox, or add the file to WRITERS_ALLOWED with a reason):\n{}",
        writes.join("\n")
    );
    let stale: Vec<&str> = WRITERS_ALLOWED
        .iter()
        .map(|(path, _)| *path)
        .filter(|path| !allowed_seen.contains(*path))
        .collect();
    assert!(
        stale.is_empty(),
        "allowed to write events or inbox but no longer does (remove the entry): {stale:?}"
    );
}

/// The scan finds what it is meant to find, and not DDL or grants.
#[test]
fn the_events_and_inbox_scan_tells_writes_from_reads_and_ddl() {
    for write in [
        "INSERT INTO events (id) VALUES ($1)",
        "insert into public.inbox (event_id)",
        "UPDATE inbox SET status = 'dead'",
        "DELETE FROM \"events\" WHERE id = $1",
        "COPY events FROM STDIN",
        "TRUNCATE inbox",
    ] {
        assert!(SQL_WRITE.is_match(write), "{write}");
    }
    for harmless in [
        "SELECT * FROM events",
        "CREATE TABLE events (id uuid)",
        "GRANT SELECT, INSERT, UPDATE ON events TO aplus_bot",
        "INSERT INTO events_archive SELECT 1",
        "UPDATE messages SET events = 1",
        "ON CONFLICT DO UPDATE SET inbox_id = 1",
    ] {
        assert!(!SQL_WRITE.is_match(harmless), "{harmless}");
    }
    assert!(ENTITY_WRITE.is_match("entity::events::ActiveModel {"));
    assert!(ENTITY_WRITE.is_match("inbox::Entity::insert_many(rows)"));
    assert!(!ENTITY_WRITE.is_match("events::Entity::find()"));
    let continued = non_test_code("let q = \"INSERT INTO \\\n     events (id)\";");
    assert!(SQL_WRITE.is_match(&continued), "{continued}");
    let tested = non_test_code("fn a() {}\n#[cfg(test)]\nmod tests {\n \"DELETE FROM inbox\"\n}\n");
    assert!(!SQL_WRITE.is_match(&tested), "{tested}");
}

/// **Architecture Invariant:** the services never call each other; they
/// talk only through PostgreSQL. So a service crate (`bot`, `worker`,
/// `reconciler`) depends on no other service crate, and on no
/// development-only crate (`discord-sim`, `testkit`, `chaos`, ...) outside
/// `[dev-dependencies]`.
///
/// And `outbox` is the leaf contract crate: among the workspace's crates it
/// depends only on `service` (the shared retry loop and backoff), outside
/// `[dev-dependencies]`.
#[test]
fn services_depend_on_no_other_service_and_outbox_only_on_service() {
    let mut broken = Vec::new();
    for package in packages() {
        let built_with = package
            .deps
            .iter()
            .filter(|(_, kind)| kind != "dev")
            .map(|(name, kind)| (name.as_str(), kind.as_str()));
        for (dep, kind) in built_with {
            let service = SERVICES.contains(&package.name.as_str());
            if service && (SERVICES.contains(&dep) || DEVELOPMENT_ONLY.contains(&dep)) {
                broken.push(format!(
                    "the service {} depends on {dep} ({kind})",
                    package.name
                ));
            }
            if package.name == "outbox" && dep != "service" {
                broken.push(format!("outbox depends on {dep} ({kind})"));
            }
        }
    }
    assert!(broken.is_empty(), "{}", broken.join("\n"));
}

/// **What to grow out of:** "a file that does four jobs: one concept per
/// file, under about 600 lines". No `.rs` file of the workspace (tests
/// included, `target/` and hidden directories skipped) is longer than
/// [`MAX_LINES`].
#[test]
fn no_source_file_is_longer_than_600_lines() {
    let root = workspace_root();
    let mut long: Vec<String> = rust_files(&root)
        .into_iter()
        .filter_map(|file| {
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let lines = text.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", relative(&file, &root)))
        })
        .collect();
    long.sort();
    assert!(
        long.is_empty(),
        "split these by concept, under {MAX_LINES} lines each:\n{}",
        long.join("\n")
    );
}
