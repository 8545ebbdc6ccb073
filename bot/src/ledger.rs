//! Where the gap ledger ([`crate::gaps`]) survives a restart.
//!
//! Entries are made when the outage buffer is full, that is while the
//! database is down, so they cannot go to PostgreSQL at once. Each one is
//! appended to a local file first (a line `L <channel> <id>` for a lost
//! message, `R <channel> <id>` for a message to read back); when the
//! database answers again the whole ledger is written to `gap_losses` and
//! `gap_refetch` in one transaction and the file is emptied. A backfill that
//! finished with an entry deletes its row. At start, the file (and a
//! `.saving` file a crash left halfway through a save) is replayed into
//! memory, and the rows in PostgreSQL are read back once it answers: a bot
//! killed during a long outage forgets nothing it had written down.
//!
//! The file is bounded ([`FILE_LIMIT`]): past it, entries stay in memory only
//! and are counted. A line that does not parse is skipped with a warning.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use sea_orm::{
    ConnectionTrait as _, DatabaseConnection, DbBackend, DbErr, Statement, TransactionTrait as _,
};

/// Largest ledger file, in bytes (about 16 bytes a line at most 40: the
/// refetch limit of 100 000 ids takes under 4 MiB).
pub const FILE_LIMIT: u64 = 16 * 1024 * 1024;

/// One ledger entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// A message of `channel` with this id was dropped from memory.
    Loss { channel: i64, id: i64 },
    /// The edit or delete of message `id` of `channel` was dropped.
    Refetch { channel: i64, id: i64 },
}

impl Entry {
    fn line(self) -> String {
        match self {
            Entry::Loss { channel, id } => format!("L {channel} {id}\n"),
            Entry::Refetch { channel, id } => format!("R {channel} {id}\n"),
        }
    }

    fn parse(line: &str) -> Option<Entry> {
        let mut parts = line.split_whitespace();
        let kind = parts.next()?;
        let channel = parts.next()?.parse().ok()?;
        let id = parts.next()?.parse().ok()?;
        if parts.next().is_some() {
            return None;
        }
        match kind {
            "L" => Some(Entry::Loss { channel, id }),
            "R" => Some(Entry::Refetch { channel, id }),
            _ => None,
        }
    }
}

/// The local file of a ledger.
#[derive(Debug)]
pub struct LedgerFile {
    path: PathBuf,
    state: Mutex<FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    file: Option<File>,
    len: u64,
    full_warned: bool,
}

impl LedgerFile {
    /// A ledger file at `path` (created on the first entry).
    pub fn new(path: PathBuf) -> Self {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Self {
            path,
            state: Mutex::new(FileState {
                len,
                ..FileState::default()
            }),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn saving_path(&self) -> PathBuf {
        let mut name = self.path.as_os_str().to_owned();
        name.push(".saving");
        PathBuf::from(name)
    }

    /// Appends an entry. Returns false when it could not be written (the
    /// file is full or the disk refused), so the entry lives in memory only.
    pub fn append(&self, entry: Entry) -> bool {
        let line = entry.line();
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state.len + line.len() as u64 > FILE_LIMIT {
            if !state.full_warned {
                state.full_warned = true;
                tracing::warn!(path = %self.path.display(), limit = FILE_LIMIT, "gap ledger file full: further entries are kept in memory only until the database answers");
            }
            return false;
        }
        if state.file.is_none() {
            match OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
            {
                Ok(file) => state.file = Some(file),
                Err(error) => {
                    tracing::warn!(path = %self.path.display(), %error, "cannot open the gap ledger file; entry kept in memory only");
                    return false;
                }
            }
        }
        let written = state
            .file
            .as_mut()
            .is_some_and(|file| file.write_all(line.as_bytes()).is_ok());
        if written {
            state.len += line.len() as u64;
        } else {
            state.file = None;
        }
        written
    }

    /// Reads every entry of the file and of a save a crash interrupted.
    pub fn replay(&self) -> Vec<Entry> {
        let mut entries = Vec::new();
        for path in [self.saving_path(), self.path.clone()] {
            let Ok(file) = File::open(&path) else {
                continue;
            };
            for (number, line) in BufReader::new(file).lines().enumerate() {
                let Ok(line) = line else { break };
                match Entry::parse(&line) {
                    Some(entry) => entries.push(entry),
                    None if line.trim().is_empty() => {}
                    None => {
                        tracing::warn!(path = %path.display(), line = number + 1, "gap ledger line does not parse; skipped")
                    }
                }
            }
        }
        entries
    }

    /// Starts a save: the file so far is set aside (new entries go to a
    /// fresh one). Returns false when there was nothing to set aside.
    fn begin_save(&self) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let saving = self.saving_path();
        if saving.exists() {
            // A save that failed earlier: it is still set aside, and its
            // entries are still in memory, so this save covers them too.
            if self.path.exists() {
                let _ = append_file(&self.path, &saving);
                let _ = std::fs::remove_file(&self.path);
            }
        } else if std::fs::rename(&self.path, &saving).is_err() {
            return false;
        }
        state.file = None;
        state.len = 0;
        state.full_warned = false;
        true
    }

    /// Ends a save: what was set aside is now in PostgreSQL.
    fn end_save(&self) {
        let _ = std::fs::remove_file(self.saving_path());
    }
}

/// Appends the contents of `from` to `to`.
fn append_file(from: &Path, to: &Path) -> std::io::Result<()> {
    let data = std::fs::read(from)?;
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(to)?
        .write_all(&data)
}

/// Writes `entries` to PostgreSQL in one transaction (the smallest loss per
/// channel wins; a message to read back is kept once), then empties the
/// file's set-aside part. `entries` must be taken after [`begin_save`]
/// (see [`crate::gaps::Gaps::save`]).
pub(crate) async fn save(
    db: &DatabaseConnection,
    file: Option<&LedgerFile>,
    set_aside: bool,
    entries: &[Entry],
) -> Result<(), DbErr> {
    let (mut loss_channels, mut loss_ids, mut channels, mut ids) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for entry in entries {
        match *entry {
            Entry::Loss { channel, id } => {
                loss_channels.push(channel);
                loss_ids.push(id);
            }
            Entry::Refetch { channel, id } => {
                channels.push(channel);
                ids.push(id);
            }
        }
    }
    let txn = db.begin().await?;
    if !loss_ids.is_empty() {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO gap_losses (channel_id, floor_id) \
             SELECT channel_id, min(floor_id) FROM unnest($1::bigint[], $2::bigint[]) AS t(channel_id, floor_id) \
             GROUP BY channel_id \
             ON CONFLICT (channel_id) DO UPDATE SET floor_id = least(gap_losses.floor_id, excluded.floor_id)",
            [loss_channels.into(), loss_ids.into()],
        ))
        .await?;
    }
    if !ids.is_empty() {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO gap_refetch (channel_id, message_id) \
             SELECT * FROM unnest($1::bigint[], $2::bigint[]) ON CONFLICT DO NOTHING",
            [channels.into(), ids.into()],
        ))
        .await?;
    }
    txn.commit().await?;
    if set_aside && let Some(file) = file {
        file.end_save();
    }
    Ok(())
}

