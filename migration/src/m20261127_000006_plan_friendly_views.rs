//! Views the planner can plan well at ten million rows.
//!
//! The first views compared `events.txid` with a sub-select of the watermark
//! and took their windows from a `VALUES` list: values the planner learns
//! only while executing, so it assumed a third of `events` qualified and
//! hashed all of `inbox` on every call (seconds at a million messages). Here
//! the watermark and the orphan grace come from stable functions, and every
//! window also carries a bound written against `now()`, which the planner
//! sees, so each view walks an index from where its window starts.
//! `processing_rate` keeps its 5-minute and 1-hour windows; a 24-hour window
//! would join a whole day of events with the inbox on every read.
//!
//! JIT compilation is turned off for the database where the migrating role
//! may do so: it added 50 to 400 ms to these short queries once their
//! estimated cost crossed `jit_above_cost`, for nothing.

use sea_orm_migration::prelude::*;

use crate::exec_sql;

#[derive(DeriveMigrationName)]
pub struct Migration;

const FUNCTIONS: &str = r#"
CREATE FUNCTION outbox_processed_through() RETURNS xid8
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$SELECT processed_through FROM outbox_watermark$$;
COMMENT ON FUNCTION outbox_processed_through() IS
  'The outbox watermark: every event with a txid below it has an inbox row.';

CREATE FUNCTION aplus_orphan_grace() RETURNS interval
  LANGUAGE sql STABLE PARALLEL SAFE
  AS $$SELECT coalesce(nullif(current_setting('aplus.orphan_grace', true), '')::interval,
                       interval '1 minute')$$;
COMMENT ON FUNCTION aplus_orphan_grace() IS
  'How long an unclaimed event may wait before orphaned_events lists it: 1 minute unless the session sets aplus.orphan_grace.';

DO $$
BEGIN
  EXECUTE format('ALTER DATABASE %I SET jit = off', current_database());
EXCEPTION WHEN insufficient_privilege THEN
  RAISE NOTICE 'jit left on: only the database owner may turn it off';
END $$;
"#;

pub(crate) const VIEWS: &str = r#"
CREATE OR REPLACE VIEW event_message_ratio AS
SELECT w.time_window,
       w.since,
       m.messages,
       e.created_events,
       CASE
         WHEN m.messages = 0 AND e.created_events = 0 THEN 1.0
         WHEN m.messages = 0 THEN NULL
         ELSE round(e.created_events::numeric / m.messages, 4)
       END AS ratio
FROM (VALUES ('1 hour', now() - interval '1 hour'),
             ('24 hours', now() - interval '24 hours')) AS w(time_window, since)
CROSS JOIN LATERAL (
  SELECT count(*) AS messages FROM messages
  WHERE received_at >= w.since AND received_at >= now() - interval '24 hours') m
CROSS JOIN LATERAL (
  SELECT count(*) AS created_events FROM events
  WHERE kind = 'message.created' AND created_at >= w.since
    AND created_at >= now() - interval '24 hours') e;

COMMENT ON VIEW event_message_ratio IS
  'Per window (1 hour, 24 hours): messages received, message.created events written, and their ratio (1.0 when balanced; NULL when events exist but no messages). Columns: time_window text, since timestamptz, messages bigint, created_events bigint, ratio numeric.';

CREATE OR REPLACE VIEW processing_rate AS
SELECT w.time_window,
       w.since,
       s.events,
       s.processed,
       s.failed,
       s.dead,
       s.pending,
       CASE WHEN s.events = 0 THEN 1.0
            ELSE round(s.processed::numeric / s.events, 4) END AS rate,
       s.p50_latency,
       s.p95_latency
FROM (VALUES ('5 minutes', now() - interval '5 minutes'),
             ('1 hour', now() - interval '1 hour')) AS w(time_window, since)
