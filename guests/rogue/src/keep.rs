//! The `keeper` mode's record in its persistent region: how many times the partition has
//! booted, kept across the health monitor's restarts. The record is a magic number, the
//! count and its complement, so a region that never held one (zero at boot) or a torn
//! write reads as "no count yet" instead of a wrong number.

/// From this boot count on the `keeper` stays up instead of faulting: the health
/// monitor's restarts bring it there, and from then on only another partition's restart
/// requests move the count (tests/run `persistent`: a plain one counts on, a clean one
/// starts it over at 1, from where the faults bring it back to this count).
pub const STAY_UP_FROM: u64 = 3;

/// Whether the boot numbered `count` faults on purpose (`None`: no region to count in,
/// so every boot faults, as before the region existed).
pub fn faults_on(count: Option<u64>) -> bool {
    count.is_none_or(|n| n < STAY_UP_FROM)
}

/// First eight bytes of the record.
pub const MAGIC: u64 = u64::from_le_bytes(*b"RHKEEP01");
/// Bytes the record takes at the start of the region.
pub const RECORD_BYTES: usize = 24;

fn word(region: &[u8], i: usize) -> u64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&region[i * 8..i * 8 + 8]);
    u64::from_le_bytes(b)
}

/// The boot count the region holds (0 when it holds no whole record).
pub fn boots(region: &[u8]) -> u64 {
    if region.len() < RECORD_BYTES || word(region, 0) != MAGIC {
        return 0;
    }
    let (count, check) = (word(region, 1), word(region, 2));
    if check == !count {
        count
    } else {
        0
    }
}

/// Counts one more boot in `region` and returns the new count; `None` when the region is
/// too small for the record.
pub fn count_boot(region: &mut [u8]) -> Option<u64> {
    if region.len() < RECORD_BYTES {
        return None;
    }
    let count = boots(region) + 1;
    for (i, value) in [MAGIC, count, !count].into_iter().enumerate() {
        region[i * 8..i * 8 + 8].copy_from_slice(&value.to_le_bytes());
    }
    Some(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_a_zeroed_region() {
        let mut region = [0u8; 64];
        assert_eq!(boots(&region), 0);
        assert_eq!(count_boot(&mut region), Some(1));
        assert_eq!(count_boot(&mut region), Some(2));
        assert_eq!(boots(&region), 2);
        assert_eq!(count_boot(&mut [0u8; 16]), None);
    }

    #[test]
    fn faults_until_the_third_boot() {
        assert!(faults_on(None));
        assert!(faults_on(Some(1)) && faults_on(Some(2)));
        assert!(!faults_on(Some(3)) && !faults_on(Some(4)) && !faults_on(Some(u64::MAX)));
    }

    #[test]
    fn a_torn_or_foreign_record_starts_over() {
        let mut region = [0u8; 24];
        count_boot(&mut region);
        region[8] ^= 1; // the count changed, its complement did not
        assert_eq!(boots(&region), 0);
        let mut foreign = [0xAAu8; 24];
        assert_eq!(count_boot(&mut foreign), Some(1));
    }
}
