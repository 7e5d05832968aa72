//! The per-core register state a partition can set without a VM exit, as the `plant` and
//! `snoop` partitions see it, and how they decide that state leaked between them.
//!
//! Both partitions run on the same core in different windows of a schedule. Each one
//! writes its own recognisable marker values ([`markers`]) into every item it can reach
//! and, at the start of its next activation, reads them back ([`Snapshot`]) and compares
//! ([`inspect`]): a value that is the *other* partition's marker is a leak (the hypervisor
//! did not switch or scrub that state); a value that is not its *own* marker any more is
//! lost state (the hypervisor switched it, but not back). After a restart the planter
//! inspects itself with its own markers as the foreign ones: nothing may survive the
//! restart.
//!
//! Markers are canonical addresses (bits 63:47 clear), so they are valid in DR0-3, CR2 and
//! the FS/GS bases, and are unlike anything a partition computes by itself.

use core::fmt;

/// CR4 bits the rogue partition touches.
pub mod cr4 {
    /// Time-stamp disable.
    pub const TSD: u64 = 1 << 2;
    /// Machine-check enable.
    pub const MCE: u64 = 1 << 6;
    /// Performance-monitoring counter enable.
    pub const PCE: u64 = 1 << 8;
    /// RDFSBASE/WRFSBASE/RDGSBASE/WRGSBASE (the hypervisor allows it).
    pub const FSGSBASE: u64 = 1 << 16;
    /// XSAVE and XSETBV (the hypervisor allows it).
    pub const OSXSAVE: u64 = 1 << 18;
}

/// CR0 bits the rogue partition touches.
pub mod cr0 {
    /// Not write-through.
    pub const NW: u64 = 1 << 29;
    /// Cache disable.
    pub const CD: u64 = 1 << 30;
}

/// XCR0 with x87, SSE and AVX state enabled.
pub const XCR0_X87_SSE_AVX: u64 = 0b111;
/// XCR0's AVX-512 components: opmask, ZMM0-15 bits 511:256, ZMM16-31.
pub const XCR0_AVX512: u64 = 0b1110_0000;
/// An XCR0 the architecture forbids: AVX without SSE.
pub const XCR0_AVX_WITHOUT_SSE: u64 = 0b101;

/// DR6 bits 31:16 and 11:4 read as ones; B0-B3 (bits 3:0) are the writable ones used here.
pub const DR6_FIXED_ONES: u64 = 0xFFFF_0FF0;

/// Which partition a marker belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Owner {
    Planter,
    Snoop,
}

/// Optional processor features that add items to the state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Features {
    /// CPUID.(7,0):EBX.FSGSBASE: the FS/GS bases and, through SWAPGS, KERNEL_GS_BASE can be
    /// read and written without an MSR access.
    pub fsgsbase: bool,
    /// CPUID.1:ECX.XSAVE and AVX, and XCR0 may enable AVX: the upper halves of YMM0-15.
    pub avx: bool,
    /// With `avx`: AVX512F and AVX512BW, and XCR0 may enable the AVX-512 components: the
    /// opmask registers, ZMM0-15 bits 511:256 and ZMM16-31.
    pub avx512: bool,
}

impl Features {
    /// The XCR0 a partition sets to use all of them.
    pub const fn xcr0(self) -> u64 {
        let avx512 = if self.avx && self.avx512 { XCR0_AVX512 } else { 0 };
        if self.avx {
            XCR0_X87_SSE_AVX | avx512
        } else {
            0b11
        }
    }
}

/// One x87 data register as FXSAVE stores it (80 bits).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct X87Register {
    pub significand: u64,
    pub sign_exponent: u16,
}

impl X87Register {
    fn bits(self) -> u128 {
        self.significand as u128 | (self.sign_exponent as u128) << 64
    }

