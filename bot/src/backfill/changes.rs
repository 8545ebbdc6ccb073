//! What a history page reveals that nobody heard: the decision alone, with no
//! database and no clock, so its rules are tested directly.
//!
//! A page covers a closed id range: Discord lists every message of it that it
//! still has. Compared with what is stored in that range, it shows an edit
//! newer than the stored one (never an older one, so a stale page cannot undo
//! a live edit; `record_edit` itself also refuses a version older than the
//! stored one, should a live edit land meanwhile) and a delete for a stored
//! message the page no longer lists.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};

use crate::convert::Update;
use crate::ingest::Write;

/// The writes that bring the stored messages of `channel` in a page's range
/// up to date with the page: first the newer edits, in page order, then a
/// delete for each stored message the page did not list, ascending.
///
/// `stored` maps each stored, not deleted message id of the range to its
/// edit time; `listed` is every id the page listed; `edited` are the page's
/// messages that carry an edit time.
pub fn changes(
    channel: i64,
    stored: &HashMap<i64, Option<DateTime<Utc>>>,
    listed: &HashSet<i64>,
    edited: Vec<Update>,
) -> Vec<Write> {
    let mut writes = Vec::new();
    for update in edited {
        let newer = match (stored.get(&update.edit.id), update.edit.edited_at) {
            (Some(Some(stored_at)), Some(at)) => at > *stored_at,
            (Some(None), Some(_)) => true,
            _ => false,
        };
        if newer {
            writes.push(Write::Edit(update));
        }
    }
    let mut gone: Vec<i64> = stored
        .keys()
        .filter(|id| !listed.contains(id))
        .copied()
        .collect();
    gone.sort_unstable();
    writes.extend(gone.into_iter().map(|id| Write::Delete {
        id,
        channel_id: channel,
    }));
    writes
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;
    use outbox::record::MessageEdit;

    fn at(minute: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 10, minute, 0)
            .single()
            .expect("a valid time")
    }

    fn edited(id: i64, minute: u32) -> Update {
        Update {
            channel_id: 7,
            edit: MessageEdit {
                id,
                content: Some(format!("v{minute}")),
                edited_at: Some(at(minute)),
                embeds: None,
            },
            full: None,
        }
    }

    fn edit_ids(writes: &[Write]) -> Vec<i64> {
        writes
            .iter()
            .filter_map(|w| match w {
                Write::Edit(update) => Some(update.edit.id),
                _ => None,
            })
            .collect()
    }

    fn delete_ids(writes: &[Write]) -> Vec<i64> {
        writes
            .iter()
            .filter_map(|w| match w {
                Write::Delete { id, channel_id: 7 } => Some(*id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn only_an_edit_newer_than_the_stored_one_is_applied() {
        let stored = HashMap::from([(1, Some(at(10))), (2, Some(at(10))), (3, None)]);
        let listed = HashSet::from([1, 2, 3]);
        let writes = changes(
            7,
            &stored,
            &listed,
            vec![edited(1, 20), edited(2, 5), edited(3, 1), edited(4, 30)],
        );
        // 1 is newer, 2 older (a stale page), 3 never edited before, 4 not
        // stored (its create is the page's, not an edit's, business).
        assert_eq!(edit_ids(&writes), [1, 3]);
        assert!(delete_ids(&writes).is_empty());
    }

    #[test]
    fn a_stored_message_the_page_does_not_list_is_deleted_in_id_order() {
        let stored = HashMap::from([(5, None), (9, None), (2, None), (4, None)]);
        let listed = HashSet::from([4, 100]);
        let writes = changes(7, &stored, &listed, Vec::new());
        assert_eq!(delete_ids(&writes), [2, 5, 9]);
        assert_eq!(writes.len(), 3);
    }

    #[test]
    fn edits_come_before_deletes_and_an_unchanged_page_writes_nothing() {
        let stored = HashMap::from([(1, Some(at(10))), (2, None)]);
        let writes = changes(7, &stored, &HashSet::from([1]), vec![edited(1, 11)]);
        assert!(matches!(writes[0], Write::Edit(_)));
        assert!(matches!(writes[1], Write::Delete { id: 2, .. }));

        let same = changes(7, &stored, &HashSet::from([1, 2]), vec![edited(1, 10)]);
        assert!(same.is_empty(), "{same:?}");
    }
}
