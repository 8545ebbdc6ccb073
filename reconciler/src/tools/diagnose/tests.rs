//! The verdict of every state the table names, without a database.

use chrono::{TimeZone, Utc};

use super::rules::{RESTART_BOT, START_RECONCILER, START_WORKER};
use super::*;
use crate::service::runs::RunRecord;

fn now() -> chrono::DateTime<Utc> {
    // A literal, valid instant.
    Utc.with_ymd_and_hms(2026, 3, 2, 15, 0, 0)
        .single()
        .expect("valid")
}

fn run(secs_ago: i64, error: Option<&str>) -> RunRecord {
    let at = now() - chrono::Duration::seconds(secs_ago);
    RunRecord {
        id: 1,
        instance: "rec-1".to_owned(),
        started_at: at,
        finished_at: Some(at),
        missing_events_created: 0,
        orphans_refired: 0,
        retries_due: 0,
        dead_events: 0,
        pruned_events: 0,
        pruned_inbox: 0,
        backlog: 0,
        ratio: Some(1.0),
        processing_rate: Some(1.0),
        messages_scanned_through: Some(at),
        error: error.map(str::to_owned),
    }
}

/// A busy, healthy pipeline: 1,204 messages, all processed within 2 s.
fn healthy() -> Snapshot {
    Snapshot {
        observed_at: now(),
        grace_secs: 60.0,
        messages_1h: 1_204,
        messages_24h: 28_930,
        created_events_1h: 1_204,
        created_events_24h: 28_930,
        ratio_1h: Some(1.0),
        ratio_24h: Some(1.0),
        events_1h: 1_204,
        processed_1h: 1_204,
        processing_rate_1h: Some(1.0),
        processing_rate_24h: Some(1.0),
        p50_latency_1h_secs: Some(0.04),
        p95_latency_1h_secs: Some(0.9),
        max_latency_1h_secs: Some(2.1),
        settled_events_1h: 1_190,
        settled_processed_1h: 1_190,
        listener_connections: 1,
        sees_all_sessions: true,
        last_message_at: Some(now() - chrono::Duration::seconds(12)),
        last_run: Some(run(20, None)),
        ..Snapshot::default()
    }
}

fn judge(s: &Snapshot) -> Assessment {
    assess(s, &Thresholds::default())
}

#[test]
fn a_busy_pipeline_with_everything_processed_is_healthy() {
    let a = judge(&healthy());
    assert_eq!(a.verdict, Verdict::Healthy);
    assert_eq!(
        a.headline,
        "Healthy: 1,204 messages in the last hour, all processed within 2.1 s"
    );
    assert!(a.next_commands.is_empty());
}

#[test]
fn an_idle_pipeline_with_no_messages_is_healthy() {
    let s = Snapshot {
        observed_at: now(),
        listener_connections: 1,
        sees_all_sessions: true,
        last_message_at: Some(now() - chrono::Duration::hours(3)),
        last_run: Some(run(5, None)),
        ..Snapshot::default()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Healthy);
    assert_eq!(
        a.headline,
        "Healthy: no messages in the last hour; last message 3 h ago, nothing waiting"
    );
}

#[test]
fn a_fresh_install_is_healthy_and_notes_the_reconciler_has_not_run() {
    let s = Snapshot {
        observed_at: now(),
        listener_connections: 1,
        sees_all_sessions: true,
        ..Snapshot::default()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Healthy);
    assert!(
        a.headline.contains("no message stored yet"),
        "{}",
        a.headline
    );
    assert!(a.notes.iter().any(|n| n.contains("has not run")));
}

#[test]
fn events_in_flight_younger_than_the_grace_do_not_degrade() {
    let s = Snapshot {
        events_1h: 1_210,
        pending_1h: 6,
        unclaimed_events: 6,
        backlog: 6,
        oldest_pending_secs: Some(0.4),
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Healthy, "{a:?}");
    assert!(a.headline.contains("the rest in flight"), "{}", a.headline);
}

