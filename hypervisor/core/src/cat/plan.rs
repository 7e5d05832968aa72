//! The classes of service of a whole table, decided once at boot from the table and what
//! CPUID offers.
//!
//! - Every partition with `llc_ways` (or a memory bandwidth share) gets its own class,
//!   `1, 2, ...` in table order; more such partitions than the CPU has classes (halved
//!   under CDP) is a refusal naming the first partition left without one.
//! - Class 0 belongs to the hypervisor and to every partition without ways: the ways
//!   the table gives the hypervisor, or else the widest run of ways no partition uses.
//!   When no way is left, class 0 gets every way if only the hypervisor uses it (its
//!   exits are short and its footprint small), and the table is refused if a partition
//!   without ways would share them.
//! - Every mask is re-checked against CPUID (inside the CPU's ways, at least the
//!   table's minimum width, contiguous); under CDP a partition's code ways get the code
//!   mask and its data ways the data mask. MBA turns a percentage into the CPU's delay
//!   value; a share the CPU cannot express exactly is refused with what it offers.
//! - A CPU without CAT (or without the CDP/MBA the table asks for) is refused when the
//!   table says `require_cat`; otherwise the plan says what is not enforced.

use alloc::string::String;
use alloc::vec::Vec;
use core::fmt;

use hallows_abi::table::{Table, PLATFORM_CDP, PLATFORM_REQUIRE_CAT};

use super::{CatError, CatInfo, MbaInfo, MsrWrite, IA32_L3_MASK_BASE, IA32_L3_QOS_CFG, IA32_MBA_THRTL_BASE};

/// Who uses a class of service.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClassOwner {
    /// Class 0: the hypervisor and the partitions without ways.
    Shared,
    /// The partition with this index.
    Partition(usize),
}

/// One class of service as the boot programs it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassMasks {
    pub owner: ClassOwner,
    /// Capacity bitmask for data (and for code without CDP).
    pub data: u32,
    /// Capacity bitmask for code fetches (equal to `data` without CDP).
    pub code: u32,
    /// MBA delay value (0: not throttled); `None` when MBA is not programmed for the class.
    pub mba_delay: Option<u16>,
    /// Bits of the masks that the CPU says other agents (I/O) also fill.
    pub io_shared: u32,
}

/// The classes of a table on one CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CachePlan {
    /// CDP is enabled (two mask registers per class).
    pub cdp: bool,
    /// Index = class of service.
    pub classes: Vec<ClassMasks>,
    /// Per partition (table order): its class of service.
    pub partition_class: Vec<u16>,
}

/// What the CPU does not enforce although the table asks for it (printed once at boot;
/// a table with `require_cat` is refused instead).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Notice {
    /// No L3 CAT: no way is partitioned.
    NoCat,
    /// The table asks for CDP, the CPU has none: code shares the data ways.
    NoCdp,
    /// The table gives bandwidth shares and the CPU has no (linear) MBA.
    NoMba { linear_missing: bool },
    /// No way is left for class 0: the hypervisor shares every way.
    HypervisorSharesAllWays,
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCat => write!(f, "this CPU has no cache allocation (CAT); LLC ways are not partitioned"),
            Self::NoCdp => {
                write!(f, "this CPU has no code and data prioritisation (CDP); code shares each partition's data ways")
            }
            Self::NoMba { linear_missing: false } => {
                write!(
                    f,
                    "this CPU has no memory bandwidth allocation (MBA); bandwidth shares are not enforced"
                )
            }
            Self::NoMba { linear_missing: true } => {
                write!(
                    f,
                    "this CPU's memory bandwidth allocation is not linear; bandwidth shares are not enforced"
                )
            }
            Self::HypervisorSharesAllWays => {
                write!(f, "every LLC way belongs to a partition: the hypervisor's class 0 gets all ways")
            }
        }
    }
}

