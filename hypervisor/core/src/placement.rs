//! Memory placement: choosing host-physical ranges for the hypervisor's reservation, every
//! partition's RAM and the channel window, inside the firmware's usable RAM.
//!
//! Every range is 2 MiB aligned and a whole number of 2 MiB (so EPT can use large pages).
//! Pinned requests are placed first, exactly where the table says (refused when that is
//! not usable RAM or collides with another pinned request); the others go, largest first,
//! at the lowest address where they fit. Errors name the request that does not fit and
//! the largest free block left, so the console line says what to change.
//!
//! [`place_table`] applies this to a partition table: the hypervisor reservation
//! (`Platform::hv_reserved_bytes`), each partition's RAM (honouring `PFLAG_PINNED`), each
//! persistent region (a block of its own, so scrubbing RAM on a restart never touches it),
//! and one block for the whole channel window (channel `c` lives at
//! `channels_base + c.window_offset`, see [`crate::vmx::ept::ChannelMapping::for_partition`]).
//!
//! ```
//! use hallows_core::placement::{place, Region, Request};
//! const MIB: u64 = 1 << 20;
//! let free = [Region { base: 0x10_0000, bytes: 63 * MIB }]; // 1 MiB .. 64 MiB
//! let requests = [
//!     Request { name: "hv", bytes: 8 * MIB, pinned: None },
//!     Request { name: "a", bytes: 16 * MIB, pinned: Some(32 * MIB) },
//! ];
//! let mut bases = [0; 2];
//! place(&free, &requests, &mut bases).unwrap();
//! assert_eq!(bases, [2 * MIB, 32 * MIB]);
//! ```

extern crate alloc;

use alloc::vec::Vec;
use core::fmt;
use hallows_abi::layout::LARGE_PAGE_SIZE;
use hallows_abi::table::{Table, PFLAG_PINNED};

/// A range of usable host RAM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Region {
    pub base: u64,
    pub bytes: u64,
}

/// Memory someone needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    /// For error messages.
    pub name: &'a str,
    /// Rounded up to 2 MiB.
    pub bytes: u64,
    /// Host-physical base it must have.
    pub pinned: Option<u64>,
}

/// Why placement failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PlacementError<'a> {
    /// A request of zero bytes (or too large to round up).
    BadSize { name: &'a str, bytes: u64 },
    /// A pinned base that is not 2 MiB aligned.
    PinnedMisaligned { name: &'a str, base: u64 },
    /// A pinned range that is not entirely usable RAM (or is taken by another pinned request).
    PinnedNotFree { name: &'a str, base: u64, bytes: u64 },
    /// No free block is large enough.
    DoesNotFit { name: &'a str, bytes: u64, largest_free: u64 },
    /// The output slice is shorter than the request list.
    OutputTooShort,
}

impl fmt::Display for PlacementError<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadSize { name, bytes } => write!(f, "{name}: bad size {bytes:#x}"),
            Self::PinnedMisaligned { name, base } => {
                write!(f, "{name}: pinned base {base:#x} is not 2 MiB aligned")
            }
            Self::PinnedNotFree { name, base, bytes } => write!(
                f,
                "{name}: pinned range {base:#x}..{:#x} is not free usable RAM",
                base.saturating_add(bytes)
            ),
            Self::DoesNotFit { name, bytes, largest_free } => write!(
                f,
                "{name}: needs {} MiB, largest free block is {} MiB",
                bytes >> 20,
                largest_free >> 20
            ),
            Self::OutputTooShort => write!(f, "placement output shorter than the request list"),
        }
    }
}

fn round_up(v: u64) -> Option<u64> {
    v.checked_add(LARGE_PAGE_SIZE - 1).map(|v| v & !(LARGE_PAGE_SIZE - 1))
}

