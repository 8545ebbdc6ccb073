//! The record of REST calls, so tests can check what a client asked for.

/// One REST request the simulator answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestCall {
    /// HTTP method.
    pub method: String,
    /// Path, e.g. `/api/v10/channels/1/messages`.
    pub path: String,
    /// Raw query string without `?` (serenity sends `&limit=100&after=9`).
    pub query: String,
    /// Token from `Authorization`, without its `Bot ` prefix; `None` when no header was sent.
    pub token: Option<String>,
    /// Status code answered.
    pub status: u16,
    /// Whether an injected fault produced the answer.
    pub faulted: bool,
}

impl RestCall {
    /// The value of a query parameter, if present.
    #[must_use]
    pub fn query_param(&self, name: &str) -> Option<&str> {
        self.query
            .split('&')
            .filter_map(|pair| pair.split_once('='))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }
}
