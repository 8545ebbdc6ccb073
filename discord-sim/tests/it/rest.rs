//! The REST API through serenity's `Http` (and plain reqwest where headers matter).

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::http;
use discord_sim::{NewMessage, RestFault, Sim, SimConfig};
use serde_json::Value;
use serenity::all::{Channel, ChannelId, GetMessages, MessageId};
use serenity::http::HttpError;

async fn world(config: SimConfig) -> (Sim, u64) {
    let sim = Sim::start(config).await.expect("sim starts");
    let guild = sim.create_guild("Trading");
    let channel = sim
        .create_channel(guild, "aplus-setups")
        .expect("guild exists");
    (sim, channel)
}

fn plain_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("a plain reqwest client builds")
}

/// The status and Discord error code of a failed serenity call.
fn http_failure(error: &serenity::Error) -> (u16, isize) {
    match error {
        serenity::Error::Http(HttpError::UnsuccessfulRequest(response)) => {
            (response.status_code.as_u16(), response.error.code)
        }
        other => panic!("expected an unsuccessful HTTP request, got {other:?}"),
    }
}

#[tokio::test]
async fn history_paging_with_after_returns_each_message_exactly_once() {
    let (sim, channel) = world(SimConfig::default()).await;
    let posted: Vec<u64> = (0..250)
        .map(|i| {
            sim.post_history(NewMessage::text(channel, format!("m{i}")))
                .expect("post")
        })
        .collect();
    let http = http(&sim, "test-token");

    let mut seen = Vec::new();
    let mut after = MessageId::new(1);
    let mut page_sizes = Vec::new();
    loop {
        let page = ChannelId::new(channel)
            .messages(&http, GetMessages::new().after(after).limit(100))
            .await
            .expect("history page");
        page_sizes.push(page.len());
        if page.is_empty() {
            break;
        }
        // Discord returns newest first, so the page's first message is the next anchor.
        let ids: Vec<u64> = page.iter().map(|m| m.id.get()).collect();
        assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first");
        after = page[0].id;
        seen.extend(ids.into_iter().rev());
    }
    assert_eq!(page_sizes, vec![100, 100, 50, 0]);
    assert_eq!(seen, posted, "each message once, oldest to newest");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 250);

    let calls = sim.rest_calls();
    let history_calls: Vec<_> = calls
        .iter()
        .filter(|c| c.path.ends_with("/messages"))
        .collect();
    assert_eq!(history_calls.len(), 4);
    assert_eq!(history_calls[0].query, "&limit=100&after=1");
    assert!(
        history_calls
            .iter()
            .all(|c| c.token.as_deref() == Some("test-token"))
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn history_without_anchor_and_with_before_or_around_follows_discord() {
    let (sim, channel) = world(SimConfig::default()).await;
    let posted: Vec<u64> = (0..60)
        .map(|i| {
            sim.post_history(NewMessage::text(channel, format!("m{i}")))
                .expect("post")
        })
        .collect();
    let http = http(&sim, "test-token");
    let ch = ChannelId::new(channel);

    let latest = ch
        .messages(&http, GetMessages::new())
        .await
        .expect("latest");
    assert_eq!(latest.len(), 50, "default limit");
    assert_eq!(latest[0].id.get(), posted[59]);
    let before = ch
        .messages(
            &http,
            GetMessages::new()
                .before(MessageId::new(posted[10]))
                .limit(5),
        )
        .await
        .expect("before");
    let ids: Vec<u64> = before.iter().map(|m| m.id.get()).collect();
    assert_eq!(
        ids,
        vec![posted[9], posted[8], posted[7], posted[6], posted[5]]
    );
    let around = ch
        .messages(
            &http,
            GetMessages::new()
                .around(MessageId::new(posted[30]))
                .limit(3),
        )
        .await
        .expect("around");
    let ids: Vec<u64> = around.iter().map(|m| m.id.get()).collect();
    assert_eq!(ids, vec![posted[31], posted[30], posted[29]]);

    let response = plain_client()
        .get(format!(
            "{}/api/v10/channels/{channel}/messages?limit=101",
            sim.api_url()
        ))
        .header("Authorization", "Bot test-token")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
    sim.shutdown().await;
}

#[tokio::test]
async fn a_rate_limited_call_gets_429_with_retry_after_and_serenity_surfaces_it_as_an_error() {
    let (sim, channel) = world(SimConfig::default()).await;
    sim.post_history(NewMessage::text(channel, "m"))
        .expect("post");
    let http = http(&sim, "test-token");
    let ch = ChannelId::new(channel);

    sim.fail_next_rest(
        1,
        RestFault::RateLimited {
            retry_after: 1.5,
            global: false,
        },
    );
    let error = ch
        .messages(&http, GetMessages::new())
        .await
        .expect_err("rate limited");
    // serenity (rate limiter off) does not wait or retry: it returns the 429. Discord's 429
    // body has no `code`, so serenity reports code -1 with a "could not decode" message.
    assert_eq!(http_failure(&error), (429, -1));
    assert_eq!(
        ch.messages(&http, GetMessages::new())
            .await
            .expect("next call passes")
            .len(),
        1
    );

    sim.fail_next_rest(
        1,
        RestFault::RateLimited {
            retry_after: 1.5,
            global: true,
        },
    );
    let response = plain_client()
        .get(format!(
            "{}/api/v10/channels/{channel}/messages",
            sim.api_url()
        ))
        .header("Authorization", "Bot test-token")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 429);
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    assert_eq!(header("retry-after").as_deref(), Some("2"));
    assert_eq!(header("x-ratelimit-global").as_deref(), Some("true"));
    assert_eq!(header("x-ratelimit-scope").as_deref(), Some("global"));
    let body: Value = response.json().await.expect("json body");
    assert_eq!(body["retry_after"], 1.5);
    assert_eq!(body["global"], true);
    assert!(body["message"].is_string());
    assert_eq!(sim.stats().rest_faults_served, 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn server_errors_and_delays_apply_to_the_next_n_matching_calls() {
    let (sim, channel) = world(SimConfig::default()).await;
    let http = http(&sim, "test-token");
    let ch = ChannelId::new(channel);

    sim.fail_next_rest_matching("/messages", 2, RestFault::Status(502));
    assert!(
        ch.to_channel(&http).await.is_ok(),
        "other paths are not affected"
    );
    for _ in 0..2 {
        let error = ch
            .messages(&http, GetMessages::new())
            .await
            .expect_err("502");
        assert_eq!(http_failure(&error), (502, 0));
    }
    assert!(ch.messages(&http, GetMessages::new()).await.is_ok());

    sim.fail_next_rest(1, RestFault::Delay(Duration::from_millis(300)));
    let started = std::time::Instant::now();
    assert!(ch.messages(&http, GetMessages::new()).await.is_ok());
    assert!(started.elapsed() >= Duration::from_millis(300));
    sim.shutdown().await;
}

#[tokio::test]
async fn unknown_and_forbidden_channels_answer_404_and_403() {
    let (sim, channel) = world(SimConfig::default()).await;
    let thread = sim
        .create_thread(channel, "spy-talk")
        .expect("channel exists");
    let http = http(&sim, "test-token");

    let Channel::Guild(found) = ChannelId::new(thread)
        .to_channel(&http)
        .await
        .expect("visible")
    else {
        panic!("a thread is a guild channel")
    };
    assert_eq!(found.parent_id.map(|p| p.get()), Some(channel));

    let error = ChannelId::new(12345)
        .to_channel(&http)
        .await
        .expect_err("unknown");
    assert_eq!(http_failure(&error), (404, 10003));

    sim.set_channel_forbidden(channel, true)
        .expect("channel exists");
    let error = ChannelId::new(channel)
        .to_channel(&http)
        .await
        .expect_err("forbidden");
    assert_eq!(http_failure(&error), (403, 50001));
    let error = ChannelId::new(channel)
        .messages(&http, GetMessages::new())
        .await
        .expect_err("forbidden");
    assert_eq!(http_failure(&error), (403, 50001));
    sim.shutdown().await;
}

#[tokio::test]
async fn a_configured_bad_token_gets_401_and_presented_tokens_are_recorded() {
    let (sim, _) = world(SimConfig {
        bad_token: Some("revoked".into()),
        ..SimConfig::default()
    })
    .await;

    let user = http(&sim, "good")
        .get_current_user()
        .await
        .expect("good token works");
    assert!(user.bot);
    let error = http(&sim, "revoked")
        .get_current_user()
        .await
        .expect_err("bad token");
    assert_eq!(http_failure(&error).0, 401);
    let response = plain_client()
        .get(format!("{}/api/v10/users/@me", sim.api_url()))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 401, "no token at all");

    let tokens: Vec<Option<String>> = sim.rest_calls().into_iter().map(|c| c.token).collect();
    assert_eq!(
        tokens,
        vec![Some("good".into()), Some("revoked".into()), None]
    );
    sim.shutdown().await;
}