    /// The 10 bytes FLD TBYTE loads and FXSAVE stores.
    pub fn to_bytes(self) -> [u8; 10] {
        let mut b = [0; 10];
        b[..8].copy_from_slice(&self.significand.to_le_bytes());
        b[8..].copy_from_slice(&self.sign_exponent.to_le_bytes());
        b
    }
}

/// FS base, GS base and KERNEL_GS_BASE.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SegmentBases {
    pub fs: u64,
    pub gs: u64,
    pub kernel_gs: u64,
}

/// Everything a partition can set on its core without a VM exit (and without MSR access),
/// as one partition reads or plants it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// DR0-DR3.
    pub debug_address: [u64; 4],
    pub dr6: u64,
    /// CR2 (MOV to CR2 does not exit).
    pub cr2: u64,
    /// CR8, the task-priority register (exits only with CR8-load/store exiting).
    pub cr8: u64,
    /// With [`Features::fsgsbase`].
    pub bases: Option<SegmentBases>,
    /// x87 control word.
    pub fcw: u16,
    /// ST0-ST7 in stack order.
    pub st: [X87Register; 8],
    pub mxcsr: u32,
    /// XMM0-15 as (low, high) 64-bit lanes.
    pub xmm: [[u64; 2]; 16],
    /// Bits 255:128 of YMM0-15, with [`Features::avx`].
    pub ymm_upper: Option<[[u64; 2]; 16]>,
    /// The rest, with [`Features::avx512`]: k0-k7, ...
    pub opmask: Option<[u64; 8]>,
    /// ... bits 511:256 of ZMM0-15 as four 64-bit lanes, ...
    pub zmm_upper: Option<[[u64; 4]; 16]>,
    /// ... and ZMM16-31, eight lanes each.
    pub zmm_high: Option<[[u64; 8]; 16]>,
}

/// One checked piece of state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Item {
    Dr(u8),
    Dr6,
    Cr2,
    FsBase,
    GsBase,
    KernelGsBase,
    Fcw,
    St(u8),
    Mxcsr,
    Xmm(u8),
    YmmUpper(u8),
    Cr8,
    Opmask(u8),
    /// ZMM0-15: `half` 0 is bits 383:256, 1 is bits 511:384.
    ZmmUpper {
        reg: u8,
        half: u8,
    },
    /// ZMM16-31 (`reg` is 16-31): `quarter` n is bits 128n+127:128n.
    ZmmHigh {
        reg: u8,
        quarter: u8,
    },
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dr(n) => write!(f, "DR{n}"),
            Self::Dr6 => f.write_str("DR6"),
            Self::Cr2 => f.write_str("CR2"),
            Self::FsBase => f.write_str("FS_BASE"),
            Self::GsBase => f.write_str("GS_BASE"),
            Self::KernelGsBase => f.write_str("KERNEL_GS_BASE"),
            Self::Fcw => f.write_str("FCW"),
            Self::St(n) => write!(f, "ST{n}"),
            Self::Mxcsr => f.write_str("MXCSR"),
            Self::Xmm(n) => write!(f, "XMM{n}"),
            Self::YmmUpper(n) => write!(f, "YMM{n}[255:128]"),
            Self::Cr8 => f.write_str("CR8"),
            Self::Opmask(n) => write!(f, "K{n}"),
            Self::ZmmUpper { reg, half } => {
                write!(f, "ZMM{reg}[{}:{}]", 383 + 128 * *half as u32, 256 + 128 * *half as u32)
            }
            Self::ZmmHigh { reg, quarter } => {
                write!(f, "ZMM{reg}[{}:{}]", 127 + 128 * *quarter as u32, 128 * *quarter as u32)
            }
        }
    }
}

/// Number of items with every feature.
pub const ITEM_COUNT: usize = 156;

