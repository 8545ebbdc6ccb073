//! PostgreSQL's `text` and `jsonb` reject NUL. A message holding one is stored
//! with each NUL replaced by U+FFFD and flagged `sanitized`, rather than
//! rejected: the rest of the message is still worth keeping, and a rejection
//! that retried would poison the queue.

use std::borrow::Cow;

/// The character NULs become.
pub const REPLACEMENT: char = '\u{FFFD}';

/// Replaces NUL characters; borrows when there is none.
pub fn text(input: &str) -> Cow<'_, str> {
    if input.contains('\0') {
        Cow::Owned(input.replace('\0', "\u{FFFD}"))
    } else {
        Cow::Borrowed(input)
    }
}

/// Replaces NUL characters in every string and key of a JSON value, in place.
/// Returns whether anything changed.
pub fn json(value: &mut serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) if s.contains('\0') => {
            *s = s.replace('\0', "\u{FFFD}");
            true
        }
        Value::Array(items) => items.iter_mut().fold(false, |acc, v| json(v) | acc),
        Value::Object(map) => {
            let mut changed = false;
            if map.keys().any(|k| k.contains('\0')) {
                let entries: Vec<_> = std::mem::take(map).into_iter().collect();
                for (k, v) in entries {
                    map.insert(k.replace('\0', "\u{FFFD}"), v);
                }
                changed = true;
            }
            map.values_mut().fold(changed, |acc, v| json(v) | acc)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nul_bytes_are_replaced_everywhere_and_reported() {
        assert_eq!(text("a\0b"), "a\u{FFFD}b");
        assert!(matches!(text("clean"), Cow::Borrowed(_)));
        let mut value = serde_json::json!({"content": "x\0", "embeds": [{"k\0": "v"}], "n": 1});
        assert!(json(&mut value));
        assert_eq!(value["content"], "x\u{FFFD}");
        assert_eq!(value["embeds"][0]["k\u{FFFD}"], "v");
        let mut clean = serde_json::json!({"content": "fine"});
        assert!(!json(&mut clean));
    }
}