/// Why a table's cache allocation cannot boot on this CPU.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// `require_cat` and the CPU has no L3 CAT.
    NoCat,
    /// `require_cat` with CDP asked for, and the CPU has no CDP.
    NoCdp,
    /// `require_cat`, a bandwidth share, and the CPU has no (linear) MBA.
    NoMba { partition: String, linear_missing: bool },
    /// More partitions need a class than the CPU has (class 0 is the hypervisor's).
    TooManyClasses { partition: String, needed: usize, max_cos: u16, cdp: bool },
    /// A partition's ways (or code ways) do not fit the CPU.
    Ways { partition: String, code: bool, error: CatError },
    /// The table's ways for the hypervisor (class 0) do not fit the CPU.
    HypervisorWays { error: CatError },
    /// No way is left for class 0, and this partition (without ways) would share it.
    NoWaysLeft { partition: String, min: u8 },
    /// A bandwidth share the CPU cannot express exactly.
    MbaShare { partition: String, percent: u8, min_percent: u16, step: u16 },
    /// A partition's class has no MBA delay register on this CPU.
    MbaClass { partition: String, cos: u16, max_cos: u16 },
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NoCat => write!(f, "the table requires cache allocation (`require_cat`) and this CPU has no L3 CAT"),
            Self::NoCdp => write!(
                f,
                "the table requires cache allocation with code and data prioritisation (`require_cat`, `cdp`) and this CPU has no CDP"
            ),
            Self::NoMba { partition, linear_missing } => write!(
                f,
                "partition {partition}: the table requires its memory bandwidth share (`require_cat`) and this CPU has {}",
                if *linear_missing { "only non-linear MBA" } else { "no MBA" }
            ),
            Self::TooManyClasses { partition, needed, max_cos, cdp } => write!(
                f,
                "partition {partition}: {needed} partitions need their own class of service, this CPU offers {max_cos} besides the hypervisor's class 0{}",
                if *cdp { " with CDP" } else { "" }
            ),
            Self::Ways { partition, code, error } => {
                write!(f, "partition {partition}: {}{error}", if *code { "code ways: " } else { "" })
            }
            Self::HypervisorWays { error } => write!(f, "the hypervisor's ways: {error}"),
            Self::NoWaysLeft { partition, min } => write!(
                f,
                "partition {partition} has no `llc_ways` and no run of {min} LLC ways is left for it and the hypervisor; give it ways or give the hypervisor ways (`hypervisor {{ llc_ways ... }}`)"
            ),
            Self::MbaShare { partition, percent, min_percent, step } => write!(
                f,
                "partition {partition}: memory bandwidth {percent}% is not expressible; this CPU offers {min_percent}% to 100% in steps of {step}%"
            ),
            Self::MbaClass { partition, cos, max_cos } => write!(
                f,
                "partition {partition}: class of service {cos} has no bandwidth register; this CPU's MBA stops at class {max_cos}"
            ),
        }
    }
}

/// The outcome of planning: what to program (nothing when the CPU has no CAT or the
/// table uses none) and what the boot log should say is not enforced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub plan: Option<CachePlan>,
    pub notices: Vec<Notice>,
}

/// Whether the table asks for any cache or bandwidth allocation at all.
fn table_uses_allocation(table: &Table) -> bool {
    table.hypervisor_ways().is_some()
        || (0..table.partitions.len()).any(|i| {
            table.partitions.get(i).is_some_and(|p| p.llc_way_count != 0)
                || table.cache_fields(i).mba_percent != 0
        })
}

/// The widest run of ways in `free` (a bitmask), lowest first on a tie.
fn widest_run(free: u32) -> u32 {
    let mut best = 0u32;
    let mut rest = free;
    while rest != 0 {
        let start = rest.trailing_zeros();
        let len = (rest >> start).trailing_ones();
        let run = if len >= 32 { u32::MAX } else { ((1u32 << len) - 1) << start };
        if run.count_ones() > best.count_ones() {
            best = run;
        }
        rest &= !run;
    }
    best
}