/// The usable regions cut to 2 MiB boundaries, sorted and merged.
fn normalise(free: &[Region]) -> Vec<(u64, u64)> {
    let mut blocks: Vec<(u64, u64)> = free
        .iter()
        .filter_map(|r| {
            let start = round_up(r.base)?;
            let end = r.base.saturating_add(r.bytes) & !(LARGE_PAGE_SIZE - 1);
            (start < end).then_some((start, end))
        })
        .collect();
    blocks.sort_unstable();
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(blocks.len());
    for (start, end) in blocks {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

/// Removes `[start, end)` from `blocks` if it lies inside one block.
fn carve(blocks: &mut Vec<(u64, u64)>, start: u64, end: u64) -> bool {
    let Some(i) = blocks.iter().position(|&(s, e)| s <= start && end <= e) else {
        return false;
    };
    let (s, e) = blocks[i];
    blocks.remove(i);
    if end < e {
        blocks.insert(i, (end, e));
    }
    if s < start {
        blocks.insert(i, (s, start));
    }
    true
}

/// Places `requests` in `free`, writing each request's host-physical base into `bases`
/// (same index).
pub fn place<'a>(
    free: &[Region],
    requests: &[Request<'a>],
    bases: &mut [u64],
) -> Result<(), PlacementError<'a>> {
    if bases.len() < requests.len() {
        return Err(PlacementError::OutputTooShort);
    }
    let mut blocks = normalise(free);
    let mut sizes = Vec::with_capacity(requests.len());
    for r in requests {
        match round_up(r.bytes) {
            Some(bytes) if bytes > 0 => sizes.push(bytes),
            _ => return Err(PlacementError::BadSize { name: r.name, bytes: r.bytes }),
        }
    }
    for (i, r) in requests.iter().enumerate() {
        let Some(base) = r.pinned else { continue };
        if !base.is_multiple_of(LARGE_PAGE_SIZE) {
            return Err(PlacementError::PinnedMisaligned { name: r.name, base });
        }
        let end = base.checked_add(sizes[i]);
        if !end.is_some_and(|end| carve(&mut blocks, base, end)) {
            return Err(PlacementError::PinnedNotFree { name: r.name, base, bytes: sizes[i] });
        }
        bases[i] = base;
    }
    let mut order: Vec<usize> = (0..requests.len()).filter(|&i| requests[i].pinned.is_none()).collect();
    // Largest first; equal sizes keep table order, so placement is deterministic.
    order.sort_by_key(|&i| core::cmp::Reverse(sizes[i]));
    for i in order {
        let bytes = sizes[i];
        let Some(&(start, _)) = blocks.iter().find(|&&(s, e)| e - s >= bytes) else {
            let largest_free = blocks.iter().map(|&(s, e)| e - s).max().unwrap_or(0);
            return Err(PlacementError::DoesNotFit { name: requests[i].name, bytes, largest_free });
        };
        carve(&mut blocks, start, start + bytes);
        bases[i] = start;
    }
    Ok(())
}

/// Where everything of a table goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TablePlacement {
    /// Base of the hypervisor's reservation (`hv_reserved_bytes`, rounded up to 2 MiB).
    pub hv_base: u64,
    pub hv_bytes: u64,
    /// Base of each partition's RAM, by partition index.
    pub partitions: Vec<u64>,
    /// Base of the channel-window block (`None` when the table has no channel).
    pub channels_base: Option<u64>,
    /// Bytes of the channel-window block (the highest channel end, rounded up to 2 MiB).
    pub channels_bytes: u64,
    /// Base of each partition's persistent region, by partition index (`None`: it has
    /// none). The block is the region's size rounded up to 2 MiB.
    pub persistent: Vec<Option<u64>>,
}

/// The boot log's account of what the hypervisor reserved from the firmware:
/// `boot_heap` bytes taken at entry, the hypervisor's reservation, every partition's RAM
/// (`partition_bytes` in all) and the channel window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Reserved {
    pub boot_heap: u64,
    pub hypervisor: u64,
    pub partitions: u64,
    pub channels: u64,
}

