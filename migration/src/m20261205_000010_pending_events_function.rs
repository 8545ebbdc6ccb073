//! `outbox_pending_events()`: the one definition of a pending event.
//!
//! An event is pending when its transaction id is at or above the watermark
//! and it has no inbox row. The predicate used to be written out wherever it
//! was needed (the views, the reconciler's statistics and audit, the orphan
//! scan, the chaos counts), and copies drift. It is now a set-returning SQL
//! function that the planner inlines into the calling query: a single
//! `SELECT`, `STABLE`, neither `STRICT` nor `SECURITY DEFINER`, no `SET`
//! clause. Inlined, a caller's `WHERE created_at < ...`, `ORDER BY txid` or
//! `LIMIT` applies to the walk of `events_txid` from the watermark exactly as
//! when the predicate was written in place; a function the planner could not
//! inline would materialise every pending event on every call.
//!
//! `orphaned_events` and `pipeline_health` are recreated over the function,
//! with the same columns. The consumer's claim cannot use it: it locks the
//! rows it reads (`FOR UPDATE OF e`), which PostgreSQL refuses on a function
//! in `FROM` (see `outbox::consume::claim`).

use sea_orm_migration::prelude::*;

use crate::exec_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE FUNCTION outbox_pending_events() RETURNS SETOF events
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$SELECT e.* FROM events e
       WHERE e.txid >= outbox_processed_through()
         AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id)$$;
COMMENT ON FUNCTION outbox_pending_events() IS
  'Events not yet consumed: at or above the outbox watermark and without an inbox row. Inlined into the calling query, so its filters and LIMIT walk events_txid from the watermark.';

CREATE OR REPLACE VIEW orphaned_events AS
SELECT e.id AS event_id,
       e.message_id,
       e.kind,
       e.created_at,
       now() - e.created_at AS age,
       'never_claimed'::text AS reason,
       0 AS attempts,
       NULL::text AS last_error
FROM outbox_pending_events() e
WHERE e.created_at < now() - aplus_orphan_grace()
UNION ALL
SELECT e.id, e.message_id, e.kind, e.created_at, now() - e.created_at,
       'retry_overdue', i.attempts, i.last_error
FROM inbox i
JOIN events e ON e.id = i.event_id
WHERE i.status = 'failed' AND i.next_attempt_at < now() - aplus_orphan_grace();

CREATE OR REPLACE VIEW pipeline_health AS
SELECT (SELECT max(received_at) FROM messages) AS last_message_at,
       (SELECT max(created_at) FROM events) AS last_event_at,
       (SELECT max(processed_at) FROM inbox) AS last_processed_at,
       b.unclaimed + f.failed AS backlog,
       b.unclaimed AS unclaimed_events,
       f.failed AS failed_events,
       d.dead AS dead_events,
       b.oldest_pending_at,
       now() - b.oldest_pending_at AS oldest_pending_age,
       r.messages AS messages_1h,
       r.ratio AS ratio_1h,
       p.rate AS processing_rate_1h,
       l.listeners AS listener_connections,
       l.listeners > 0 AS listener_connected,
       (SELECT max(finished_at) FROM reconciler_runs) AS last_reconciler_run_at,
       now() AS observed_at
FROM (SELECT count(*) AS unclaimed, min(e.created_at) AS oldest_pending_at
      FROM outbox_pending_events() e) b,
     (SELECT count(*) AS failed FROM inbox WHERE status = 'failed') f,
     (SELECT count(*) AS dead FROM inbox WHERE status = 'dead') d,
     (SELECT messages, ratio FROM event_message_ratio WHERE time_window = '1 hour') r,
     (SELECT rate FROM processing_rate WHERE time_window = '1 hour') p,
     (SELECT count(*) AS listeners FROM pg_stat_activity
      WHERE datname = current_database() AND query = 'LISTEN "events"') l;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // CREATE OR REPLACE VIEW keeps each view's columns and comment, so
        // nothing that reads them changes.
        exec_sql(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // The previous definitions (written out in place), then the function
        // nothing uses any more.
        exec_sql(manager, crate::m20261127_000006_plan_friendly_views::VIEWS).await?;
        exec_sql(manager, "DROP FUNCTION outbox_pending_events();").await
    }
}