/// Plans the classes of service of `table` on a CPU with `cat` and `mba` (from CPUID).
pub fn plan(table: &Table, cat: Option<CatInfo>, mba: Option<MbaInfo>) -> Result<Decision, Refusal> {
    let platform = table.platform();
    let required = platform.flags & PLATFORM_REQUIRE_CAT != 0;
    let mut notices = Vec::new();
    let uses = table_uses_allocation(table);
    let Some(cat) = cat else {
        if required {
            return Err(Refusal::NoCat);
        }
        if uses {
            notices.push(Notice::NoCat);
        }
        return Ok(Decision { plan: None, notices });
    };
    if !uses {
        return Ok(Decision { plan: None, notices });
    }
    let name = |i: usize| String::from(table.partitions.get(i).map_or("?", |p| table.text(p.name)));
    let cdp_asked = platform.flags & PLATFORM_CDP != 0;
    // Under CDP a class takes two mask registers: a CPU with a single one cannot use it.
    let cdp_usable = cat.cdp && cat.max_cos >= 1;
    let cdp = cdp_asked && cdp_usable;
    if cdp_asked && !cdp_usable {
        if required {
            return Err(Refusal::NoCdp);
        }
        notices.push(Notice::NoCdp);
    }
    let min = platform.cat_min_ways.max(1);
    let max_cos = cat.max_cos_in_mode(cdp);

    // MBA: usable only when linear; a share asked for on a CPU without it is a notice
    // (or a refusal under `require_cat`).
    let wants_mba = |i: usize| table.cache_fields(i).mba_percent != 0;
    let first_mba = (0..table.partitions.len()).find(|&i| wants_mba(i));
    let mba = match (first_mba, mba) {
        (None, _) => None,
        (Some(_), Some(m)) if m.linear => Some(m),
        (Some(i), m) => {
            let linear_missing = m.is_some();
            if required {
                return Err(Refusal::NoMba { partition: name(i), linear_missing });
            }
            notices.push(Notice::NoMba { linear_missing });
            None
        }
    };

    // Classes 1.. for the partitions that need one.
    let needs_class = |i: usize| {
        table.partitions.get(i).is_some_and(|p| p.llc_way_count != 0) || (mba.is_some() && wants_mba(i))
    };
    let owners: Vec<usize> = (0..table.partitions.len()).filter(|&i| needs_class(i)).collect();
    if owners.len() > max_cos as usize {
        return Err(Refusal::TooManyClasses {
            partition: name(owners[max_cos as usize]),
            needed: owners.len(),
            max_cos,
            cdp,
        });
    }

    // Each owner's masks.
    let mut classes = Vec::with_capacity(owners.len() + 1);
    let mut used = 0u32;
    for &i in &owners {
        let p = table.partitions.get(i).expect("owner index from the table");
        let (data, code) = if p.llc_way_count == 0 {
            (None, None)
        } else {
            let data = super::way_mask(&cat, p.llc_first_way, p.llc_way_count, min)
                .map_err(|error| Refusal::Ways { partition: name(i), code: false, error })?;
            let code = match table.code_ways(i) {
                Some((first, count)) if cdp => super::way_mask(&cat, first, count, min)
                    .map_err(|error| Refusal::Ways { partition: name(i), code: true, error })?,
                _ => data,
            };
            used |= data | code;
            (Some(data), Some(code))
        };
        classes.push((i, data, code));
    }

    // Class 0.
    let shared_users = (0..table.partitions.len()).find(|i| !owners.contains(i));
    let class0 = match table.hypervisor_ways() {
        Some((first, count)) => {
            super::way_mask(&cat, first, count, min).map_err(|error| Refusal::HypervisorWays { error })?
        }
        None => {
            let run = widest_run(cat.full_mask() & !used);
            if run.count_ones() >= min as u32 {
                run
            } else if let Some(i) = shared_users {
                return Err(Refusal::NoWaysLeft { partition: name(i), min });
            } else {
                notices.push(Notice::HypervisorSharesAllWays);
                cat.full_mask()
            }
        }
    };

    let mba_delay = |i: Option<usize>| -> Result<Option<u16>, Refusal> {
        let Some(m) = mba else { return Ok(None) };
        let percent = i.map_or(0, |i| table.cache_fields(i).mba_percent);
        if percent == 0 {
            return Ok(Some(0));
        }
        let i = i.expect("a share belongs to a partition");
        m.delay_for(percent).map(Some).ok_or(Refusal::MbaShare {
            partition: name(i),
            percent,
            min_percent: 100 - m.max_delay.min(100),
            step: m.granularity(),
        })
    };
    let io = |mask: u32| mask & cat.shareable_mask;
    let mut out = Vec::with_capacity(classes.len() + 1);
    out.push(ClassMasks {
        owner: ClassOwner::Shared,
        data: class0,
        code: class0,
        mba_delay: mba_delay(None)?,
        io_shared: io(class0),
    });
    for (cos, &(i, data, code)) in classes.iter().enumerate() {
        let cos = cos as u16 + 1;
        let delay = mba_delay(Some(i))?;
        if let Some(m) = mba.filter(|m| cos > m.max_cos && wants_mba(i)) {
            return Err(Refusal::MbaClass { partition: name(i), cos, max_cos: m.max_cos });
        }
        let (data, code) = (data.unwrap_or(class0), code.unwrap_or(class0));
        let delay = delay.filter(|_| mba.is_some_and(|m| cos <= m.max_cos));
        out.push(ClassMasks {
            owner: ClassOwner::Partition(i),
            data,
            code,
            mba_delay: delay,
            io_shared: io(data | code),
        });
    }
    let mut partition_class = alloc::vec![0u16; table.partitions.len()];
    for (k, &i) in owners.iter().enumerate() {
        partition_class[i] = k as u16 + 1;
    }
    Ok(Decision { plan: Some(CachePlan { cdp, classes: out, partition_class }), notices })
}

