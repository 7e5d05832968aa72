//! `parseltongue explain CODE|PRIVILEGE`: what a diagnostic code means, with a minimal
//! example, or what a word of `privileges` lets a partition do.

use crate::diagnostics::{Code, Severity};

/// The example of every code (the files the error-code tests run).
const EXAMPLES: &[(&str, &str)] = &[
    ("PT0101", include_str!("../tests/errors/PT0101.pt")),
    ("PT0102", include_str!("../tests/errors/PT0102.pt")),
    ("PT0103", include_str!("../tests/errors/PT0103.pt")),
    ("PT0104", include_str!("../tests/errors/PT0104.pt")),
    ("PT0105", include_str!("../tests/errors/PT0105.pt")),
    ("PT0106", include_str!("../tests/errors/PT0106.pt")),
    ("PT0107", include_str!("../tests/errors/PT0107.pt")),
    ("PT0108", include_str!("../tests/errors/PT0108.pt")),
    ("PT0109", include_str!("../tests/errors/PT0109.pt")),
    ("PT0110", include_str!("../tests/errors/PT0110.pt")),
    ("PT0111", include_str!("../tests/errors/PT0111.pt")),
    ("PT0112", include_str!("../tests/errors/PT0112.pt")),
    ("PT0113", include_str!("../tests/errors/PT0113.pt")),
    ("PT0114", include_str!("../tests/errors/PT0114.pt")),
    ("PT0201", include_str!("../tests/errors/PT0201.pt")),
    ("PT0202", include_str!("../tests/errors/PT0202.pt")),
    ("PT0203", include_str!("../tests/errors/PT0203.pt")),
    ("PT0204", include_str!("../tests/errors/PT0204.pt")),
    ("PT0205", include_str!("../tests/errors/PT0205.pt")),
    ("PT0301", include_str!("../tests/errors/PT0301.pt")),
    ("PT0302", include_str!("../tests/errors/PT0302.pt")),
    ("PT0303", include_str!("../tests/errors/PT0303.pt")),
    ("PT0304", include_str!("../tests/errors/PT0304.pt")),
    ("PT0305", include_str!("../tests/errors/PT0305.pt")),
    ("PT0306", include_str!("../tests/errors/PT0306.pt")),
    ("PT0307", include_str!("../tests/errors/PT0307.pt")),
    ("PT0308", include_str!("../tests/errors/PT0308.pt")),
    ("PT0309", include_str!("../tests/errors/PT0309.pt")),
    ("PT0310", include_str!("../tests/errors/PT0310.pt")),
    ("PT0312", include_str!("../tests/errors/PT0312.pt")),
    ("PT0401", include_str!("../tests/errors/PT0401.pt")),
    ("PT0402", include_str!("../tests/errors/PT0402.pt")),
    ("PT0403", include_str!("../tests/errors/PT0403.pt")),
    ("PT0404", include_str!("../tests/errors/PT0404.pt")),
    ("PT0405", include_str!("../tests/errors/PT0405.pt")),
    ("PT0406", include_str!("../tests/errors/PT0406.pt")),
    ("PT0407", include_str!("../tests/errors/PT0407.pt")),
    ("PT0408", include_str!("../tests/errors/PT0408.pt")),
    ("PT0409", include_str!("../tests/errors/PT0409.pt")),
    ("PT0410", include_str!("../tests/errors/PT0410.pt")),
    ("PT0501", include_str!("../tests/errors/PT0501.pt")),
    ("PT0502", include_str!("../tests/errors/PT0502.pt")),
    ("PT0503", include_str!("../tests/errors/PT0503.pt")),
    ("PT0504", include_str!("../tests/errors/PT0504.pt")),
    ("PT0505", include_str!("../tests/errors/PT0505.pt")),
    ("PT0506", include_str!("../tests/errors/PT0506.pt")),
    ("PT0601", include_str!("../tests/errors/PT0601.pt")),
    ("PT0602", include_str!("../tests/errors/PT0602.pt")),
    ("PT0603", include_str!("../tests/errors/PT0603.pt")),
    ("PT0604", include_str!("../tests/errors/PT0604.pt")),
    ("PT0605", include_str!("../tests/errors/PT0605.pt")),
    ("PT0606", include_str!("../tests/errors/PT0606.pt")),
    ("PT0607", include_str!("../tests/errors/PT0607.pt")),
    ("PT0608", include_str!("../tests/errors/PT0608.pt")),
    ("PT0609", include_str!("../tests/errors/PT0609.pt")),
    ("PT0610", include_str!("../tests/errors/PT0610.pt")),
    ("PT0611", include_str!("../tests/errors/PT0611.pt")),
    ("PT0701", include_str!("../tests/errors/PT0701.pt")),
    ("PT0702", include_str!("../tests/errors/PT0702.pt")),
    ("PT0703", include_str!("../tests/errors/PT0703.pt")),
    ("PT0704", include_str!("../tests/errors/PT0704.pt")),
    ("PT0705", include_str!("../tests/errors/PT0705.pt")),
    ("PT0706", include_str!("../tests/errors/PT0706.pt")),
    ("PT0707", include_str!("../tests/errors/PT0707.pt")),
    ("PT0708", include_str!("../tests/errors/PT0708.pt")),
    ("PT0801", include_str!("../tests/errors/PT0801.pt")),
    ("PT0802", include_str!("../tests/errors/PT0802.pt")),
    ("PT0803", include_str!("../tests/errors/PT0803.pt")),
    ("PT0804", include_str!("../tests/errors/PT0804.pt")),
    ("PT0805", include_str!("../tests/errors/PT0805.pt")),
    ("PT0806", include_str!("../tests/errors/PT0806.pt")),
    ("PT0807", include_str!("../tests/errors/PT0807.pt")),
    ("PT0808", include_str!("../tests/errors/PT0808.pt")),
    ("PT0901", include_str!("../tests/errors/PT0901.pt")),
    ("PT1001", include_str!("../tests/errors/PT1001.pt")),
    ("PT1002", include_str!("../tests/errors/PT1002.pt")),
    ("PT1003", include_str!("../tests/errors/PT1003.pt")),
    ("PT1004", include_str!("../tests/errors/PT1004.pt")),
    ("PT1005", include_str!("../tests/errors/PT1005.pt")),
];