#[test]
fn waiting_events_and_no_listener_are_degraded_and_say_to_start_the_worker() {
    let s = Snapshot {
        unclaimed_events: 37,
        orphans: 37,
        backlog: 37,
        oldest_pending_secs: Some(240.0),
        listener_connections: 0,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(
        a.headline,
        "Degraded: 37 events waiting, oldest 4 min; no worker is listening"
    );
    assert_eq!(a.next_commands[0], START_WORKER);
    assert!(a.next_commands.contains(&"reconciler relisten".to_owned()));
}

#[test]
fn waiting_events_with_a_listener_suggest_recover_and_relisten() {
    let s = Snapshot {
        unclaimed_events: 3,
        orphans: 3,
        oldest_pending_secs: Some(90.0),
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(a.next_commands[0], "reconciler recover");
    assert!(a.next_commands.contains(&"reconciler relisten".to_owned()));
}

#[test]
fn events_waiting_longer_than_fifteen_minutes_are_unhealthy() {
    let s = Snapshot {
        unclaimed_events: 500,
        orphans: 500,
        oldest_pending_secs: Some(20.0 * 60.0),
        ..healthy()
    };
    assert_eq!(judge(&s).verdict, Verdict::Unhealthy);
}

#[test]
fn no_listener_alone_is_degraded() {
    let s = Snapshot {
        listener_connections: 0,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(a.headline, "Degraded: no worker is listening");
}

#[test]
fn an_invisible_listener_is_only_a_note() {
    let s = Snapshot {
        listener_connections: 0,
        sees_all_sessions: false,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Healthy);
    assert!(a.notes.iter().any(|n| n.contains("pg_read_all_stats")));
}

#[test]
fn dead_events_are_unhealthy_and_point_to_audit_and_recover() {
    let s = Snapshot {
        dead_events: 3,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Unhealthy);
    assert_eq!(a.headline, "Unhealthy: 3 dead events used up every attempt");
    assert_eq!(
        a.next_commands,
        vec!["reconciler audit", "reconciler recover --dead"]
    );
}

#[test]
fn a_few_messages_without_events_are_degraded_and_many_are_unhealthy() {
    let few = Snapshot {
        created_events_1h: 1_200,
        messages_without_event_1h: 4,
        ratio_1h: Some(0.9967),
        ..healthy()
    };
    let a = judge(&few);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(
        a.headline,
        "Degraded: 4 messages in the last hour have no event (ratio 0.997)"
    );
    assert_eq!(a.next_commands, vec!["reconciler once"]);

    let many = Snapshot {
        created_events_1h: 600,
        messages_without_event_1h: 604,
        ratio_1h: Some(0.4983),
        ..healthy()
    };
    assert_eq!(judge(&many).verdict, Verdict::Unhealthy);
}

#[test]
fn more_events_than_messages_is_a_note_not_a_problem() {
    let s = Snapshot {
        created_events_1h: 1_210,
        ratio_1h: Some(1.005),
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Healthy);
    assert!(a.notes.iter().any(|n| n.contains("6 more")));
}

#[test]
fn a_low_processing_rate_is_degraded_below_ninety_and_unhealthy_below_fifty_percent() {
    let s = Snapshot {
        processed_1h: 1_000,
        settled_events_1h: 1_190,
        settled_processed_1h: 1_000,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert!(a.headline.contains("only 84.0%"), "{}", a.headline);

    let s = Snapshot {
        settled_processed_1h: 400,
        ..s
    };
    assert_eq!(judge(&s).verdict, Verdict::Unhealthy);
}

#[test]
fn slow_processing_is_degraded() {
    let s = Snapshot {
        p95_latency_1h_secs: Some(12.0),
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert!(a.headline.contains("up to 12 s"), "{}", a.headline);
}

#[test]
fn overdue_retries_are_degraded() {
    let s = Snapshot {
        failed_events: 5,
        retries_overdue: 2,
        backlog: 5,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(a.headline, "Degraded: 2 retries overdue");
    assert!(a.notes.iter().any(|n| n.contains("3 events failed")));
}

#[test]
fn a_stale_or_failing_reconciler_is_degraded() {
    let stale = Snapshot {
        last_run: Some(run(3 * 3600, None)),
        ..healthy()
    };
    let a = judge(&stale);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(a.headline, "Degraded: no reconciler pass for 3 h");
    assert_eq!(a.next_commands, vec![START_RECONCILER]);

    let failing = Snapshot {
        last_run: Some(run(10, Some("prune: database error"))),
        ..healthy()
    };
    assert_eq!(judge(&failing).verdict, Verdict::Degraded);
}

#[test]
fn a_sweep_that_found_missing_messages_is_degraded_and_names_the_channel() {
    let s = Snapshot {
        sweeps: crate::sweeps::Sweeps {
            last_sweep_at: Some(now() - chrono::Duration::seconds(60)),
            losses_1h: vec![
                crate::sweeps::SweepLoss {
                    channel_id: 1_372_012_942_848_954_388,
                    swept_at: now() - chrono::Duration::seconds(120),
                    missing: 7,
                    listed: 300,
                },
                crate::sweeps::SweepLoss {
                    channel_id: 42,
                    swept_at: now() - chrono::Duration::seconds(60),
                    missing: 1,
                    listed: 20,
                },
            ],
        },
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert!(a.headline.contains("silent gateway loss"), "{}", a.headline);
    assert!(a.headline.contains("8 messages"), "{}", a.headline);
    assert!(a.headline.contains("1372012942848954388"), "{}", a.headline);
    assert_eq!(a.next_commands[1], RESTART_BOT);
}

#[test]
fn an_overdue_sweep_is_degraded_and_never_sweeping_is_only_a_note() {
    let s = Snapshot {
        sweeps: crate::sweeps::Sweeps {
            last_sweep_at: Some(now() - chrono::Duration::seconds(45 * 60)),
            losses_1h: Vec::new(),
        },
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert!(
        a.headline.contains("no history sweep for"),
        "{}",
        a.headline
    );
    let never = judge(&healthy());
    assert_eq!(never.verdict, Verdict::Healthy);
    assert!(never.notes.iter().any(|n| n.contains("no history sweep")));
    let recent = Snapshot {
        sweeps: crate::sweeps::Sweeps {
            last_sweep_at: Some(now() - chrono::Duration::seconds(300)),
            losses_1h: Vec::new(),
        },
        ..healthy()
    };
    assert_eq!(judge(&recent).verdict, Verdict::Healthy);
}

fn stale_listener(pid: i32, silent_secs: f64) -> crate::listeners::StaleListener {
    crate::listeners::StaleListener {
        pid,
        application_name: format!("aplus-worker-listener w{pid}"),
        backend_start: Some(now() - chrono::Duration::hours(1)),
        client_addr: Some("10.0.0.7".to_owned()),
        heard_at: Some(now() - chrono::Duration::seconds(silent_secs as i64)),
        silent_secs,
    }
}

#[test]
fn a_listener_that_stopped_reading_is_degraded_and_names_the_command_that_ends_it() {
    let s = Snapshot {
        stale_listeners: vec![stale_listener(4242, 300.0), stale_listener(4243, 45.0)],
        listener_stale_after_secs: 30.0,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(
        a.headline,
        "Degraded: 2 worker LISTEN sessions have not read notifications for 5 min"
    );
    assert_eq!(
        a.next_commands,
        vec!["reconciler recover --stale-listeners"]
    );
    assert!(
        a.notes
            .iter()
            .any(|n| n.contains("pid 4242 (aplus-worker-listener w4242, 10.0.0.7)")),
        "{:?}",
        a.notes
    );
}

#[test]
fn a_filling_notification_queue_is_degraded_above_one_percent_and_unhealthy_above_half() {
    let nearly_empty = Snapshot {
        notification_queue_usage: 0.000_004,
        ..healthy()
    };
    assert_eq!(judge(&nearly_empty).verdict, Verdict::Healthy);

    let filling = Snapshot {
        notification_queue_usage: 0.03,
        ..healthy()
    };
    let a = judge(&filling);
    assert_eq!(a.verdict, Verdict::Degraded);
    assert_eq!(
        a.headline,
        "Degraded: the notification queue is 3.0% full (NOTIFY fails at 100%)"
    );
    assert!(a.next_commands[0].contains("pg_stat_activity"), "{a:?}");

    let full = Snapshot {
        notification_queue_usage: 0.8,
        stale_listeners: vec![stale_listener(7, 7_200.0)],
        ..healthy()
    };
    let a = judge(&full);
    assert_eq!(a.verdict, Verdict::Unhealthy);
    assert_eq!(a.next_commands[0], "reconciler recover --stale-listeners");
}

#[test]
fn the_worst_finding_leads_the_verdict_line() {
    let s = Snapshot {
        listener_connections: 0,
        dead_events: 1,
        ..healthy()
    };
    let a = judge(&s);
    assert_eq!(
        a.headline,
        "Unhealthy: 1 dead event used up every attempt; no worker is listening"
    );
    assert_eq!(a.verdict.exit_code(), 2);
}

#[test]
fn an_unreachable_database_is_unhealthy_with_exit_status_two() {
    let d = Diagnosis::unreachable("connection refused".to_owned());
    assert_eq!(d.exit_code, 2);
    assert!(d.render().contains("connection refused"));
    assert!(d.render().contains("pg_isready"));
}

#[test]
fn the_screen_leads_with_the_verdict_and_lists_the_facts() {
    let d = Diagnosis::of(healthy(), &Thresholds::default());
    let screen = d.render();
    let first = screen.lines().next().unwrap_or_default();
    assert!(first.starts_with("Healthy: "), "{screen}");
    for label in [
        "Messages",
        "Events",
        "Processing",
        "Backlog",
        "Dead",
        "Listener",
        "Notify queue",
        "Reconciler",
    ] {
        assert!(screen.contains(label), "{label} missing from\n{screen}");
    }
    assert!(screen.contains("28,930"), "{screen}");
    assert!(!screen.contains("Next:"), "{screen}");
}
