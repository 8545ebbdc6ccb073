//! The parser's integration tests, one binary: every fixture message, one
//! test per quirk of the real posts, and the properties no input may break.
//!
//! proptest keeps its regressions beside the file that declares the
//! properties (`props.proptest-regressions`), and replays them first.

mod fixtures;
mod props;
mod quirks;
