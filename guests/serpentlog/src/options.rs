//! The broker's args (the `args "..."` of its partition in the table): the topic
//! declarations of `serpentlog::config`, plus one statement for tests:
//!
//! - `crash_after N`: on the partition's first run (restart count 0), panic on purpose
//!   (the SDK reports it to the health monitor as a `panic` event, which the table
//!   answers, by default with a restart) right after the request that brings the records
//!   appended since boot to N or more, before its answer is sent. The restart test uses it
//!   to kill the broker in the middle of a produce stream.
//!
//! The statement is blanked out (replaced by spaces) before the rest goes to the topic
//! parser, so the parser's line and column numbers stay those of the original text.

use alloc::string::String;

/// The keyword of the test hook.
pub const CRASH_AFTER: &str = "crash_after";

/// The args with the test hook taken out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerArgs {
    /// The topic declarations, same length and positions as the original text.
    pub topics_text: String,
    pub crash_after: Option<u64>,
}

/// Splits `args`; an unreadable `crash_after` value is an error naming it.
pub fn split(args: &str) -> Result<BrokerArgs, String> {
    let mut topics_text = String::with_capacity(args.len());
    let mut crash_after = None;
    for (line_no, line) in args.split_inclusive('\n').enumerate() {
        for statement in line.split_inclusive(';') {
            let mut words = statement.trim_end_matches([';', '\n']).split_whitespace();
            if words.next() == Some(CRASH_AFTER) {
                let value =
                    words.next().and_then(|w| w.parse::<u64>().ok()).filter(|_| words.next().is_none());
                match value {
                    Some(n) => crash_after = Some(n),
                    None => {
                        return Err(alloc::format!(
                        "line {}: `{CRASH_AFTER}` takes one number of records (e.g. `{CRASH_AFTER} 4000`)",
                        line_no + 1
                    ))
                    }
                }
                topics_text.extend(statement.chars().map(|c| if c == '\n' || c == ';' { c } else { ' ' }));
            } else {
                topics_text.push_str(statement);
            }
        }
    }
    Ok(BrokerArgs { topics_text, crash_after })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hook_is_taken_out_and_positions_are_kept() {
        let args = "topic a partitions 2; crash_after 40; topic b";
        let split = split(args).unwrap();
        assert_eq!(split.crash_after, Some(40));
        assert_eq!(split.topics_text.len(), args.len());
        assert_eq!(split.topics_text.find("topic b"), args.find("topic b"));
        assert!(!split.topics_text.contains("crash"));
    }

    #[test]
    fn without_the_hook_the_text_is_unchanged() {
        let args = "topic a\ntopic b partitions 4";
        assert_eq!(split(args).unwrap(), BrokerArgs { topics_text: args.into(), crash_after: None });
    }

    #[test]
    fn a_bad_value_is_an_error_with_the_line() {
        assert!(split("topic a\ncrash_after soon").unwrap_err().starts_with("line 2:"));
        assert!(split("crash_after").is_err());
        assert!(split("crash_after 3 4").is_err());
    }
}
