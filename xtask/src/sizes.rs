//! Sizes of the view and reconciler benchmark: `100k`, `1M`, `2500000`.
//! Shared by `cargo xtask bench` (which checks `--sizes` before building
//! anything) and the `bench-views` binary.

/// Parses `100k`, `1M`, `10m`, `2500000`.
pub fn parse_size(text: &str) -> std::result::Result<u64, String> {
    let t = text.trim().replace('_', "");
    let (number, factor) = match t.char_indices().last() {
        Some((i, 'k' | 'K')) => (&t[..i], 1_000),
        Some((i, 'm' | 'M')) => (&t[..i], 1_000_000),
        _ => (t.as_str(), 1),
    };
    match number.parse::<u64>() {
        Ok(n) if n > 0 => Ok(n * factor),
        _ => Err(format!(
            "`{text}` is not a size such as 100k, 1M or 2500000"
        )),
    }
}

/// A comma-separated list of sizes.
pub fn parse_sizes(text: &str) -> Result<Vec<u64>, String> {
    text.split(',').map(parse_size).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_k_and_m_suffixes() {
        assert_eq!(parse_size("100k"), Ok(100_000));
        assert_eq!(parse_size("1M"), Ok(1_000_000));
        assert_eq!(parse_size("10m"), Ok(10_000_000));
        assert_eq!(parse_size("2_500"), Ok(2_500));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("0").is_err());
    }

    #[test]
    fn a_list_of_sizes_is_read_whole_or_refused() {
        assert_eq!(parse_sizes("10000,1M"), Ok(vec![10_000, 1_000_000]));
        assert!(parse_sizes("10000,lots").is_err());
    }
}
