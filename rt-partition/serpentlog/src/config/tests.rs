use alloc::string::{String, ToString};
use alloc::vec::Vec;

use proptest::prelude::*;

use super::*;

#[test]
fn the_example_parses() {
    let topics =
        parse("topic sensor partitions 1 segment 64KiB retention 256KiB 10m; topic events partitions 4")
            .unwrap();
    assert_eq!(
        topics,
        [
            TopicDecl {
                name: "sensor".into(),
                partitions: 1,
                segment_bytes: 65536,
                retention_bytes: Some(262_144),
                retention_ms: Some(600_000),
            },
            TopicDecl {
                name: "events".into(),
                partitions: 4,
                segment_bytes: DEFAULT_SEGMENT_BYTES,
                retention_bytes: None,
                retention_ms: None,
            },
        ]
    );
}

#[test]
fn lines_comments_units_and_order() {
    let text = "# broker topics\n  topic a.b_c-1 retention 2h 1MiB segment 1MiB   # ages and sizes in any order\n\ntopic x retention 1500ms;;\ntopic y segment 4096B retention 1d\n";
    let topics = parse(text).unwrap();
    assert_eq!(topics.len(), 3);
    assert_eq!(
        (topics[0].retention_ms, topics[0].retention_bytes, topics[0].segment_bytes),
        (Some(7_200_000), Some(1 << 20), 1 << 20)
    );
    assert_eq!(topics[1].retention_ms, Some(1500));
    assert_eq!((topics[2].segment_bytes, topics[2].retention_ms), (4096, Some(86_400_000)));
}

/// The error's (line, column) and a piece of its message.
fn error(text: &str) -> (usize, usize, String) {
    let e = parse(text).unwrap_err();
    assert!(!e.hint.is_empty());
    assert!(e.to_string().contains("hint:"));
    (e.line, e.column, e.message)
}

#[test]
fn errors_point_at_the_word() {
    let cases: [(&str, usize, usize, &str); 16] = [
        ("", 1, 1, "no topic"),
        ("# only a comment", 1, 1, "no topic"),
        ("topics a", 1, 1, "expected `topic`"),
        ("topic", 1, 6, "needs a name"),
        ("topic a\ntopic a", 2, 7, "declared twice"),
        ("topic a/b", 1, 7, "bad topic name"),
        ("topic a partitions", 1, 19, "needs a value"),
        ("topic a partitions 0", 1, 20, "bad partition count"),
        ("topic a partitions 4x", 1, 20, "bad partition count"),
        ("topic a partitions 2 partitions 3", 1, 22, "given twice"),
        ("topic a segment 64", 1, 17, "bad segment size"),
        ("topic a segment 10B", 1, 17, "bad segment size"),
        ("topic a retention 10", 1, 19, "bad retention limit"),
        ("topic a retention 1m 2m", 1, 22, "two retention ages"),
        ("topic a segment 1MiB retention 64KiB", 1, 22, "smaller than one segment"),
        ("topic a colour red", 1, 9, "unknown option"),
    ];
    for (text, line, column, message) in cases {
        let (l, c, m) = error(text);
        assert_eq!((l, c), (line, column), "{text:?}: {m}");
        assert!(m.contains(message), "{text:?}: {m}");
    }
    let (_, _, m) = error("topic a retention 0s");
    assert!(m.contains("0 would drop"), "{m}");
    let (_, _, m) = error("topic a segment 99999999999999999999GiB");
    assert!(m.contains("bad segment size"), "{m}");
}

#[test]
fn columns_count_characters() {
    assert_eq!(error("topic\u{3000}a partitions x"), (1, 20, "bad partition count `x`".to_string()));
}

const WORDS: [&str; 16] = [
    "topic",
    "partitions",
    "segment",
    "retention",
    ";",
    "\n",
    "#",
    "a",
    "b",
    "4",
    "0",
    "64KiB",
    "10m",
    "1GiB",
    "é",
    "99999999999999999999999",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,80}") {
        let _ = parse(&text);
    }

    #[test]
    fn word_soup_never_panics_and_errors_point_inside(words in prop::collection::vec(prop::sample::select(&WORDS[..]), 0..20)) {
        let text = words.join(" ");
        match parse(&text) {
            Ok(topics) => prop_assert!(!topics.is_empty()),
            Err(e) => {
                let lines: Vec<&str> = text.split('\n').collect();
                prop_assert!(e.line >= 1 && e.line <= lines.len().max(1));
                prop_assert!(e.column >= 1 && e.column <= lines[e.line - 1].chars().count() + 1, "{:?}", e);
            }
        }
    }

    #[test]
    fn declarations_round_trip(decls in prop::collection::vec((1u32..=1024, 1u64..1000, prop::option::of(1u64..100), prop::option::of(1u64..10_000)), 1..6)) {
        let mut text = String::new();
        for (i, (partitions, segment_kib, retention_mib, retention_s)) in decls.iter().enumerate() {
            text += &alloc::format!("topic t{i} partitions {partitions} segment {segment_kib}KiB");
            if retention_mib.is_some() || retention_s.is_some() {
                text += " retention";
                if let Some(m) = retention_mib { text += &alloc::format!(" {}GiB", m); }
                if let Some(s) = retention_s { text += &alloc::format!(" {s}s"); }
            }
            text += if i % 2 == 0 { ";" } else { "\n" };
        }
        let topics = parse(&text).unwrap();
        for (t, (partitions, segment_kib, retention_mib, retention_s)) in topics.iter().zip(&decls) {
            prop_assert_eq!(t.partitions, *partitions);
            prop_assert_eq!(t.segment_bytes, segment_kib * 1024);
            prop_assert_eq!(t.retention_bytes, retention_mib.map(|m| m << 30));
            prop_assert_eq!(t.retention_ms, retention_s.map(|s| s * 1000));
        }
    }
}

mod broker_config {
    use crate::config::{broker_config, parse};
    use crate::engine::{region_bytes, Broker, Engine, Placement};
    use alloc::vec;

    #[test]
    fn limited_topics_keep_their_size_and_unlimited_ones_share_the_rest() {
        let topics =
            parse("topic a segment 4KiB retention 16KiB; topic b partitions 2 segment 4KiB").unwrap();
        let config = broker_config(&topics, 1 << 20).unwrap();
        assert_eq!(config.topics[0].retention_bytes, 16 * 1024);
        let b = &config.topics[1];
        assert!(b.retention_bytes > 300 * 1024, "{b:?}");
        let used = region_bytes(&config).unwrap();
        assert!(used <= 1 << 20 && used > (1 << 20) - 3 * 8 * 1024, "{used}");
        let mut region = vec![0u8; 1 << 20];
        let (mut broker, _) = Broker::open(config, &mut region, 0).unwrap();
        assert!(broker.produce("b", Placement::Partition(1), None, &[b"x"], 0).is_ok());
    }

    #[test]
    fn a_region_too_small_is_the_engine_error() {
        let topics = parse("topic a segment 64KiB retention 1MiB").unwrap();
        let err = broker_config(&topics, 1 << 20).and_then(|c| region_bytes(&c).map(|_| c));
        let config = err.unwrap();
        let mut region = vec![0u8; 1 << 20];
        assert!(Broker::open(config, &mut region, 0).is_err());
    }
}
