//! The bounded outage buffer: writes that failed because the database was
//! unreachable, kept in arrival order until it answers again.
//!
//! Bounded by count, so memory stays bounded however long the outage lasts.
//! When it is full, a new write is refused and the caller counts it: a
//! message dropped here is still in Discord's history, which the backfill
//! after the outage reads from the last stored id.

use std::collections::VecDeque;
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::ingest::Write;

/// Most messages merged into one transaction when draining.
pub const DRAIN_BATCH: usize = 100;

/// A bounded FIFO of writes.
#[derive(Debug)]
pub struct Buffer {
    queue: Mutex<VecDeque<Write>>,
    capacity: usize,
}

impl Buffer {
    /// A buffer holding at most `capacity` writes (at least one).
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> MutexGuard<'_, VecDeque<Write>> {
        // Every critical section is a single push, pop or copy: a panic in
        // one cannot leave the queue half-changed.
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The most writes it holds.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Writes held now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    /// Appends a write; returns the new depth, or the write back when full.
    pub fn push(&self, write: Write) -> Result<usize, Box<Write>> {
        let mut queue = self.lock();
        if queue.len() >= self.capacity {
            return Err(Box::new(write));
        }
        queue.push_back(write);
        Ok(queue.len())
    }

    /// A copy of the next transaction's worth of writes, without removing
    /// them: a run of message creates of one source merged into one write of
    /// up to [`DRAIN_BATCH`], or the single write at the head. Returns the
    /// merged write and how many entries it covers.
    pub fn peek_batch(&self) -> Option<(Write, usize)> {
        let queue = self.lock();
        let first = queue.front()?;
        let Write::Create { source, .. } = first else {
            return Some((first.clone(), 1));
        };
        let source = *source;
        let messages: Vec<_> = queue
            .iter()
            .take(DRAIN_BATCH)
            .map_while(|write| match write {
                Write::Create { message, source: s } if *s == source => Some(message.clone()),
                _ => None,
            })
            .collect();
        let count = messages.len();
        if count == 1 {
            return Some((first.clone(), 1));
        }
        Some((Write::Many { messages, source }, count))
    }

    /// A copy of the write at the head alone.
    pub fn peek_single(&self) -> Option<(Write, usize)> {
        self.lock().front().map(|write| (write.clone(), 1))
    }

    /// Removes the first `count` writes (after they committed); returns the depth left.
    pub fn pop(&self, count: usize) -> usize {
        let mut queue = self.lock();
        let count = count.min(queue.len());
        queue.drain(..count);
        queue.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn create(id: i64) -> Write {
        crate::ingest::testing::create(1, id)
    }

    #[test]
    fn a_full_buffer_refuses_new_writes_and_keeps_its_bound() {
        let buffer = Buffer::new(2);
        assert_eq!(buffer.push(create(1)), Ok(1));
        assert_eq!(buffer.push(create(2)), Ok(2));
        assert!(buffer.push(create(3)).is_err());
        assert_eq!(buffer.len(), 2);
        assert_eq!(buffer.pop(1), 1);
        assert_eq!(buffer.push(create(3)), Ok(2));
    }

    #[test]
    fn consecutive_creates_drain_as_one_transaction_and_other_writes_alone() {
        let buffer = Buffer::new(10);
        for id in 1..=3 {
            buffer.push(create(id)).expect("room");
        }
        buffer
            .push(Write::Delete {
                id: 9,
                channel_id: 1,
            })
            .expect("room");
        buffer.push(create(4)).expect("room");
        let (batch, count) = buffer.peek_batch().expect("not empty");
        assert_eq!(count, 3);
        assert!(matches!(batch, Write::Many { ref messages, .. } if messages.len() == 3));
        buffer.pop(count);
        let (batch, count) = buffer.peek_batch().expect("not empty");
        assert_eq!((batch.message_id(), count), (Some(9), 1));
        buffer.pop(count);
        let (batch, count) = buffer.peek_batch().expect("not empty");
        assert!(matches!(batch, Write::Create { .. }));
        assert_eq!(count, 1);
    }
}
