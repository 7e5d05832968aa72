//! The broker's topic declarations, from the text its partition gets in its boot info.
//!
//! # Grammar
//!
//! ```text
//! config      = { declaration ( ";" | newline ) }
//! declaration = "topic" NAME { option }
//! option      = "partitions" COUNT
//!             | "segment" SIZE
//!             | "retention" LIMIT [ LIMIT ]      (one size and/or one age)
//! LIMIT       = SIZE | AGE
//! SIZE        = digits unit       unit: B KiB MiB GiB
//! AGE         = digits unit       unit: ms s m h d
//! NAME        = 1-255 of A-Z a-z 0-9 . _ -
//! ```
//!
//! Words are separated by blanks; `#` starts a comment to the end of the line; a
//! declaration ends at `;` or at the end of its line. Each option is given at most once.
//! Defaults: 1 partition, 64 KiB segments, no retention limit (records are kept until the
//! broker's storage runs out). Example:
//!
//! ```text
//! topic sensor partitions 1 segment 64KiB retention 256KiB 10m; topic events partitions 4
//! ```
//!
//! Errors carry the line and column (both from 1) of the word at fault and a hint.

use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use crate::protocol::MAX_NAME_BYTES;

/// One declared topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicDecl {
    pub name: String,
    pub partitions: u32,
    pub segment_bytes: u64,
    /// Oldest segments are dropped while the partition holds more than this.
    pub retention_bytes: Option<u64>,
    /// Segments whose newest record is older than this are dropped.
    pub retention_ms: Option<u64>,
}

pub const DEFAULT_SEGMENT_BYTES: u64 = 64 * 1024;
pub const MAX_PARTITIONS: u32 = 1024;
pub const MIN_SEGMENT_BYTES: u64 = 1024;
pub const MAX_SEGMENT_BYTES: u64 = 1 << 30;

/// A refused declaration text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub hint: &'static str,
}

impl core::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "topic config, line {}, column {}: {} (hint: {})",
            self.line, self.column, self.message, self.hint
        )
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// A word and where it starts.
#[derive(Clone, Copy, Debug)]
struct Word<'a> {
    text: &'a str,
    line: usize,
    column: usize,
}

impl Word<'_> {
    fn error(&self, message: impl Into<String>, hint: &'static str) -> ConfigError {
        ConfigError { line: self.line, column: self.column, message: message.into(), hint }
    }
}

/// The words of `text`, with `;` (and each line's end) as the word ";".
fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    for (l, line) in text.split('\n').enumerate() {
        let line = line.split('#').next().unwrap_or("");
        let mut start: Option<usize> = None;
        let mut column = 0;
        let mut start_column = 0;
        for (i, c) in line.char_indices() {
            column += 1;
            let separator = c.is_whitespace() || c == ';';
            if separator {
                if let Some(s) = start.take() {
                    out.push(Word { text: &line[s..i], line: l + 1, column: start_column });
                }
                if c == ';' {
                    out.push(Word { text: ";", line: l + 1, column });
                }
            } else if start.is_none() {
                start = Some(i);
                start_column = column;
            }
        }
        if let Some(s) = start {
            out.push(Word { text: &line[s..], line: l + 1, column: start_column });
        }
        out.push(Word { text: ";", line: l + 1, column: column + 1 });
    }
    out
}

/// A number with a unit from `units` (`(suffix, multiplier)`, longest suffixes first).
fn quantity(word: &Word<'_>, units: &[(&str, u64)]) -> Option<u64> {
    let digits = word.text.bytes().take_while(u8::is_ascii_digit).count();
    let (number, unit) = word.text.split_at(digits);
    let (_, multiplier) = units.iter().find(|(u, _)| *u == unit)?;
    number.parse::<u64>().ok()?.checked_mul(*multiplier)
}

const SIZE_UNITS: [(&str, u64); 4] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10), ("B", 1)];
const AGE_UNITS: [(&str, u64); 5] =
    [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000), ("d", 86_400_000)];

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_BYTES
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

