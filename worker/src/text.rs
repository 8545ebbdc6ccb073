//! The text a message is parsed from.
//!
//! A message's own text comes first (for a forward, the bot already stored
//! the snapshot's text as the content). Alert bots often post embeds only;
//! then the embeds' title, description and fields are the text.

use serde_json::Value;

/// The embeds' text: each embed's title, description and fields
/// (`name` line, then `value`), separated by blank lines.
pub fn embed_text(embeds: &Value) -> String {
    let mut parts = Vec::new();
    for embed in embeds.as_array().into_iter().flatten() {
        let mut lines = Vec::new();
        for key in ["title", "description"] {
            if let Some(s) = embed.get(key).and_then(Value::as_str)
                && !s.trim().is_empty()
            {
                lines.push(s.to_owned());
            }
        }
        for field in embed
            .get("fields")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            for key in ["name", "value"] {
                if let Some(s) = field.get(key).and_then(Value::as_str)
                    && !s.trim().is_empty()
                {
                    lines.push(s.to_owned());
                }
            }
        }
        if let Some(s) = embed.pointer("/footer/text").and_then(Value::as_str)
            && !s.trim().is_empty()
        {
            lines.push(s.to_owned());
        }
        if !lines.is_empty() {
            parts.push(lines.join("\n"));
        }
    }
    parts.join("\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embed_text_joins_titles_descriptions_and_fields() {
        let embeds = serde_json::json!([
            {"title": "A+ Trade Setups — Wed May 21", "description": "SPY\n🔼 Aggressive Breakout Above 590.15 (593.00)",
             "fields": [{"name": "TSLA", "value": "❌ Rejection Near 346.90 (343.20)"}]},
            {"image": {"url": "https://example.invalid/x.png"}}
        ]);
        assert_eq!(
            embed_text(&embeds),
            "A+ Trade Setups — Wed May 21\nSPY\n🔼 Aggressive Breakout Above 590.15 (593.00)\nTSLA\n❌ Rejection Near 346.90 (343.20)"
        );
        assert_eq!(embed_text(&serde_json::json!([])), "");
        assert_eq!(embed_text(&serde_json::json!("not an array")), "");
    }
}
