//! The ledger's local file: where entries go while the database is down.
//!
//! Each entry is a line, `L <channel> <id>` for a lost message and
//! `R <channel> <id>` for a message to read back. A save sets the file aside
//! (`<path>.saving`) and new entries go to a fresh one; once PostgreSQL holds
//! the entries the set-aside file is removed. At start both are replayed. The
//! file is bounded ([`FILE_LIMIT`]): past it, entries stay in memory only and
//! are counted. A line that does not parse is skipped with a warning.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use super::Entry;

/// Largest ledger file, in bytes (about 16 bytes a line at most 40: the
/// refetch limit of 100 000 ids takes under 4 MiB).
pub const FILE_LIMIT: u64 = 16 * 1024 * 1024;

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
    pub(super) fn begin_save(&self) -> bool {
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
    pub(super) fn end_save(&self) {
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
