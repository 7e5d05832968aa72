//! A region holding garbage (random bytes over a used region, header kept or not) must
//! never make the broker panic, and what it recovers must still be a consistent log.

use alloc::vec;
use alloc::vec::Vec;

use proptest::prelude::*;

use super::super::*;
use super::support::*;

fn used_region(config: &BrokerConfig) -> Vec<u8> {
    let mut region = region_for(config);
    let (mut broker, _) = open(config, &mut region);
    for i in 0..40u32 {
        let value = vec![i as u8; (i as usize * 7) % 90];
        let producer = (i % 3 == 0).then_some(Producer { id: 9, sequence: i / 3 });
        broker.produce("t", Placement::Partition(i % 2), producer, &[&value, b"x"], u64::from(i)).unwrap();
        broker.commit(["a", "b"][i as usize % 2], "t", i % 2, u64::from(i)).unwrap();
    }
    drop(broker);
    region
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn garbage_in_the_region_is_survived(
        scribbles in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..40)), 1..8),
        keep_header in any::<bool>(),
    ) {
        let config = config(vec![topic("t", 2, 512, 1500)]);
        let mut region = used_region(&config);
        let len = region.len();
        for (at, bytes) in scribbles {
            let start = at.index(len);
            let start = if keep_header { start.max(REGION_HEADER_BYTES) } else { start };
            for (i, b) in bytes.into_iter().enumerate() {
                if let Some(byte) = region.get_mut(start + i) {
                    *byte = b;
                }
            }
        }
        let (mut broker, _) = open(&config, &mut region);
        for partition in 0..2 {
            let (start, end) = broker.offsets("t", partition).unwrap();
            prop_assert!(start <= end);
            let offsets: Vec<u64> = all_records(&broker, "t", partition).into_iter().map(|r| r.0).collect();
            prop_assert_eq!(offsets, (start..end).collect::<Vec<_>>());
            let appended = broker.produce("t", Placement::Partition(partition), Some(Producer { id: 9, sequence: 99 }), &[b"after"], 100);
            prop_assert!(matches!(appended, Ok(_) | Err(crate::ErrorCode::OutOfOrderSequence)));
            let _ = broker.committed("a", "t", partition);
            broker.commit("c", "t", partition, 1).unwrap();
        }
        broker.enforce_retention(u64::MAX);
    }
}