/// The word at `i`, or the end of the text as `;` (so that reading past it cannot fail).
fn at<'a>(words: &[Word<'a>], i: usize) -> Word<'a> {
    let end = words.last().map_or((1, 1), |w| (w.line, w.column));
    words.get(i).copied().unwrap_or(Word { text: ";", line: end.0, column: end.1 })
}

/// Consumer groups a broker built by [`broker_config`] remembers.
pub const BROKER_GROUPS: u32 = 16;
/// Idempotent (producer, partition) pairs it remembers.
pub const BROKER_PRODUCERS: u32 = 64;
/// The largest batch it appends: the largest frame the protocol carries.
pub const BROKER_MAX_BATCH_BYTES: u32 = 64 * 1024;

/// The engine configuration for `topics` in a region of `region_bytes` bytes. A topic
/// with a size retention keeps that much; the partitions of topics without one share
/// what is left of the region equally (their logs roll, dropping the oldest segment, when
/// their share is full), so "kept until storage runs out" means exactly the region.
pub fn broker_config(
    topics: &[TopicDecl],
    region_bytes: usize,
) -> Result<crate::engine::BrokerConfig, crate::engine::ConfigError> {
    use crate::engine::{BrokerConfig, ConfigError as EngineError, TopicConfig};
    let mut config = BrokerConfig {
        topics: Vec::with_capacity(topics.len()),
        max_batch_bytes: BROKER_MAX_BATCH_BYTES,
        max_groups: BROKER_GROUPS,
        max_producers: BROKER_PRODUCERS,
    };
    for t in topics {
        // `parse` bounds segments to MAX_SEGMENT_BYTES (2^30), which fits a u32.
        let segment_bytes = u32::try_from(t.segment_bytes).map_err(|_| EngineError::LayoutOverflow)?;
        config.topics.push(TopicConfig {
            name: t.name.clone(),
            partitions: t.partitions,
            segment_bytes,
            // Unlimited topics start at the smallest arena (two segments) and grow below.
            retention_bytes: t.retention_bytes.unwrap_or(t.segment_bytes),
            retention_ms: t.retention_ms,
        });
    }
    let unlimited: u64 =
        topics.iter().filter(|t| t.retention_bytes.is_none()).map(|t| u64::from(t.partitions)).sum();
    let smallest = crate::engine::region_bytes(&config)? as u64;
    let spare = (region_bytes as u64).saturating_sub(smallest);
    if let Some(share) = spare.checked_div(unlimited) {
        for (t, decl) in config.topics.iter_mut().zip(topics) {
            if decl.retention_bytes.is_none() {
                let extra_segments = share / decl.segment_bytes.max(1);
                t.retention_bytes = decl.segment_bytes.saturating_mul(extra_segments.saturating_add(1));
            }
        }
    }
    Ok(config)
}