/// Sets the file aside for a save (see [`LedgerFile::begin_save`]).
pub(crate) fn begin_save(file: Option<&LedgerFile>) -> bool {
    file.is_some_and(LedgerFile::begin_save)
}

/// Every entry stored in PostgreSQL.
pub(crate) async fn load(db: &DatabaseConnection) -> Result<Vec<Entry>, DbErr> {
    let rows = db
        .query_all_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT 'L' AS kind, channel_id, floor_id AS id FROM gap_losses \
             UNION ALL SELECT 'R', channel_id, message_id FROM gap_refetch",
        ))
        .await?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let kind: String = row.try_get_by("kind")?;
        let channel: i64 = row.try_get_by("channel_id")?;
        let id: i64 = row.try_get_by("id")?;
        entries.push(if kind == "L" {
            Entry::Loss { channel, id }
        } else {
            Entry::Refetch { channel, id }
        });
    }
    Ok(entries)
}

/// A backfill recovered the channel's loss `id`: its row goes.
pub(crate) async fn settle_loss(
    db: &DatabaseConnection,
    channel: i64,
    id: i64,
) -> Result<(), DbErr> {
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "DELETE FROM gap_losses WHERE channel_id = $1 AND floor_id >= $2",
        [channel.into(), id.into()],
    ))
    .await
    .map(|_| ())
}

/// A backfill read these messages back: their rows go.
pub(crate) async fn settle_refetch(
    db: &DatabaseConnection,
    channel: i64,
    ids: &[i64],
) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    db.execute_raw(Statement::from_sql_and_values(
        DbBackend::Postgres,
        "DELETE FROM gap_refetch WHERE channel_id = $1 AND message_id = ANY($2)",
        [channel.into(), ids.to_vec().into()],
    ))
    .await
    .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_their_lines() {
        for entry in [
            Entry::Loss { channel: 1, id: 2 },
            Entry::Refetch {
                channel: i64::MAX,
                id: 3,
            },
        ] {
            assert_eq!(Entry::parse(entry.line().trim_end()), Some(entry));
        }
        assert_eq!(Entry::parse("X 1 2"), None);
        assert_eq!(Entry::parse("L 1"), None);
        assert_eq!(Entry::parse("L 1 2 3"), None);
        assert_eq!(Entry::parse("R a 2"), None);
    }

    #[test]
    fn a_file_replays_what_was_appended_and_a_save_in_progress() {
        let dir = std::env::temp_dir().join(format!("aplus-ledger-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("ledger");
        let file = LedgerFile::new(path.clone());
        assert!(file.append(Entry::Loss { channel: 1, id: 10 }));
        assert!(file.begin_save());
        // Written after the save began: in the fresh file.
        assert!(file.append(Entry::Refetch { channel: 1, id: 11 }));
        std::fs::write(dir.join("ledger.saving"), "L 1 10\ngarbage\n").expect("write");
        let again = LedgerFile::new(path);
        assert_eq!(
            again.replay(),
            vec![
                Entry::Loss { channel: 1, id: 10 },
                Entry::Refetch { channel: 1, id: 11 }
            ]
        );
        file.end_save();
        assert_eq!(again.replay(), vec![Entry::Refetch { channel: 1, id: 11 }]);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