/// Every item, in reporting order.
pub const ITEMS: [Item; ITEM_COUNT] = {
    let mut items = [Item::Dr6; ITEM_COUNT];
    let mut i = 0;
    while i < 4 {
        items[i] = Item::Dr(i as u8);
        i += 1;
    }
    items[4] = Item::Dr6;
    items[5] = Item::Cr2;
    items[6] = Item::FsBase;
    items[7] = Item::GsBase;
    items[8] = Item::KernelGsBase;
    items[9] = Item::Fcw;
    items[10] = Item::Mxcsr;
    let mut n = 0;
    while n < 8 {
        items[11 + n] = Item::St(n as u8);
        n += 1;
    }
    let mut n = 0;
    while n < 16 {
        items[19 + n] = Item::Xmm(n as u8);
        items[35 + n] = Item::YmmUpper(n as u8);
        n += 1;
    }
    items[51] = Item::Cr8;
    let mut n = 0;
    while n < 8 {
        items[52 + n] = Item::Opmask(n as u8);
        n += 1;
    }
    let mut n = 0;
    while n < 16 {
        items[60 + 2 * n] = Item::ZmmUpper { reg: n as u8, half: 0 };
        items[61 + 2 * n] = Item::ZmmUpper { reg: n as u8, half: 1 };
        let mut q = 0;
        while q < 4 {
            items[92 + 4 * n + q] = Item::ZmmHigh { reg: 16 + n as u8, quarter: q as u8 };
            q += 1;
        }
        n += 1;
    }
    items
};

fn lanes(l: [u64; 2]) -> u128 {
    l[0] as u128 | (l[1] as u128) << 64
}

impl Snapshot {
    /// The value of `item`, or `None` when this snapshot does not cover it (a feature the
    /// processor lacks).
    pub fn get(&self, item: Item) -> Option<u128> {
        Some(match item {
            Item::Dr(n) => self.debug_address[n as usize & 3] as u128,
            Item::Dr6 => self.dr6 as u128,
            Item::Cr2 => self.cr2 as u128,
            Item::FsBase => self.bases?.fs as u128,
            Item::GsBase => self.bases?.gs as u128,
            Item::KernelGsBase => self.bases?.kernel_gs as u128,
            Item::Fcw => self.fcw as u128,
            Item::St(n) => self.st[n as usize & 7].bits(),
            Item::Mxcsr => self.mxcsr as u128,
            Item::Xmm(n) => lanes(self.xmm[n as usize & 15]),
            Item::YmmUpper(n) => lanes(self.ymm_upper?[n as usize & 15]),
            Item::Cr8 => self.cr8 as u128,
            Item::Opmask(n) => self.opmask?[n as usize & 7] as u128,
            Item::ZmmUpper { reg, half } => {
                let z = self.zmm_upper?[reg as usize & 15];
                let h = 2 * (half as usize & 1);
                lanes([z[h], z[h + 1]])
            }
            Item::ZmmHigh { reg, quarter } => {
                let z = self.zmm_high?[reg.wrapping_sub(16) as usize & 15];
                let q = 2 * (quarter as usize & 3);
                lanes([z[q], z[q + 1]])
            }
        })
    }

    /// How many items this snapshot covers.
    pub fn item_count(&self) -> usize {
        ITEMS.iter().filter(|&&i| self.get(i).is_some()).count()
    }
}

/// A marker: a canonical address that names its owner and slot.
pub const fn marker(owner: Owner, slot: u64) -> u64 {
    let tag = match owner {
        Owner::Planter => 0xA,
        Owner::Snoop => 0xB,
    };
    0x0000_5EC0_0000_0000 | tag << 28 | (slot & 0xFFFF) << 8 | 0x5A
}

/// `N` consecutive markers from slot `first`.
fn marker_lanes<const N: usize>(owner: Owner, first: u64) -> [u64; N] {
    core::array::from_fn(|lane| marker(owner, first + lane as u64))
}

