//! Reading back, one by one, the messages whose edit or delete an outage
//! dropped from memory (the gap ledger keeps their ids): the message as it is
//! now is applied as an edit (an unchanged one writes nothing), and Discord's
//! "unknown message" as a delete.

use serenity::all::Message;

use super::{BackfillError, Backfiller};
use crate::convert;
use crate::ingest::Write;
use crate::stats::Rejection;

impl Backfiller {
    /// Reads back the messages whose edit or delete was dropped, and applies
    /// what Discord has now. What is not done when a call fails is put back
    /// for the next run.
    pub(super) async fn refetch(
        &self,
        channel_id: u64,
        guild_id: Option<u64>,
    ) -> Result<u64, BackfillError> {
        let channel_key = i64::try_from(channel_id).unwrap_or(i64::MAX);
        let ids = self.ledger.take_refetch(channel_key);
        let mut done = 0;
        for (index, &id) in ids.iter().enumerate() {
            let result = self
                .refetch_one(channel_id, channel_key, id, guild_id)
                .await;
            if let Err(error) = result {
                self.ledger.settle_refetch(channel_key, &ids[..index]).await;
                self.ledger.restore_refetch(channel_key, &ids[index..]);
                return Err(error);
            }
            done += 1;
        }
        self.ledger.settle_refetch(channel_key, &ids).await;
        if done > 0 {
            tracing::info!(
                channel_id,
                messages = done,
                "read back messages whose edit or delete was dropped during an outage"
            );
        }
        Ok(done)
    }

    async fn refetch_one(
        &self,
        channel_id: u64,
        channel_key: i64,
        id: i64,
        guild_id: Option<u64>,
    ) -> Result<(), BackfillError> {
        let message_id = u64::try_from(id).unwrap_or_default();
        let write = match self.rest.message(channel_id, message_id).await? {
            None => {
                self.stats.refetched("delete");
                Write::Delete {
                    id,
                    channel_id: channel_key,
                }
            }
            Some(raw) => {
                let message = match serde_json::from_value::<Message>(raw.clone()) {
                    Ok(message) => message,
                    Err(error) => {
                        self.stats.rejected(Rejection::Undecodable);
                        tracing::warn!(message_id, %error, "message read back does not decode; its dropped edit is lost");
                        return Ok(());
                    }
                };
                let update = convert::check_author(&message, self.settings.keep_bot_messages)
                    .and_then(|()| convert::refetched(&message, raw, guild_id));
                match update {
                    Ok(update) => {
                        self.stats.refetched("edit");
                        Write::Edit(update)
                    }
                    Err(reason) => {
                        self.stats.rejected(reason);
                        return Ok(());
                    }
                }
            }
        };
        self.writer.write_now(&write).await?;
        Ok(())
    }
}
