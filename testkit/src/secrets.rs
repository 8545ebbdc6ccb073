//! Finds a secret in captured logs in every encoding a logger is known to
//! use: as text, as hex (tungstenite writes frame payloads as `0x7b22...`),
//! as base64 (headers, basic auth), as a list of decimal bytes (`Debug` of a
//! `Vec<u8>` or `Bytes`: `[84, 111, ...]`) and percent-encoded (URLs).
//!
//! A search for the plain text alone passes while the secret sits in the log
//! as hex; every canary test searches with [`leaks`].

/// Every place `secret` shows in `logs`, as `encoding: line`. Empty when it
/// shows nowhere.
pub fn leaks(logs: &str, secret: &str) -> Vec<String> {
    assert!(
        secret.len() >= 8,
        "a canary shorter than 8 bytes matches by chance"
    );
    let mut found = Vec::new();
    for (encoding, needle) in needles(secret.as_bytes()) {
        if let Some(at) = logs.find(&needle) {
            found.push(format!("{encoding}: {}", line_at(logs, at)));
        }
    }
    if let Some(at) = find_decimal_bytes(logs, secret.as_bytes()) {
        found.push(format!("decimal bytes: {}", line_at(logs, at)));
    }
    found
}

/// Fails the test with every place any of `secrets` shows in `logs`.
pub fn assert_no_leaks(logs: &str, secrets: &[&str]) {
    let found: Vec<String> = secrets.iter().flat_map(|s| leaks(logs, s)).collect();
    assert!(
        found.is_empty(),
        "secrets in the logs:\n{}",
        found.join("\n")
    );
}

/// The strings to search for, named by their encoding.
fn needles(secret: &[u8]) -> Vec<(String, String)> {
    let mut needles = vec![
        (
            "plain".to_owned(),
            String::from_utf8_lossy(secret).into_owned(),
        ),
        ("hex".to_owned(), hex(secret, false)),
        ("HEX".to_owned(), hex(secret, true)),
        ("percent-encoded".to_owned(), percent(secret, false, false)),
        (
            "percent-encoded (all bytes)".to_owned(),
            percent(secret, true, false),
        ),
        (
            "percent-encoded (all bytes, lower case)".to_owned(),
            percent(secret, true, true),
        ),
    ];
    for (name, alphabet) in [("base64", STANDARD), ("base64url", URL_SAFE)] {
        for offset in 0..3 {
            needles.push((
                format!("{name} at offset {offset}"),
                base64_middle(secret, offset, alphabet),
            ));
        }
    }
    needles.sort_by(|a, b| a.1.cmp(&b.1));
    needles.dedup_by(|a, b| a.1 == b.1);
    needles
}

fn hex(bytes: &[u8], upper: bool) -> String {
    bytes
        .iter()
        .map(|b| {
            if upper {
                format!("{b:02X}")
            } else {
                format!("{b:02x}")
            }
        })
        .collect()
}

/// Percent-encoding as a URL library writes it (`all` false: unreserved
/// characters stay), or of every byte.
fn percent(bytes: &[u8], all: bool, lower: bool) -> String {
    bytes
        .iter()
        .map(|&b| {
            if !all && (b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
                (b as char).to_string()
            } else if lower {
                format!("%{b:02x}")
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

const STANDARD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const URL_SAFE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// The base64 characters that depend on `secret` alone when it starts
/// `offset` bytes into the encoded stream: whatever precedes or follows it
/// changes only the characters this leaves out.
fn base64_middle(secret: &[u8], offset: usize, alphabet: &[u8; 64]) -> String {
    let mut bytes = vec![0u8; offset];
    bytes.extend_from_slice(secret);
    let bits = bytes.len() * 8;
    // Character i covers bits [6i, 6i + 6).
    let first = (offset * 8).div_ceil(6);
    let end = bits / 6;
    (first..end)
        .map(|i| {
            let mut value = 0usize;
            for bit in 6 * i..6 * i + 6 {
                let byte = bytes[bit / 8];
                value = value << 1 | usize::from(byte >> (7 - bit % 8) & 1);
            }
            alphabet[value] as char
        })
        .collect()
}

/// Where the secret's bytes are written as decimal numbers separated by
/// anything that is not a digit (`84, 111`, `84 111`, `84;111`, ...).
fn find_decimal_bytes(logs: &str, secret: &[u8]) -> Option<usize> {
    // Every run of digits, with where it starts.
    let mut numbers: Vec<(usize, &str)> = Vec::new();
    let mut start = None;
    for (i, c) in logs.char_indices() {
        match (c.is_ascii_digit(), start) {
            (true, None) => start = Some(i),
            (false, Some(s)) => {
                numbers.push((s, &logs[s..i]));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        numbers.push((s, &logs[s..]));
    }
    let wanted: Vec<String> = secret.iter().map(u8::to_string).collect();
    numbers
        .windows(wanted.len())
        .find(|window| window.iter().zip(&wanted).all(|((_, n), w)| n == w))
        .map(|window| window[0].0)
}

fn line_at(logs: &str, at: usize) -> &str {
    let start = logs[..at].rfind('\n').map_or(0, |i| i + 1);
    let end = logs[at..].find('\n').map_or(logs.len(), |i| at + i);
    let line = &logs[start..end];
    // Frame dumps make very long lines.
    match line.char_indices().nth(400) {
        Some((cut, _)) => &line[..cut],
        None => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "Bot canary.7f3a/9c1e+5b2d";

    #[test]
    fn a_secret_is_found_in_every_encoding_a_logger_uses() {
        let frame = format!(r#"{{"op":2,"d":{{"token":"{SECRET}"}}}}"#);
        let bytes = frame.as_bytes();
        let decimal = format!("payload: {bytes:?}");
        let cases = [
            format!("token={SECRET}"),
            format!("payload: 0x{}", hex(bytes, false)),
            format!("payload: 0x{}", hex(bytes, true)),
            decimal.clone(),
            decimal.replace(", ", " "),
            decimal.replace(", ", ";"),
            format!(
                "url=postgres://u:{}@h/d",
                percent(SECRET.as_bytes(), false, false)
            ),
            format!("x={}", percent(SECRET.as_bytes(), true, true)),
        ];
        for case in &cases {
            assert!(!leaks(case, SECRET).is_empty(), "not found in {case}");
        }
        // Base64 of the secret at every alignment within a longer stream.
        for prefix in ["", "a", "ab", "abc", "Authorization: "] {
            for alphabet in [STANDARD, URL_SAFE] {
                let whole = format!("{prefix}{SECRET}!").into_bytes();
                let encoded = base64_middle(&whole, 0, alphabet);
                assert!(!leaks(&encoded, SECRET).is_empty(), "base64 {encoded}");
            }
        }
    }

    #[test]
    fn unrelated_text_is_no_leak() {
        let logs = "payload: [1, 2, 3] 0x7b22 token=*** Bot ***";
        assert!(leaks(logs, SECRET).is_empty());
    }
}