/// The values `owner` plants: every item the features allow gets a marker of its own.
pub fn markers(owner: Owner, features: Features) -> Snapshot {
    let m = |slot: u64| marker(owner, slot);
    let (dr6_bits, fcw, mxcsr, cr8) = match owner {
        // Different B0-B3 bits, precision/rounding controls, rounding modes and task
        // priorities than the reset values (DR6 0xFFFF0FF0, FCW 0x037F or 0x0040, MXCSR
        // 0x1F80, CR8 0).
        Owner::Planter => (0b0011, 0x0F7F, 0x7F80, 0xA),
        Owner::Snoop => (0b1100, 0x077F, 0x3F80, 0x5),
    };
    let mut st = [X87Register::default(); 8];
    for (i, r) in st.iter_mut().enumerate() {
        // A normal number (explicit integer bit set), loaded and stored unchanged.
        *r = X87Register { significand: 1 << 63 | m(0x100 + i as u64), sign_exponent: 0x4000 + i as u16 };
    }
    let mut xmm = [[0; 2]; 16];
    let mut ymm = [[0; 2]; 16];
    for i in 0..16 {
        xmm[i] = [m(0x200 + 2 * i as u64), m(0x201 + 2 * i as u64)];
        ymm[i] = [m(0x300 + 2 * i as u64), m(0x301 + 2 * i as u64)];
    }
    let opmask: [u64; 8] = marker_lanes(owner, 0x400);
    let zmm_upper: [[u64; 4]; 16] = core::array::from_fn(|r| marker_lanes(owner, 0x500 + 4 * r as u64));
    let zmm_high: [[u64; 8]; 16] = core::array::from_fn(|r| marker_lanes(owner, 0x600 + 8 * r as u64));
    let avx512 = features.avx && features.avx512;
    Snapshot {
        debug_address: [m(0), m(1), m(2), m(3)],
        dr6: DR6_FIXED_ONES | dr6_bits,
        cr2: m(4),
        bases: features.fsgsbase.then_some(SegmentBases { fs: m(5), gs: m(6), kernel_gs: m(7) }),
        fcw,
        st,
        mxcsr,
        xmm,
        ymm_upper: features.avx.then_some(ymm),
        cr8,
        opmask: avx512.then_some(opmask),
        zmm_upper: avx512.then_some(zmm_upper),
        zmm_high: avx512.then_some(zmm_high),
    }
}

/// The x87 control word and MXCSR of the architecture's initial state (FNINIT, XRSTOR of
/// an initial component).
pub const FCW_RESET: u16 = 0x037F;
pub const MXCSR_RESET: u32 = 0x1F80;

/// What every item `features` covers holds after a reset: zero, except DR6's fixed ones,
/// the x87 control word and MXCSR. A restarted partition must find exactly this.
pub fn reset_values(features: Features) -> Snapshot {
    let avx512 = features.avx && features.avx512;
    Snapshot {
        dr6: DR6_FIXED_ONES,
        bases: features.fsgsbase.then_some(SegmentBases::default()),
        fcw: FCW_RESET,
        mxcsr: MXCSR_RESET,
        ymm_upper: features.avx.then_some([[0; 2]; 16]),
        opmask: avx512.then_some([0; 8]),
        zmm_upper: avx512.then_some([[0; 4]; 16]),
        zmm_high: avx512.then_some([[0; 8]; 16]),
        ..Snapshot::default()
    }
}

/// Something wrong with one item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The item holds a value the other partition planted.
    Leak { item: Item, value: u128 },
    /// The item no longer holds the value this partition planted in it.
    Lost { item: Item, value: u128, expected: u128 },
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Leak { item, value } => write!(f, "LEAK {item}={value:#x}"),
            Self::Lost { item, value, expected } => write!(f, "LOST {item}={value:#x} (had {expected:#x})"),
        }
    }
}