/// What each word of `privileges` lets a partition do, as the hypervisor enforces it. A
/// partition without any privilege may still read its own state, restart and halt itself.
const PRIVILEGES: &[(&str, &str)] = &[
    (
        "query",
        "\
A partition with `query` may read another partition's state (the `PartitionState`
hypercall) and make the hypervisor print the counters table on the console
(`PrintSummary`). Without it, `PrintSummary` is refused and counted as a
`forbidden_instruction` health event of the caller.",
    ),
    (
        "restart",
        "\
A partition with `restart` may restart another partition with the `RestartPartition`
hypercall: plainly (the target keeps its persistent region, as after a fault) or cleanly
(flag `RESTART_CLEAN`: the region is zeroed too). Each restart counts against the
target's `restarts COUNT per DURATION` budget.",
    ),
    (
        "halt_system",
        "\
`halt_system` is written to the table for a partition allowed to stop the whole
machine; no hypercall of this version asks for it. (The health monitor's `halt_system`
action, chosen with `on EVENT halt_system`, needs no privilege.)",
    ),
    (
        "manage",
        "\
A partition with `manage` is the machine's operator, through the management interface:
it may list every partition (name, kind, state, cores, memory, restarts, image,
schedule), read their counters and newest health events, and halt, start and restart
(plainly or cleanly) any partition other than itself.

An RT partition asks with the `Manage` hypercall. Linux asks through its management PCI
function, where the file permissions of that function's files inside Linux decide which
users and programs may use it. A partition without `manage` that asks is refused
(`Denied`) and the request is a `forbidden_instruction` health event of its own.

Grant it to Linux (the operator's console) and at most one RT partition (a watchdog that
acts while Linux is down, or restarts Linux): two RT operators can undo each other's
actions (one halts a partition, the other starts it again), which `parseltongue check`
warns about (PT1005).",
    ),
];

/// The explanation of a `privileges` word, or `None` for a word the language lacks.
fn explain_privilege(word: &str) -> Option<String> {
    let (word, text) = PRIVILEGES.iter().find(|(w, _)| w.eq_ignore_ascii_case(word))?;
    Some(format!(
        "privileges {word}\n\n{text}\n\nFor example:\n\n    partition operator {{\n        ...\n        privileges {word}\n    }}\n"
    ))
}

/// The explanation of `id`, case-insensitive: a diagnostic code (`PT0302`) or a word of
/// `privileges` (`manage`); `None` for anything else.
pub fn explain(id: &str) -> Option<String> {
    let Some(code) = Code::ALL.iter().find(|c| c.id().eq_ignore_ascii_case(id)) else {
        return explain_privilege(id);
    };
    let severity = match code.severity() {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let mut out = format!("{} ({severity}): {}.\n", code.id(), code.title());
    if let Some((_, example)) = EXAMPLES.iter().find(|(c, _)| *c == code.id()) {
        let body = example.split_once('\n').map_or("", |(_, b)| b);
        out.push_str("\nFor example, `parseltongue check` reports it for:\n\n");
        for line in body.lines() {
            out.push_str(&format!("    {line}\n"));
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_is_explained_with_an_example() {
        for code in Code::ALL {
            let text = explain(code.id()).unwrap();
            assert!(text.starts_with(code.id()));
            // These two cannot have an example file: one needs 65,537 windows, the other
            // a file that is not UTF-8 (the examples are included as text).
            if *code != Code::TooManyWindows && *code != Code::NotUtf8 {
                assert!(text.contains("For example"), "{code} has no example");
            }
        }
        assert!(explain("pt0302").unwrap().contains("two partitions"));
        assert_eq!(explain("PT9999"), None);
    }

    #[test]
    fn every_privilege_is_explained() {
        for (word, _) in crate::parser::PRIVILEGES {
            let text = explain(word).unwrap_or_else(|| panic!("`{word}` has no explanation"));
            assert!(text.starts_with(&format!("privileges {word}\n")), "{text}");
            assert!(text.contains(&format!("        privileges {word}\n")), "{text}");
        }
        assert_eq!(PRIVILEGES.len(), crate::parser::PRIVILEGES.len(), "an explanation of no privilege");
        assert_eq!(explain("admin"), None);
    }

    #[test]
    fn manage_says_what_it_allows_and_through_what() {
        // Compared with the line breaks as spaces, so that rewrapping keeps the test.
        let text = explain("MANAGE").unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        for needle in [
            "list every partition",
            "counters",
            "health events",
            "halt, start and restart",
            "the `Manage` hypercall",
            "management PCI function",
            "file permissions",
            "PT1005",
        ] {
            assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
        }
    }
}