impl CachePlan {
    /// The class of service of partition `i` (0 for an unknown index: the shared class).
    pub fn class_of(&self, partition: usize) -> u16 {
        self.partition_class.get(partition).copied().unwrap_or(0)
    }

    /// The MSR writes that program one package, in order: CDP on (before any mask, so
    /// the masks land in the CDP layout), every class's masks, then the MBA delays.
    pub fn boot_writes(&self) -> Vec<MsrWrite> {
        let mut w = Vec::new();
        if self.cdp {
            w.push(MsrWrite { msr: IA32_L3_QOS_CFG, value: 1 });
        }
        for (cos, c) in self.classes.iter().enumerate() {
            let cos = cos as u32;
            if self.cdp {
                w.push(MsrWrite { msr: IA32_L3_MASK_BASE + 2 * cos, value: c.data as u64 });
                w.push(MsrWrite { msr: IA32_L3_MASK_BASE + 2 * cos + 1, value: c.code as u64 });
            } else {
                w.push(MsrWrite { msr: IA32_L3_MASK_BASE + cos, value: c.data as u64 });
            }
        }
        for (cos, c) in self.classes.iter().enumerate() {
            if let Some(delay) = c.mba_delay {
                w.push(MsrWrite { msr: IA32_MBA_THRTL_BASE + cos as u32, value: delay as u64 });
            }
        }
        w
    }
}

/// Ways of a mask as `first-last` (or `first` for one way); the masks here are contiguous.
pub struct WayRange(pub u32);

impl fmt::Display for WayRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return write!(f, "none");
        }
        let first = self.0.trailing_zeros();
        let last = 31 - self.0.leading_zeros();
        if first == last {
            write!(f, "{first}")
        } else {
            write!(f, "{first}-{last}")
        }
    }
}

#[cfg(test)]
mod tests;