/// Compares what a partition reads (`seen`) with another partition's markers (`foreign`)
/// and, if it planted before, its own (`own`). Calls `report` for every finding and
/// returns how many items were checked.
///
/// A leak is an item equal to the foreign marker for the same item, or equal to any of
/// the foreign markers' 64-bit lanes wider than 32 bits wherever it appears (a hypervisor
/// that restores one register's value into another, or half of it, still leaks it). The
/// narrow markers (DR6, FCW, MXCSR, CR8) only count in their own item, where a reset value
/// can never equal them.
pub fn inspect(
    seen: &Snapshot,
    foreign: &Snapshot,
    own: Option<&Snapshot>,
    mut report: impl FnMut(Finding),
) -> usize {
    // Compared in 64-bit lanes, so that half of an XMM register is caught too. The
    // foreign lanes are sorted once and searched, not compared pairwise: this runs at the
    // start of every window, inside the partition's few milliseconds.
    let halves = |v: u128| [v as u64, (v >> 64) as u64];
    let is_wide = |lane: &u64| *lane > u32::MAX as u64;
    let mut wide_lanes = [0u64; 2 * ITEM_COUNT];
    let mut count = 0;
    for lane in ITEMS.iter().filter_map(|&i| foreign.get(i)).flat_map(halves).filter(is_wide) {
        wide_lanes[count] = lane;
        count += 1;
    }
    let wide_lanes = &mut wide_lanes[..count];
    wide_lanes.sort_unstable();
    let is_wide_foreign =
        |v: u128| halves(v).iter().any(|lane| is_wide(lane) && wide_lanes.binary_search(lane).is_ok());
    let mut checks = 0;
    for item in ITEMS {
        let Some(value) = seen.get(item) else { continue };
        checks += 1;
        if foreign.get(item) == Some(value) || is_wide_foreign(value) {
            report(Finding::Leak { item, value });
        } else if let Some(expected) = own.and_then(|o| o.get(item)) {
            if expected != value {
                report(Finding::Lost { item, value, expected });
            }
        }
    }
    checks
}

/// Size of the FXSAVE area.
pub const FXSAVE_BYTES: usize = 512;

/// The parts of a 64-bit FXSAVE image this model uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FxState {
    pub fcw: u16,
    pub mxcsr: u32,
    pub st: [X87Register; 8],
    pub xmm: [[u64; 2]; 16],
}

fn u64_at(area: &[u8; FXSAVE_BYTES], offset: usize) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&area[offset..offset + 8]);
    u64::from_le_bytes(b)
}

/// Decodes an FXSAVE64 image: FCW at byte 0, MXCSR at 24, ST0-7 at 32 + 16 n (10 bytes
/// each), XMM0-15 at 160 + 16 n.
pub fn parse_fxsave(area: &[u8; FXSAVE_BYTES]) -> FxState {
    let mut s = FxState {
        fcw: u16::from_le_bytes([area[0], area[1]]),
        mxcsr: u32::from_le_bytes([area[24], area[25], area[26], area[27]]),
        ..FxState::default()
    };
    for (n, r) in s.st.iter_mut().enumerate() {
        let at = 32 + 16 * n;
        *r = X87Register {
            significand: u64_at(area, at),
            sign_exponent: u16::from_le_bytes([area[at + 8], area[at + 9]]),
        };
    }
    for (n, x) in s.xmm.iter_mut().enumerate() {
        let at = 160 + 16 * n;
        *x = [u64_at(area, at), u64_at(area, at + 8)];
    }
    s
}

/// What the planter does with one of its windows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WindowPlan {
    /// Plant, then give the rest of the window up with `Yield(0)`.
    Yield,
    /// Plant, then compute until the preemption timer ends the window (the other way a
    /// window switch happens).
    SpinUntilPreempted,
    /// Restart itself through the `RestartPartition` hypercall.
    RestartSelf,
}

/// Every this many windows the planter lets the timer end the window.
pub const SPIN_EVERY_WINDOWS: u64 = 20;
/// The planter restarts itself after at least this many windows ...
pub const RESTART_AFTER_WINDOWS: u64 = 50;
/// ... and, when it was restarted before, at least this long after its current
/// incarnation started. Consecutive restarts are then more than 5 s apart: at most 2 in
/// any 10 s, below the health monitor's default threshold (3 per 10 s), so the planter is
/// never halted for them. The first restart only waits for the windows.
pub const MIN_INCARNATION_NS: u64 = 5_500_000_000;