/// Parses the declarations.
pub fn parse(text: &str) -> Result<Vec<TopicDecl>, ConfigError> {
    let words = words(text);
    let mut topics: Vec<TopicDecl> = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let word = at(&words, i);
        i += 1;
        match word.text {
            ";" => continue,
            "topic" => {}
            other => {
                return Err(word.error(
                    format!("expected `topic`, found `{other}`"),
                    "a declaration reads `topic NAME [partitions N] [segment SIZE] [retention SIZE AGE]`",
                ));
            }
        }
        let name = at(&words, i);
        i += 1;
        if name.text == ";" {
            return Err(name.error("`topic` needs a name", "e.g. `topic sensor partitions 1`"));
        }
        if !valid_name(name.text) {
            return Err(name
                .error(format!("bad topic name `{}`", name.text), "1-255 characters of A-Z a-z 0-9 . _ -"));
        }
        if topics.iter().any(|t| t.name == name.text) {
            return Err(name.error(
                format!("topic `{}` is declared twice", name.text),
                "give each topic one declaration",
            ));
        }
        let mut decl = TopicDecl {
            name: name.text.to_string(),
            partitions: 1,
            segment_bytes: DEFAULT_SEGMENT_BYTES,
            retention_bytes: None,
            retention_ms: None,
        };
        let mut seen: Vec<&str> = Vec::new();
        let mut retention_at = None;
        while at(&words, i).text != ";" {
            let option = at(&words, i);
            i += 1;
            if seen.contains(&option.text) {
                return Err(option.error(
                    format!("`{}` is given twice for topic `{}`", option.text, decl.name),
                    "give each option once",
                ));
            }
            let value = at(&words, i);
            let missing = || {
                value.error(
                    format!("`{}` needs a value", option.text),
                    "e.g. `partitions 4`, `segment 64KiB`, `retention 1MiB 10m`",
                )
            };
            if value.text == ";" {
                return Err(missing());
            }
            i += 1;
            match option.text {
                "partitions" => {
                    decl.partitions = value
                        .text
                        .parse::<u32>()
                        .ok()
                        .filter(|n| (1..=MAX_PARTITIONS).contains(n))
                        .ok_or_else(|| {
                            value.error(
                                format!("bad partition count `{}`", value.text),
                                "a whole number from 1 to 1024",
                            )
                        })?;
                }
                "segment" => {
                    decl.segment_bytes = quantity(&value, &SIZE_UNITS)
                        .filter(|n| (MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(n))
                        .ok_or_else(|| {
                            value.error(
                                format!("bad segment size `{}`", value.text),
                                "a size from 1KiB to 1GiB with a unit: B, KiB, MiB, GiB (e.g. 64KiB)",
                            )
                        })?;
                }
                "retention" => {
                    retention_at = Some(option);
                    let mut limit = value;
                    loop {
                        if let Some(bytes) = quantity(&limit, &SIZE_UNITS) {
                            if decl.retention_bytes.replace(bytes).is_some() {
                                return Err(
                                    limit.error("two retention sizes", "give one size and/or one age")
                                );
                            }
                        } else if let Some(ms) = quantity(&limit, &AGE_UNITS) {
                            if decl.retention_ms.replace(ms).is_some() {
                                return Err(limit.error("two retention ages", "give one size and/or one age"));
                            }
                        } else {
                            return Err(limit.error(format!("bad retention limit `{}`", limit.text), "a size (B, KiB, MiB, GiB) or an age (ms, s, m, h, d), e.g. `retention 256KiB 10m`"));
                        }
                        let next = at(&words, i);
                        let is_limit = next.text.as_bytes().first().is_some_and(u8::is_ascii_digit);
                        if !is_limit {
                            break;
                        }
                        limit = next;
                        i += 1;
                    }
                    if decl.retention_ms == Some(0) || decl.retention_bytes == Some(0) {
                        return Err(value.error(
                            "a retention limit of 0 would drop every record",
                            "give a positive size or age, or leave retention out",
                        ));
                    }
                }
                other => {
                    return Err(option.error(
                        format!("unknown option `{other}`"),
                        "options are `partitions`, `segment` and `retention`",
                    ));
                }
            }
            seen.push(option.text);
        }
        if let (Some(at), Some(bytes)) = (retention_at, decl.retention_bytes) {
            if bytes < decl.segment_bytes {
                return Err(at.error(
                    format!("retention {bytes} B is smaller than one segment ({} B)", decl.segment_bytes),
                    "retention drops whole segments: keep at least one (raise retention or lower segment)",
                ));
            }
        }
        topics.push(decl);
    }
    if topics.is_empty() {
        return Err(ConfigError {
            line: 1,
            column: 1,
            message: "no topic declared".into(),
            hint: "declare at least one: `topic NAME partitions N`",
        });
    }
    Ok(topics)
}

#[cfg(test)]
mod tests;