CROSS JOIN LATERAL (
  SELECT count(*) AS events,
         count(*) FILTER (WHERE i.status = 'processed') AS processed,
         count(*) FILTER (WHERE i.status = 'failed') AS failed,
         count(*) FILTER (WHERE i.status = 'dead') AS dead,
         count(*) FILTER (WHERE i.event_id IS NULL) AS pending,
         percentile_cont(0.5) WITHIN GROUP (ORDER BY i.processed_at - e.created_at)
           FILTER (WHERE i.status = 'processed') AS p50_latency,
         percentile_cont(0.95) WITHIN GROUP (ORDER BY i.processed_at - e.created_at)
           FILTER (WHERE i.status = 'processed') AS p95_latency
  FROM events e
  LEFT JOIN inbox i ON i.event_id = e.id
  WHERE e.created_at >= w.since AND e.created_at >= now() - interval '1 hour') s;

COMMENT ON VIEW processing_rate IS
  'Per window (5 minutes, 1 hour) of events created: how many are processed, failed (retry pending), dead or not yet seen, the processed share (rate, 1.0 when there were no events) and the created-to-processed latency (p50, p95). Columns: time_window text, since timestamptz, events, processed, failed, dead, pending bigint, rate numeric, p50_latency interval, p95_latency interval.';

CREATE OR REPLACE VIEW orphaned_events AS
SELECT e.id AS event_id,
       e.message_id,
       e.kind,
       e.created_at,
       now() - e.created_at AS age,
       'never_claimed'::text AS reason,
       0 AS attempts,
       NULL::text AS last_error
FROM events e
WHERE e.txid >= outbox_processed_through()
  AND e.created_at < now() - aplus_orphan_grace()
  AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id)
UNION ALL
SELECT e.id, e.message_id, e.kind, e.created_at, now() - e.created_at,
       'retry_overdue', i.attempts, i.last_error
FROM inbox i
JOIN events e ON e.id = i.event_id
WHERE i.status = 'failed' AND i.next_attempt_at < now() - aplus_orphan_grace();

COMMENT ON VIEW orphaned_events IS
  'Events nobody has picked up: never claimed (no inbox row) more than the grace period after they were written, or a failed event whose retry is overdue by more than the grace. The grace is 1 minute unless the session sets aplus.orphan_grace. Columns: event_id uuid, message_id bigint, kind text, created_at timestamptz, age interval, reason text (never_claimed, retry_overdue), attempts int, last_error text.';

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
      FROM events e
      WHERE e.txid >= outbox_processed_through()
        AND NOT EXISTS (SELECT 1 FROM inbox i WHERE i.event_id = e.id)) b,
     (SELECT count(*) AS failed FROM inbox WHERE status = 'failed') f,
     (SELECT count(*) AS dead FROM inbox WHERE status = 'dead') d,
     (SELECT messages, ratio FROM event_message_ratio WHERE time_window = '1 hour') r,
     (SELECT rate FROM processing_rate WHERE time_window = '1 hour') p,
     (SELECT count(*) AS listeners FROM pg_stat_activity
      WHERE datname = current_database() AND query = 'LISTEN "events"') l;

COMMENT ON VIEW pipeline_health IS
  'One row: the whole pipeline at a glance. Columns: last_message_at, last_event_at, last_processed_at timestamptz; backlog bigint (unclaimed + failed awaiting retry), unclaimed_events, failed_events, dead_events bigint; oldest_pending_at timestamptz and oldest_pending_age interval (oldest unclaimed event); messages_1h bigint, ratio_1h numeric, processing_rate_1h numeric; listener_connections bigint and listener_connected boolean (sessions whose last query is LISTEN "events"; a role without pg_read_all_stats sees only its own); last_reconciler_run_at timestamptz; observed_at timestamptz.';
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec_sql(manager, FUNCTIONS).await?;
        // processing_rate loses its 24-hour row; CREATE OR REPLACE keeps
        // the columns, so dependants need no change.
        exec_sql(manager, VIEWS).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        exec_sql(
            manager,
            "DROP VIEW IF EXISTS pipeline_health, orphaned_events, processing_rate, event_message_ratio;",
        )
        .await?;
        exec_sql(manager, crate::m20261126_000005_create_views::UP).await?;
        exec_sql(
            manager,
            "DROP FUNCTION IF EXISTS outbox_processed_through(); DROP FUNCTION IF EXISTS aplus_orphan_grace();",
        )
        .await
    }
}