/// The plan for the planter's `window`-th window (counted from 1) of an incarnation that
/// started `age_ns` ago; `restarted_before` when this incarnation is itself a restart.
pub fn plan_window(window: u64, age_ns: u64, restarted_before: bool) -> WindowPlan {
    if window >= RESTART_AFTER_WINDOWS && (!restarted_before || age_ns >= MIN_INCARNATION_NS) {
        WindowPlan::RestartSelf
    } else if window.is_multiple_of(SPIN_EVERY_WINDOWS) {
        WindowPlan::SpinUntilPreempted
    } else {
        WindowPlan::Yield
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALL: Features = Features { fsgsbase: true, avx: true, avx512: true };
    const NO_AVX512: Features = Features { fsgsbase: true, avx: true, avx512: false };

    fn findings(seen: &Snapshot, foreign: &Snapshot, own: Option<&Snapshot>) -> (usize, Vec<Finding>) {
        let mut out = Vec::new();
        let n = inspect(seen, foreign, own, |f| out.push(f));
        (n, out)
    }

    #[test]
    fn item_counts_follow_the_features() {
        assert_eq!(markers(Owner::Snoop, ALL).item_count(), ITEM_COUNT);
        assert_eq!(markers(Owner::Snoop, NO_AVX512).item_count(), 52);
        assert_eq!(
            markers(Owner::Snoop, Features { fsgsbase: true, avx: false, avx512: true }).item_count(),
            36
        );
        assert_eq!(markers(Owner::Snoop, Features::default()).item_count(), 33);
    }

    #[test]
    fn markers_are_canonical_distinct_and_differ_between_owners() {
        let (a, b) = (markers(Owner::Planter, ALL), markers(Owner::Snoop, ALL));
        let mut seen = std::collections::HashSet::new();
        for item in ITEMS {
            let (va, vb) = (a.get(item).unwrap(), b.get(item).unwrap());
            assert_ne!(va, vb, "{item}");
            assert!(seen.insert(va) && seen.insert(vb), "{item} repeats a value");
        }
        for v in a.debug_address.iter().chain(&b.debug_address).chain([&a.cr2, &b.cr2]) {
            assert_eq!(v >> 47, 0, "{v:#x} is not a canonical lower-half address");
        }
        assert_eq!(a.st[0].significand >> 63, 1, "x87 markers are normal numbers");
    }

    #[test]
    fn own_state_intact_and_no_foreign_value_is_clean() {
        let own = markers(Owner::Snoop, ALL);
        let (n, f) = findings(&own, &markers(Owner::Planter, ALL), Some(&own));
        assert_eq!((n, f), (ITEM_COUNT, vec![]));
    }

    #[test]
    fn reset_state_is_clean_for_a_first_look_and_after_a_restart() {
        let reset = reset_values(ALL);
        let (n, f) = findings(&reset, &markers(Owner::Planter, ALL), None);
        assert_eq!((n, f), (ITEM_COUNT, vec![]));
        let (n, f) = findings(&reset, &markers(Owner::Planter, ALL), Some(&reset));
        assert_eq!((n, f), (ITEM_COUNT, vec![]));
        assert_eq!(reset_values(NO_AVX512).item_count(), 52);
        assert_eq!(reset_values(Features::default()).item_count(), 33);
    }

    #[test]
    fn state_left_from_elsewhere_is_not_a_reset() {
        let reset = reset_values(ALL);
        let mut seen = reset;
        seen.debug_address[1] = 0x1234;
        seen.zmm_high.as_mut().unwrap()[15][7] = 1;
        let (_, f) = findings(&seen, &markers(Owner::Planter, ALL), Some(&reset));
        assert_eq!(
            f,
            vec![
                Finding::Lost { item: Item::Dr(1), value: 0x1234, expected: 0 },
                Finding::Lost { item: Item::ZmmHigh { reg: 31, quarter: 3 }, value: 1 << 64, expected: 0 },
            ]
        );
    }

    #[test]
    fn a_foreign_value_in_its_own_item_is_a_leak() {
        let planter = markers(Owner::Planter, ALL);
        let mut seen = markers(Owner::Snoop, ALL);
        seen.bases.as_mut().unwrap().kernel_gs = planter.bases.unwrap().kernel_gs;
        seen.dr6 = planter.dr6;
        seen.xmm[15][1] = planter.xmm[15][1];
        let (_, f) = findings(&seen, &planter, None);
        let items: Vec<String> = f.iter().map(|f| f.to_string()).collect();
        assert_eq!(items.len(), 3, "{items:?}");
        assert!(items[0].starts_with("LEAK DR6=0xffff0ff3"), "{items:?}");
        assert!(items[1].starts_with("LEAK KERNEL_GS_BASE=0x5ec0a000075a"), "{items:?}");
        assert!(items[2].starts_with("LEAK XMM15="), "{items:?}");
    }

    #[test]
    fn a_foreign_value_in_another_register_is_a_leak() {
        let planter = markers(Owner::Planter, ALL);
        let mut seen = Snapshot::default();
        seen.debug_address[2] = planter.cr2;
        let (_, f) = findings(&seen, &planter, None);
        assert_eq!(f, vec![Finding::Leak { item: Item::Dr(2), value: planter.cr2 as u128 }]);
    }

    #[test]
    fn narrow_markers_only_count_in_their_own_item() {
        let planter = markers(Owner::Planter, ALL);
        let mut seen = Snapshot { dr6: DR6_FIXED_ONES, fcw: 0x037F, mxcsr: 0x1F80, ..Snapshot::default() };
        seen.xmm[0][0] = planter.mxcsr as u64;
        let (_, f) = findings(&seen, &planter, None);
        assert_eq!(f, vec![]);
    }

    #[test]
    fn a_changed_own_value_is_lost_state() {
        let own = markers(Owner::Planter, ALL);
        let mut seen = own;
        seen.st[3] = X87Register::default();
        seen.mxcsr = 0x1F80;
        let (_, f) = findings(&seen, &markers(Owner::Snoop, ALL), Some(&own));
        assert_eq!(
            f,
            vec![
                Finding::Lost { item: Item::Mxcsr, value: 0x1F80, expected: 0x7F80 },
                Finding::Lost { item: Item::St(3), value: 0, expected: own.st[3].bits() },
            ]
        );
    }

    #[test]
    fn after_a_restart_the_own_markers_are_the_foreign_ones() {
        let planted = markers(Owner::Planter, ALL);
        let mut seen = Snapshot {
            ymm_upper: Some([[0; 2]; 16]),
            bases: Some(SegmentBases::default()),
            ..Default::default()
        };
        seen.ymm_upper.as_mut().unwrap()[7] = planted.ymm_upper.unwrap()[7];
        let (n, f) = findings(&seen, &planted, None);
        assert_eq!(n, 52, "no AVX-512 items in what was read");
        assert_eq!(f.len(), 1);
        assert_eq!(
            f[0].to_string(),
            format!("LEAK YMM7[255:128]={:#x}", lanes(planted.ymm_upper.unwrap()[7]))
        );
    }

    #[test]
    fn avx512_items_name_their_bits_and_catch_a_moved_lane() {
        let planter = markers(Owner::Planter, ALL);
        let mut seen = markers(Owner::Snoop, ALL);
        // The planter's ZMM3 bits 511:448 show up as the snoop's ZMM20 bits 127:64, and its
        // k5 stays in k5.
        seen.zmm_high.as_mut().unwrap()[4][1] = planter.zmm_upper.unwrap()[3][3];
        seen.opmask.as_mut().unwrap()[5] = planter.opmask.unwrap()[5];
        let own = markers(Owner::Snoop, ALL);
        let (_, f) = findings(&seen, &planter, Some(&own));
        let text: Vec<String> = f.iter().map(|f| f.to_string()).collect();
        assert_eq!(text.len(), 2, "{text:?}");
        assert_eq!(text[0], format!("LEAK K5={:#x}", planter.opmask.unwrap()[5]));
        assert!(text[1].starts_with("LEAK ZMM20[127:0]="), "{text:?}");
        assert_eq!(Item::ZmmUpper { reg: 3, half: 1 }.to_string(), "ZMM3[511:384]");
        assert_eq!(Item::ZmmHigh { reg: 31, quarter: 3 }.to_string(), "ZMM31[511:384]");
    }

    #[test]
    fn items_are_listed_once_each() {
        for (i, a) in ITEMS.iter().enumerate() {
            assert!(!ITEMS[i + 1..].contains(a), "{a} twice");
        }
    }

    #[test]
    fn xcr0_follows_the_features() {
        assert_eq!(ALL.xcr0(), 0xE7);
        assert_eq!(NO_AVX512.xcr0(), 0b111);
        assert_eq!(Features::default().xcr0(), 0b11);
    }

    #[test]
    fn fxsave_image_decodes() {
        let mut area = [0u8; FXSAVE_BYTES];
        area[0..2].copy_from_slice(&0x0F7Fu16.to_le_bytes());
        area[24..28].copy_from_slice(&0x7F80u32.to_le_bytes());
        let st5 = X87Register { significand: 0x8000_1234_5678_9ABC, sign_exponent: 0xC001 };
        area[32 + 5 * 16..32 + 5 * 16 + 10].copy_from_slice(&st5.to_bytes());
        area[160 + 16 * 15..160 + 16 * 16].copy_from_slice(&[0x11; 16]);
        area[160..168].copy_from_slice(&7u64.to_le_bytes());
        let s = parse_fxsave(&area);
        assert_eq!((s.fcw, s.mxcsr), (0x0F7F, 0x7F80));
        assert_eq!(s.st[5], st5);
        assert_eq!(s.st[4], X87Register::default());
        assert_eq!(s.xmm[0], [7, 0]);
        assert_eq!(s.xmm[15], [0x1111_1111_1111_1111; 2]);
    }

    #[test]
    fn window_plans() {
        assert_eq!(plan_window(1, 0, false), WindowPlan::Yield);
        assert_eq!(plan_window(20, 0, true), WindowPlan::SpinUntilPreempted);
        assert_eq!(plan_window(49, 10 * MIN_INCARNATION_NS, true), WindowPlan::Yield);
        assert_eq!(
            plan_window(50, 0, false),
            WindowPlan::RestartSelf,
            "the first restart only waits for windows"
        );
        assert_eq!(plan_window(60, MIN_INCARNATION_NS - 1, true), WindowPlan::SpinUntilPreempted);
        assert_eq!(plan_window(50, MIN_INCARNATION_NS, true), WindowPlan::RestartSelf);
    }

    proptest! {
        /// Whatever the pace of the windows, restarts decided by `plan_window` are more
        /// than 5 s apart (after the first), so never 3 within 10 s.
        #[test]
        fn restarts_stay_below_the_default_threshold(steps in proptest::collection::vec(1u64..400_000_000, 1..2000)) {
            let (mut now, mut incarnation_start, mut window) = (0u64, 0u64, 0u64);
            let mut restarts: Vec<u64> = Vec::new();
            for step in steps {
                now += step;
                window += 1;
                if plan_window(window, now - incarnation_start, !restarts.is_empty()) == WindowPlan::RestartSelf {
                    restarts.push(now);
                    incarnation_start = now;
                    window = 0;
                }
            }
            for w in restarts.windows(2) {
                prop_assert!(w[1] - w[0] >= MIN_INCARNATION_NS);
            }
            for w in restarts.windows(3) {
                prop_assert!(w[2] - w[0] >= 10_000_000_000);
            }
        }
    }
}