impl TablePlacement {
    /// What was reserved, given the boot heap and the partitions' RAM sizes.
    pub fn reserved(&self, boot_heap: u64, partition_bytes: impl Iterator<Item = u64>) -> Reserved {
        let partitions = partition_bytes.fold(0, u64::saturating_add);
        Reserved { boot_heap, hypervisor: self.hv_bytes, partitions, channels: self.channels_bytes }
    }
}

impl fmt::Display for Reserved {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hypervisor = self.boot_heap.saturating_add(self.hypervisor);
        let all = hypervisor.saturating_add(self.partitions).saturating_add(self.channels);
        write!(
            f,
            "reserved {} MiB: {} MiB hypervisor (boot heap + reservation), {} MiB partitions, {} MiB channels",
            all >> 20,
            hypervisor >> 20,
            self.partitions >> 20,
            self.channels >> 20
        )
    }
}

/// One step of the hypervisor's bump allocator over its reservation: with the next free
/// byte at `next` and the reservation ending at `end`, a block of `size` bytes aligned to
/// `align` (a power of two) starts at the first return value and moves `next` to the
/// second; `None` when it does not fit (or the addresses overflow).
pub const fn bump(next: usize, end: usize, size: usize, align: usize) -> Option<(usize, usize)> {
    let Some(padded) = next.checked_add(align - 1) else { return None };
    let start = padded & !(align - 1);
    match start.checked_add(size) {
        Some(new_next) if new_next <= end => Some((start, new_next)),
        _ => None,
    }
}

/// Places a (validated) table's memory in `free`.
pub fn place_table<'a>(table: &Table<'a>, free: &[Region]) -> Result<TablePlacement, PlacementError<'a>> {
    let hv_bytes = table.platform().hv_reserved_bytes.get();
    let channels_end =
        table.channels.iter().map(|c| c.window_offset.get().saturating_add(c.bytes.get())).max().unwrap_or(0);
    let mut requests = Vec::with_capacity(table.partitions.len() + 2);
    requests.push(Request { name: "hypervisor reservation", bytes: hv_bytes, pinned: None });
    for p in table.partitions.iter() {
        let pinned = (p.flags & PFLAG_PINNED != 0).then(|| p.pinned_base.get());
        requests.push(Request { name: table.text(p.name), bytes: p.ram_bytes.get(), pinned });
    }
    let channels_at = requests.len();
    if channels_end > 0 {
        requests.push(Request { name: "channel window", bytes: channels_end, pinned: None });
    }
    // Persistent regions last: equal sizes keep request order, so adding one never moves
    // what a table without them places.
    let mut persistent_at = Vec::with_capacity(table.partitions.len());
    for (i, p) in table.partitions.iter().enumerate() {
        let bytes = table.persistent_bytes(i);
        persistent_at.push((bytes > 0).then_some(requests.len()));
        if bytes > 0 {
            requests.push(Request { name: table.text(p.name), bytes, pinned: None });
        }
    }
    let mut bases = alloc::vec![0u64; requests.len()];
    place(free, &requests, &mut bases)?;
    let partitions = bases[1..1 + table.partitions.len()].to_vec();
    Ok(TablePlacement {
        hv_base: bases[0],
        hv_bytes: round_up(hv_bytes).unwrap_or(0),
        partitions,
        channels_base: (channels_end > 0).then(|| bases[channels_at]),
        channels_bytes: if channels_end > 0 { round_up(channels_end).unwrap_or(0) } else { 0 },
        persistent: persistent_at.iter().map(|at| at.map(|at| bases[at])).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB: u64 = 1 << 20;

    fn req(name: &str, mib: u64, pinned: Option<u64>) -> Request<'_> {
        Request { name, bytes: mib * MIB, pinned }
    }

    #[test]
    fn regions_are_aligned_sorted_and_merged() {
        let free = [
            Region { base: 10 * MIB + 5, bytes: 10 * MIB },
            Region { base: 0x1000, bytes: 3 * MIB },
            Region { base: 20 * MIB, bytes: 2 * MIB },
        ];
        // The second region holds no whole aligned 2 MiB; the others touch and merge.
        assert_eq!(normalise(&free), vec![(12 * MIB, 22 * MIB)]);
    }

    #[test]
    fn largest_first_lowest_address() {
        let free = [Region { base: 0, bytes: 16 * MIB }, Region { base: 64 * MIB, bytes: 64 * MIB }];
        let requests = [req("small", 1, None), req("big", 32, None), req("mid", 8, None)];
        let mut bases = [0; 3];
        place(&free, &requests, &mut bases).unwrap();
        assert_eq!(bases, [8 * MIB, 64 * MIB, 0]);
    }

    #[test]
    fn pinned_requests_are_honoured_or_refused_by_name() {
        let free = [Region { base: 0, bytes: 64 * MIB }];
        let mut bases = [0; 3];
        let ok = [req("a", 4, None), req("pin", 4, Some(0)), req("b", 2, None)];
        place(&free, &ok, &mut bases).unwrap();
        assert_eq!(bases, [4 * MIB, 0, 8 * MIB]);
        let clash = [req("x", 4, Some(8 * MIB)), req("y", 4, Some(10 * MIB))];
        assert_eq!(
            place(&free, &clash, &mut bases),
            Err(PlacementError::PinnedNotFree { name: "y", base: 10 * MIB, bytes: 4 * MIB })
        );
        let outside = [req("z", 4, Some(62 * MIB))];
        assert!(matches!(
            place(&free, &outside, &mut bases),
            Err(PlacementError::PinnedNotFree { name: "z", .. })
        ));
        let odd = [req("o", 4, Some(MIB))];
        assert_eq!(
            place(&free, &odd, &mut bases),
            Err(PlacementError::PinnedMisaligned { name: "o", base: MIB })
        );
        let wrap = [req("w", 4, Some(0xFFFF_FFFF_FFE0_0000))];
        assert!(matches!(place(&free, &wrap, &mut bases), Err(PlacementError::PinnedNotFree { .. })));
    }

    #[test]
    fn errors_say_what_does_not_fit() {
        let free = [Region { base: 0, bytes: 8 * MIB }, Region { base: 16 * MIB, bytes: 6 * MIB }];
        let mut bases = [0; 2];
        let e = place(&free, &[req("a", 8, None), req("b", 8, None)], &mut bases).unwrap_err();
        assert_eq!(e, PlacementError::DoesNotFit { name: "b", bytes: 8 * MIB, largest_free: 6 * MIB });
        assert_eq!(format!("{e}"), "b: needs 8 MiB, largest free block is 6 MiB");
        assert_eq!(
            place(&free, &[req("zero", 0, None)], &mut bases),
            Err(PlacementError::BadSize { name: "zero", bytes: 0 })
        );
        let huge = [Request { name: "h", bytes: u64::MAX, pinned: None }];
        assert!(matches!(place(&free, &huge, &mut bases), Err(PlacementError::BadSize { .. })));
        assert_eq!(place(&free, &[req("a", 1, None)], &mut []), Err(PlacementError::OutputTooShort));
    }

    #[test]
    fn bump_allocation_aligns_and_stays_inside() {
        assert_eq!(bump(0x1001, 0x3000, 0x100, 0x1000), Some((0x2000, 0x2100)));
        assert_eq!(bump(0x2100, 0x3000, 0xF00, 8), Some((0x2100, 0x3000)), "up to the end");
        assert_eq!(bump(0x2100, 0x3000, 0xF01, 8), None);
        assert_eq!(bump(usize::MAX - 2, usize::MAX, 1, 16), None, "no wrap-around");
        assert_eq!(bump(8, usize::MAX, usize::MAX, 1), None);
    }

    #[test]
    fn a_table_is_placed_with_its_channel_window() {
        use hallows_abi::table::*;
        use zerocopy::little_endian::{U32, U64};
        let part = |name: &str, mib: u64, pinned: Option<u64>| PartitionModel {
            name: name.into(),
            kind: KIND_RT,
            hm_actions: [3; 8],
            cores: vec![1],
            ram_bytes: mib * MIB,
            pinned_base: pinned,
            image: "x.elf".into(),
            ..Default::default()
        };
        let model = TableModel {
            platform: Platform {
                cores: U32::new(2),
                hv_reserved_bytes: U64::new(5 * MIB),
                ..Default::default()
            },
            partitions: vec![part("a", 4, None), part("b", 8, Some(256 * MIB))],
            channels: vec![ChannelModel {
                name: "c".into(),
                kind: CHANNEL_SAMPLING,
                source: 0,
                destination: 1,
                msg_size: 8,
                depth: 1,
                window_offset: 0x3000,
                bytes: 0x1000,
                ..Default::default()
            }],
            ..Default::default()
        };
        let bytes = model.to_bytes();
        let table = Table::parse(&bytes).unwrap();
        let free =
            [Region { base: 0x10_0000, bytes: 127 * MIB }, Region { base: 256 * MIB, bytes: 64 * MIB }];
        let p = place_table(&table, &free).unwrap();
        assert_eq!((p.hv_base, p.hv_bytes), (2 * MIB, 6 * MIB));
        assert_eq!(p.partitions, vec![8 * MIB, 256 * MIB]);
        assert_eq!((p.channels_base, p.channels_bytes), (Some(12 * MIB), 2 * MIB));
        assert_eq!(
            p.reserved(4 * MIB, [4 * MIB, 8 * MIB].into_iter()).to_string(),
            "reserved 24 MiB: 10 MiB hypervisor (boot heap + reservation), 12 MiB partitions, 2 MiB channels"
        );
        assert_eq!(p.persistent, vec![None, None]);
        // A persistent region is a block of its own, after everything else of equal size.
        let mut keeping = model.clone();
        keeping.partitions[0].persistent_bytes = 64 << 10;
        let bytes = keeping.to_bytes();
        let table = Table::parse(&bytes).unwrap();
        let k = place_table(&table, &free).unwrap();
        assert_eq!((k.partitions.clone(), k.channels_base), (p.partitions.clone(), p.channels_base));
        assert_eq!(k.persistent, vec![Some(14 * MIB), None]);
        let small = [Region { base: 0, bytes: 8 * MIB }, Region { base: 256 * MIB, bytes: 8 * MIB }];
        assert_eq!(
            place_table(&table, &small).unwrap_err(),
            PlacementError::DoesNotFit { name: "a", bytes: 4 * MIB, largest_free: 2 * MIB }
        );
    }

    proptest! {
        #[test]
        fn placements_are_aligned_disjoint_and_inside_free_memory(
            regions in proptest::collection::vec((0u64..512, 0u64..64), 1..6),
            sizes in proptest::collection::vec(1u64..16, 1..6),
        ) {
            let free: Vec<Region> = regions.iter().map(|&(b, l)| Region { base: b * MIB + 0x1000, bytes: l * MIB }).collect();
            let names: Vec<String> = (0..sizes.len()).map(|i| format!("r{i}")).collect();
            let requests: Vec<Request> = sizes.iter().zip(&names).map(|(&s, n)| Request { name: n, bytes: s * MIB, pinned: None }).collect();
            let mut bases = vec![0; requests.len()];
            if place(&free, &requests, &mut bases).is_ok() {
                let ranges: Vec<(u64, u64)> = bases.iter().zip(&requests).map(|(&b, r)| (b, b + round_up(r.bytes).unwrap())).collect();
                for (i, &(s, e)) in ranges.iter().enumerate() {
                    prop_assert!(s % LARGE_PAGE_SIZE == 0);
                    prop_assert!(normalise(&free).iter().any(|&(fs, fe)| fs <= s && e <= fe));
                    for &(s2, e2) in &ranges[i + 1..] {
                        prop_assert!(e <= s2 || e2 <= s);
                    }
                }
            }
        }
    }
}
