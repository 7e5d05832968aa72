//! x2APIC interrupt-command (ICR) filtering for a Linux vCPU.
//!
//! The Linux partition owns its cores' local APICs: the MSR bitmap ([`super::msr`]) lets
//! every x2APIC register through except the ICR (MSR 0x830), whose writes exit because an
//! IPI can name any core of the machine. [`decide_icr`] decodes the value the guest wrote
//! and returns what to do:
//! - [`IcrDecision::Forward`]: the IPI reaches only the partition's own cores; write the
//!   ICR values of [`IpiPlan::icr_writes`] to the real ICR, in order (one value when the
//!   guest's value can be written as it is, otherwise one per target cluster or core).
//! - [`IcrDecision::Init`] / [`IcrDecision::Sipi`]: INIT or start-up IPI to own vCPUs; the
//!   hypervisor never forwards these to the hardware, it drives each target's
//!   [`super::ap_start::ApStart`] instead.
//! - [`IcrDecision::Ignore`]: nothing to do (INIT level de-assert, empty logical mask).
//! - [`IcrDecision::InjectGp`]: a reserved bit is set; the real ICR would raise #GP, so
//!   the guest gets #GP (and the hypervisor never writes such a value itself).
//! - [`IcrDecision::Refuse`]: the IPI names a core outside the partition or is an SMI;
//!   report it to the health monitor with [`Refusal::class`] and the text of
//!   [`Refusal`]'s `Display`, then (if the action lets the partition continue) skip the
//!   instruction. The IPI is never sent, not even to the partition's own targets.
//!
//! Broadcast shorthands are **rewritten**, never forwarded: "all including self" and "all
//! excluding self" would reach every core of the machine, so they become IPIs to the
//! partition's own cores (grouped by x2APIC cluster: one logical-mode write per cluster
//! of up to 16 cores). Linux uses "all but self" for `smp_send_stop`, NMI backtraces and
//! some TLB flushes, so refusing it would break ordinary operation. The physical
//! broadcast id 0xFFFF_FFFF and the logical broadcast 0xFFFF_FFFF are treated the same way.
//! A lowest-priority IPI with several targets goes to the first target only (one delivery,
//! as the architecture promises).
//!
//! Logical destinations follow x2APIC cluster mode (SDM 10.12.10.2): the logical id of
//! x2APIC id `x` is `(x >> 4) << 16 | 1 << (x & 15)`, and an ICR destination `c << 16 | m`
//! names the cores of cluster `c` whose bit is in `m`. Every bit must name a core of the
//! partition, or the whole IPI is refused.
//!
//! ```
//! use hallows_core::linux_vcpu::apic::{decide_icr, ApicIdMap, IcrDecision};
//! // Partition with the cores whose real x2APIC ids are 2 and 3, guest sees ids 2 and 3.
//! let map = ApicIdMap::identity(&[2, 3]).unwrap();
//! // Fixed IPI, vector 0xFB, physical destination 3, sent by vCPU 0.
//! let icr = 3u64 << 32 | 0xFB;
//! match decide_icr(&map, 0, icr) {
//!     IcrDecision::Forward(plan) => {
//!         let writes: Vec<u64> = plan.icr_writes(&map).collect();
//!         assert_eq!(writes, [icr]); // identity map: written as it is
//!     }
//!     other => panic!("{other:?}"),
//! }
//! // The same IPI to core 5 (another partition's) is refused.
//! assert!(matches!(decide_icr(&map, 0, 5u64 << 32 | 0xFB), IcrDecision::Refuse(_)));
//! ```

use arrayvec::ArrayVec;
use core::fmt;
use hallows_abi::health::EventClass;

/// Most vCPUs a Linux partition can have (the table's core limit).
pub const MAX_VCPUS: usize = 256;

/// x2APIC MSR numbers the Linux policy names.
pub mod reg {
    pub const ID: u32 = 0x802;
    pub const VERSION: u32 = 0x803;
    pub const TPR: u32 = 0x808;
    pub const PPR: u32 = 0x80A;
    pub const EOI: u32 = 0x80B;
    pub const LDR: u32 = 0x80D;
    pub const SVR: u32 = 0x80F;
    pub const ISR0: u32 = 0x810;
    pub const TMR0: u32 = 0x818;
    pub const IRR0: u32 = 0x820;
    pub const ESR: u32 = 0x828;
    pub const LVT_CMCI: u32 = 0x82F;
    pub const ICR: u32 = 0x830;
    pub const LVT_TIMER: u32 = 0x832;
    pub const LVT_THERMAL: u32 = 0x833;
    pub const LVT_PMI: u32 = 0x834;
    pub const LVT_LINT0: u32 = 0x835;
    pub const LVT_LINT1: u32 = 0x836;
    pub const LVT_ERROR: u32 = 0x837;
    pub const TIMER_INITIAL_COUNT: u32 = 0x838;
    pub const TIMER_CURRENT_COUNT: u32 = 0x839;
    pub const TIMER_DIVIDE: u32 = 0x83E;
    pub const SELF_IPI: u32 = 0x83F;
}

/// The x2APIC logical id (LDR value) of x2APIC id `id` in cluster mode.
pub const fn logical_id(id: u32) -> u32 {
    (id >> 4) << 16 | 1 << (id & 15)
}

/// Why an [`ApicIdMap`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapError {
    /// A partition needs at least one core.
    Empty,
    /// More than [`MAX_VCPUS`] cores.
    TooMany,
    /// Two vCPUs would have the same real or guest APIC id.
    Duplicate(u32),
    /// The id 0xFFFF_FFFF is the x2APIC broadcast and cannot name a core.
    Broadcast,
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("a Linux partition needs at least one core"),
            Self::TooMany => write!(f, "a Linux partition has at most {MAX_VCPUS} cores"),
            Self::Duplicate(id) => write!(f, "APIC id {id:#x} is used twice"),
            Self::Broadcast => f.write_str("APIC id 0xffffffff is the broadcast id"),
        }
    }
}

/// Which APIC id the guest sees for each vCPU and which real core runs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApicIdMap {
    guest: ArrayVec<u32, MAX_VCPUS>,
    real: ArrayVec<u32, MAX_VCPUS>,
}

/// The x2APIC ids of a partition's `cores` (core numbers, vCPU order) among the
/// machine's `apic_ids` (by core number); `Err(core)` for a core the machine lacks.
pub fn apic_ids_of(apic_ids: &[u32], cores: impl Iterator<Item = u32>) -> Result<alloc::vec::Vec<u32>, u32> {
    cores.map(|c| apic_ids.get(c as usize).copied().ok_or(c)).collect()
}

impl ApicIdMap {
    /// The guest sees the real x2APIC ids (recommended; see [`super`]). `real_ids[i]` is
    /// the x2APIC id of the core that runs vCPU `i`.
    pub fn identity(real_ids: &[u32]) -> Result<Self, MapError> {
        Self::build(real_ids, |_, real| real)
    }

    /// vCPU `i` has guest APIC id `i`.
    pub fn sequential(real_ids: &[u32]) -> Result<Self, MapError> {
        Self::build(real_ids, |i, _| i as u32)
    }

    fn build(real_ids: &[u32], guest_id: impl Fn(usize, u32) -> u32) -> Result<Self, MapError> {
        if real_ids.is_empty() {
            return Err(MapError::Empty);
        }
        if real_ids.len() > MAX_VCPUS {
            return Err(MapError::TooMany);
        }
        let mut map = ApicIdMap { guest: ArrayVec::new(), real: ArrayVec::new() };
        for (i, &real) in real_ids.iter().enumerate() {
            let guest = guest_id(i, real);
            if real == u32::MAX || guest == u32::MAX {
                return Err(MapError::Broadcast);
            }
            if map.real.contains(&real) {
                return Err(MapError::Duplicate(real));
            }
            if map.guest.contains(&guest) {
                return Err(MapError::Duplicate(guest));
            }
            map.real.push(real);
            map.guest.push(guest);
        }
        Ok(map)
    }

    /// Number of vCPUs.
    pub fn len(&self) -> usize {
        self.real.len()
    }

    /// Always false: a map has at least one vCPU.
    pub fn is_empty(&self) -> bool {
        self.real.is_empty()
    }

    /// Whether the guest sees the real ids (no ID/LDR interception, no rewriting).
    pub fn is_identity(&self) -> bool {
        self.guest == self.real
    }

    /// The guest-visible x2APIC id of `vcpu`.
    pub fn guest_id(&self, vcpu: usize) -> Option<u32> {
        self.guest.get(vcpu).copied()
    }

    /// The real x2APIC id of the core running `vcpu`.
    pub fn real_id(&self, vcpu: usize) -> Option<u32> {
        self.real.get(vcpu).copied()
    }

    /// The guest-visible LDR (x2APIC logical id) of `vcpu`.
    pub fn guest_ldr(&self, vcpu: usize) -> Option<u32> {
        self.guest_id(vcpu).map(logical_id)
    }

    /// The vCPU whose guest-visible id is `id`.
    pub fn vcpu_of_guest_id(&self, id: u32) -> Option<usize> {
        self.guest.iter().position(|&g| g == id)
    }

    /// The largest guest-visible id (sizes the CPUID topology fields).
    pub fn max_guest_id(&self) -> u32 {
        self.guest.iter().copied().max().unwrap_or(0)
    }

    /// The guest ids in vCPU order: what the MADT must list.
    pub fn guest_ids(&self) -> &[u32] {
        &self.guest
    }
}

/// A set of vCPU indices (0..[`MAX_VCPUS`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VcpuSet([u64; MAX_VCPUS / 64]);

impl VcpuSet {
    /// Adds `vcpu` (ignored when out of range).
    pub fn insert(&mut self, vcpu: usize) {
        if vcpu < MAX_VCPUS {
            self.0[vcpu / 64] |= 1 << (vcpu % 64);
        }
    }
    pub fn remove(&mut self, vcpu: usize) {
        if vcpu < MAX_VCPUS {
            self.0[vcpu / 64] &= !(1 << (vcpu % 64));
        }
    }
    pub fn contains(&self, vcpu: usize) -> bool {
        vcpu < MAX_VCPUS && self.0[vcpu / 64] & (1 << (vcpu % 64)) != 0
    }
    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }
    pub fn len(&self) -> usize {
        self.0.iter().map(|w| w.count_ones() as usize).sum()
    }
    /// The members, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_VCPUS).filter(|&v| self.contains(v))
    }
    /// The set {0, .., n-1}.
    pub fn first_n(n: usize) -> Self {
        let mut s = VcpuSet::default();
        (0..n.min(MAX_VCPUS)).for_each(|v| s.insert(v));
        s
    }
}

/// ICR delivery mode (bits 10:8).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeliveryMode {
    Fixed,
    LowestPriority,
    Smi,
    Nmi,
    Init,
    StartUp,
    /// 3 or 7.
    Reserved(u8),
}

/// ICR destination shorthand (bits 19:18).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shorthand {
    None,
    SelfOnly,
    AllIncludingSelf,
    AllExcludingSelf,
}

/// ICR bits that are reserved in x2APIC mode (12, 13, 16, 17, 31:20); writing one raises #GP.
pub const ICR_RESERVED: u64 = 0xFFF3_3000;
const LEVEL_ASSERT: u64 = 1 << 14;
const TRIGGER_LEVEL: u64 = 1 << 15;
const DEST_LOGICAL: u64 = 1 << 11;
/// The x2APIC broadcast destination.
pub const BROADCAST: u32 = u32::MAX;

/// A decoded x2APIC ICR value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Icr {
    pub vector: u8,
    pub delivery: DeliveryMode,
    /// Logical (cluster) destination mode.
    pub logical: bool,
    /// Level: assert (1) or de-assert (0).
    pub assert: bool,
    /// Trigger mode: level (1) or edge (0).
    pub level_triggered: bool,
    pub shorthand: Shorthand,
    pub destination: u32,
}

impl Icr {
    /// Decodes every field (reserved bits are ignored here; see [`ICR_RESERVED`]).
    pub const fn decode(v: u64) -> Self {
        Icr {
            vector: v as u8,
            delivery: match (v >> 8) & 7 {
                0 => DeliveryMode::Fixed,
                1 => DeliveryMode::LowestPriority,
                2 => DeliveryMode::Smi,
                4 => DeliveryMode::Nmi,
                5 => DeliveryMode::Init,
                6 => DeliveryMode::StartUp,
                n => DeliveryMode::Reserved(n as u8),
            },
            logical: v & DEST_LOGICAL != 0,
            assert: v & LEVEL_ASSERT != 0,
            level_triggered: v & TRIGGER_LEVEL != 0,
            shorthand: match (v >> 18) & 3 {
                0 => Shorthand::None,
                1 => Shorthand::SelfOnly,
                2 => Shorthand::AllIncludingSelf,
                _ => Shorthand::AllExcludingSelf,
            },
            destination: (v >> 32) as u32,
        }
    }
}

/// An IPI the partition may send: the ICR's low half (vector, delivery and trigger bits)
/// and its target vCPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpiPlan {
    /// Bits 7:0 and 15:14 of the guest's ICR (vector, delivery mode, level, trigger).
    pub command: u32,
    pub targets: VcpuSet,
    /// The guest's own ICR value, when it can be written as it is.
    pub as_is: Option<u64>,
}

impl IpiPlan {
    /// The values to write to the real ICR, in order: the guest's value itself when
    /// possible; else one physical-mode write when there is one target; else one
    /// logical-mode write per real x2APIC cluster (ids below 2^20), and a physical write
    /// for any target whose id has no cluster form.
    pub fn icr_writes<'a>(&'a self, map: &'a ApicIdMap) -> impl Iterator<Item = u64> + 'a {
        let command = self.command as u64;
        let single = self.as_is.is_none() && self.targets.len() == 1;
        let as_is = self.as_is.into_iter();
        let grouped = self.targets.iter().filter(move |_| self.as_is.is_none()).filter_map(move |v| {
            let real = map.real_id(v)?;
            if single || real >> 20 != 0 {
                return Some(command | (real as u64) << 32);
            }
            let cluster = real >> 4;
            // Emit the cluster once, at its first target.
            let earlier = self
                .targets
                .iter()
                .take_while(|&w| w < v)
                .any(|w| map.real_id(w).is_some_and(|r| r >> 20 == 0 && r >> 4 == cluster));
            if earlier {
                return None;
            }
            let mask = self
                .targets
                .iter()
                .filter_map(|w| map.real_id(w))
                .filter(|r| r >> 20 == 0 && r >> 4 == cluster)
                .fold(0u32, |m, r| m | 1 << (r & 15));
            Some(command | DEST_LOGICAL | ((cluster << 16 | mask) as u64) << 32)
        });
        as_is.chain(grouped)
    }
}

/// Why an IPI was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Physical destination: a guest APIC id that is not one of the partition's.
    ForeignDestination(u32),
    /// Logical destination with a bit naming a core outside the partition.
    ForeignLogicalDestination(u32),
    /// System-management interrupt.
    Smi,
    /// Delivery mode 3 or 7.
    ReservedDeliveryMode(u8),
}

impl Refusal {
    /// The health-monitor class: an ICR write is a WRMSR the partition may not perform
    /// with that value.
    pub const fn class(&self) -> EventClass {
        EventClass::MsrViolation
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ForeignDestination(id) => write!(f, "IPI to APIC id {id:#x}, not a core of this partition"),
            Self::ForeignLogicalDestination(d) => {
                write!(f, "IPI to logical destination {d:#x}, which names a core outside this partition")
            }
            Self::Smi => f.write_str("SMI IPI refused"),
            Self::ReservedDeliveryMode(m) => write!(f, "IPI with reserved delivery mode {m}"),
        }
    }
}

/// What to do with a WRMSR to the x2APIC ICR (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IcrDecision {
    Forward(IpiPlan),
    /// INIT to these vCPUs: [`super::ap_start::ApStart::on_init`] for each.
    Init(VcpuSet),
    /// Start-up IPI: [`super::ap_start::ApStart::on_sipi`] for each.
    Sipi {
        targets: VcpuSet,
        vector: u8,
    },
    Ignore,
    InjectGp,
    Refuse(Refusal),
}

/// The vCPUs a destination names, from the view of `sender`.
fn targets(map: &ApicIdMap, sender: usize, icr: &Icr) -> Result<VcpuSet, Refusal> {
    let all = VcpuSet::first_n(map.len());
    match icr.shorthand {
        Shorthand::SelfOnly => {
            let mut s = VcpuSet::default();
            s.insert(sender);
            Ok(s)
        }
        Shorthand::AllIncludingSelf => Ok(all),
        Shorthand::AllExcludingSelf => {
            let mut s = all;
            s.remove(sender);
            Ok(s)
        }
        Shorthand::None if icr.destination == BROADCAST => Ok(all),
        Shorthand::None if !icr.logical => {
            let v =
                map.vcpu_of_guest_id(icr.destination).ok_or(Refusal::ForeignDestination(icr.destination))?;
            let mut s = VcpuSet::default();
            s.insert(v);
            Ok(s)
        }
        Shorthand::None => {
            let cluster = icr.destination >> 16;
            let mask = icr.destination & 0xFFFF;
            let mut s = VcpuSet::default();
            for bit in (0..16).filter(|b| mask & 1 << b != 0) {
                let id = cluster << 4 | bit;
                let v =
                    map.vcpu_of_guest_id(id).ok_or(Refusal::ForeignLogicalDestination(icr.destination))?;
                s.insert(v);
            }
            Ok(s)
        }
    }
}

/// Decides a WRMSR of `value` to the ICR by vCPU `sender` (see the module documentation).
/// Never panics; never yields a plan naming a core outside `map`.
pub fn decide_icr(map: &ApicIdMap, sender: usize, value: u64) -> IcrDecision {
    if value & ICR_RESERVED != 0 {
        return IcrDecision::InjectGp;
    }
    if sender >= map.len() {
        // The binary's mistake; refuse rather than guess who sent it.
        return IcrDecision::Refuse(Refusal::ForeignDestination(u32::MAX));
    }
    let icr = Icr::decode(value);
    match icr.delivery {
        DeliveryMode::Smi => return IcrDecision::Refuse(Refusal::Smi),
        DeliveryMode::Reserved(m) => return IcrDecision::Refuse(Refusal::ReservedDeliveryMode(m)),
        // The INIT level de-assert of the MP start-up sequence has no effect on x2APIC parts.
        DeliveryMode::Init if !icr.assert && icr.level_triggered => return IcrDecision::Ignore,
        _ => {}
    }
    let mut set = match targets(map, sender, &icr) {
        Ok(s) => s,
        Err(r) => return IcrDecision::Refuse(r),
    };
    if set.is_empty() {
        return IcrDecision::Ignore;
    }
    match icr.delivery {
        DeliveryMode::Init => return IcrDecision::Init(set),
        DeliveryMode::StartUp => return IcrDecision::Sipi { targets: set, vector: icr.vector },
        _ => {}
    }
    if icr.delivery == DeliveryMode::LowestPriority && set.len() > 1 {
        let first = set.iter().next().unwrap_or(sender);
        set = VcpuSet::default();
        set.insert(first);
    }
    // Written as it is when it reaches exactly what it names on the real machine: a self
    // IPI, or (identity map) a unicast or logical destination without broadcast.
    let as_is = match icr.shorthand {
        Shorthand::SelfOnly => true,
        Shorthand::None => {
            map.is_identity()
                && icr.destination != BROADCAST
                && !(icr.delivery == DeliveryMode::LowestPriority && icr.logical)
        }
        _ => false,
    };
    IcrDecision::Forward(IpiPlan {
        command: (value & 0xC7FF & !DEST_LOGICAL) as u32,
        targets: set,
        as_is: as_is.then_some(value),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const FIXED: u64 = 0x00;
    const NMI: u64 = 0x400;
    const INIT_ASSERT: u64 = 0x500 | LEVEL_ASSERT | TRIGGER_LEVEL;
    const INIT_DEASSERT: u64 = 0x500 | TRIGGER_LEVEL;
    const SIPI: u64 = 0x600;
    const SELF: u64 = 1 << 18;
    const ALL: u64 = 2 << 18;
    const ALL_BUT_SELF: u64 = 3 << 18;

    fn dest(id: u32) -> u64 {
        (id as u64) << 32
    }

    fn writes(map: &ApicIdMap, d: IcrDecision) -> Vec<u64> {
        match d {
            IcrDecision::Forward(p) => p.icr_writes(map).collect(),
            other => panic!("expected Forward, got {other:?}"),
        }
    }

    #[test]
    fn the_apic_ids_of_a_partitions_cores() {
        assert_eq!(apic_ids_of(&[0, 2, 4, 6], [3, 1].into_iter()), Ok(alloc::vec![6, 2]));
        assert_eq!(apic_ids_of(&[0, 2], [1, 2].into_iter()), Err(2));
    }

    #[test]
    fn maps_refuse_bad_core_lists() {
        assert_eq!(ApicIdMap::identity(&[]), Err(MapError::Empty));
        assert_eq!(ApicIdMap::identity(&[1, 2, 1]), Err(MapError::Duplicate(1)));
        assert_eq!(ApicIdMap::sequential(&[4, u32::MAX]), Err(MapError::Broadcast));
        assert_eq!(ApicIdMap::identity(&[0; MAX_VCPUS + 1]), Err(MapError::TooMany));
        // Sequential: guest ids 0..n-1 may coincide with other vCPUs' real ids.
        let m = ApicIdMap::sequential(&[1, 0]).unwrap();
        assert_eq!(
            (m.guest_id(0), m.real_id(0), m.guest_id(1), m.real_id(1)),
            (Some(0), Some(1), Some(1), Some(0))
        );
        assert!(!m.is_identity());
        assert!(ApicIdMap::identity(&[6, 7]).unwrap().is_identity());
        assert_eq!(m.guest_ldr(1), Some(0x0000_0002));
        assert_eq!(logical_id(0x23), 0x0002_0008);
        assert_eq!(m.guest_ids(), &[0, 1]);
    }

    #[test]
    fn icr_fields_decode() {
        let icr = Icr::decode(dest(7) | SIPI | 0x9A);
        assert_eq!(icr.vector, 0x9A);
        assert_eq!(icr.delivery, DeliveryMode::StartUp);
        assert_eq!(icr.destination, 7);
        assert_eq!(icr.shorthand, Shorthand::None);
        assert!(!icr.logical);
        let icr = Icr::decode(INIT_ASSERT | DEST_LOGICAL | ALL_BUT_SELF);
        assert!(icr.assert && icr.level_triggered && icr.logical);
        assert_eq!(icr.shorthand, Shorthand::AllExcludingSelf);
        assert_eq!(Icr::decode(0x300).delivery, DeliveryMode::Reserved(3));
        assert_eq!(Icr::decode(0x200).delivery, DeliveryMode::Smi);
        assert_eq!(Icr::decode(0x100).delivery, DeliveryMode::LowestPriority);
    }

    #[test]
    fn unicast_inside_is_forwarded_as_is_with_identity() {
        let map = ApicIdMap::identity(&[2, 3, 9]).unwrap();
        let icr = dest(9) | FIXED | 0xFD;
        assert_eq!(writes(&map, decide_icr(&map, 0, icr)), [icr]);
        let nmi = dest(3) | NMI;
        assert_eq!(writes(&map, decide_icr(&map, 2, nmi)), [nmi]);
    }

    #[test]
    fn unicast_outside_is_refused() {
        let map = ApicIdMap::identity(&[2, 3]).unwrap();
        let d = decide_icr(&map, 0, dest(4) | 0xFD);
        assert_eq!(d, IcrDecision::Refuse(Refusal::ForeignDestination(4)));
        if let IcrDecision::Refuse(r) = d {
            assert_eq!(r.class(), EventClass::MsrViolation);
            assert_eq!(format!("{r}"), "IPI to APIC id 0x4, not a core of this partition");
        }
        // Sequential map: guest id 2 does not exist although real core 2 is ours.
        let seq = ApicIdMap::sequential(&[2, 3]).unwrap();
        assert_eq!(decide_icr(&seq, 0, dest(2) | 0xFD), IcrDecision::Refuse(Refusal::ForeignDestination(2)));
    }

    #[test]
    fn sequential_map_rewrites_to_real_ids() {
        let map = ApicIdMap::sequential(&[8, 12]).unwrap();
        assert_eq!(writes(&map, decide_icr(&map, 0, dest(1) | 0xEC)), [dest(12) | 0xEC]);
        assert_eq!(writes(&map, decide_icr(&map, 1, dest(0) | NMI)), [dest(8) | NMI]);
    }

    #[test]
    fn broadcasts_become_own_cores_only() {
        // Real ids 0, 1 (cluster 0) and 17 (cluster 1).
        let map = ApicIdMap::identity(&[0, 1, 17]).unwrap();
        // All but self from vCPU 0: cores 1 and 17, one logical write per cluster.
        let w = writes(&map, decide_icr(&map, 0, ALL_BUT_SELF | 0xFC));
        assert_eq!(
            w,
            [DEST_LOGICAL | 0xFC | (0x0000_0002u64 << 32), DEST_LOGICAL | 0xFC | (0x0001_0002u64 << 32)]
        );
        // All including self from vCPU 2: clusters 0 (bits 0, 1) and 1 (bit 1).
        let w = writes(&map, decide_icr(&map, 2, ALL | NMI));
        assert_eq!(
            w,
            [DEST_LOGICAL | NMI | (0x0000_0003u64 << 32), DEST_LOGICAL | NMI | (0x0001_0002u64 << 32)]
        );
        // Physical broadcast id behaves like "all including self".
        let w = writes(&map, decide_icr(&map, 0, dest(BROADCAST) | 0x30));
        assert_eq!(w.len(), 2);
        assert!(w.iter().all(|v| v & DEST_LOGICAL != 0 && (v >> 18) & 3 == 0));
        // A single remaining target gets a physical unicast.
        let two = ApicIdMap::identity(&[4, 5]).unwrap();
        assert_eq!(writes(&two, decide_icr(&two, 0, ALL_BUT_SELF | 0xF0)), [dest(5) | 0xF0]);
        // A one-vCPU partition's "all but self" reaches nobody.
        let one = ApicIdMap::identity(&[4]).unwrap();
        assert_eq!(decide_icr(&one, 0, ALL_BUT_SELF | 0xF0), IcrDecision::Ignore);
    }

    #[test]
    fn self_ipi_is_forwarded_as_is() {
        let map = ApicIdMap::sequential(&[4, 5]).unwrap();
        let v = SELF | 0x40 | dest(77);
        assert_eq!(writes(&map, decide_icr(&map, 1, v)), [v]);
    }

    #[test]
    fn logical_destinations() {
        let map = ApicIdMap::identity(&[0x10, 0x11, 0x12]).unwrap();
        // Cluster 1, bits 0 and 2: cores 0x10 and 0x12.
        let v = DEST_LOGICAL | 0x31 | (0x0001_0005u64 << 32);
        assert_eq!(writes(&map, decide_icr(&map, 1, v)), [v]);
        // Bit 3 names core 0x13, which is not ours.
        let v = DEST_LOGICAL | 0x31 | (0x0001_0009u64 << 32);
        assert_eq!(
            decide_icr(&map, 1, v),
            IcrDecision::Refuse(Refusal::ForeignLogicalDestination(0x0001_0009))
        );
        // Empty mask: nobody.
        assert_eq!(decide_icr(&map, 0, DEST_LOGICAL | (0x0001_0000u64 << 32)), IcrDecision::Ignore);
        // Sequential ids 0..2 live in cluster 0; rewritten to the real cluster 1.
        let seq = ApicIdMap::sequential(&[0x10, 0x11, 0x12]).unwrap();
        let w = writes(&seq, decide_icr(&seq, 0, DEST_LOGICAL | 0x31 | (0x0000_0006u64 << 32)));
        assert_eq!(w, [DEST_LOGICAL | 0x31 | (0x0001_0006u64 << 32)]);
    }

    #[test]
    fn lowest_priority_goes_to_one_core() {
        let map = ApicIdMap::identity(&[0, 1, 2]).unwrap();
        let w = writes(&map, decide_icr(&map, 0, 0x100 | 0x41 | DEST_LOGICAL | (0x0000_0006u64 << 32)));
        assert_eq!(w, [0x100 | 0x41 | dest(1)]);
    }

    #[test]
    fn init_and_sipi_are_kept_by_the_hypervisor() {
        let map = ApicIdMap::identity(&[0, 2, 4]).unwrap();
        let mut two = VcpuSet::default();
        two.insert(2);
        assert_eq!(decide_icr(&map, 0, INIT_ASSERT | dest(4)), IcrDecision::Init(two));
        assert_eq!(decide_icr(&map, 0, INIT_DEASSERT | dest(4)), IcrDecision::Ignore);
        assert_eq!(
            decide_icr(&map, 0, SIPI | 0x9A | dest(4)),
            IcrDecision::Sipi { targets: two, vector: 0x9A }
        );
        // INIT/SIPI to a foreign core is refused, not absorbed.
        assert!(matches!(decide_icr(&map, 0, INIT_ASSERT | dest(1)), IcrDecision::Refuse(_)));
        assert!(matches!(decide_icr(&map, 0, SIPI | 0x9A | dest(3)), IcrDecision::Refuse(_)));
        // Broadcast INIT reaches own vCPUs only.
        let mut others = VcpuSet::first_n(3);
        others.remove(0);
        assert_eq!(decide_icr(&map, 0, INIT_ASSERT | ALL_BUT_SELF), IcrDecision::Init(others));
    }

    #[test]
    fn smi_reserved_modes_and_reserved_bits() {
        let map = ApicIdMap::identity(&[0, 1]).unwrap();
        assert_eq!(decide_icr(&map, 0, 0x200 | dest(1)), IcrDecision::Refuse(Refusal::Smi));
        assert_eq!(
            decide_icr(&map, 0, 0x700 | dest(1)),
            IcrDecision::Refuse(Refusal::ReservedDeliveryMode(7))
        );
        assert_eq!(decide_icr(&map, 0, 1 << 12 | dest(1)), IcrDecision::InjectGp);
        assert_eq!(decide_icr(&map, 0, 1 << 20 | dest(1)), IcrDecision::InjectGp);
        assert_eq!(decide_icr(&map, 0, 1 << 17 | dest(1)), IcrDecision::InjectGp);
        assert!(matches!(decide_icr(&map, 7, 0xFD | dest(1)), IcrDecision::Refuse(_)), "bad sender index");
    }

    fn any_map() -> impl Strategy<Value = ApicIdMap> {
        (proptest::collection::btree_set(0u32..64, 1..8), any::<bool>()).prop_map(|(ids, identity)| {
            let ids: Vec<u32> = ids.into_iter().collect();
            if identity {
                ApicIdMap::identity(&ids).unwrap()
            } else {
                ApicIdMap::sequential(&ids).unwrap()
            }
        })
    }

    /// Every real core a written ICR value can reach.
    fn reached(map: &ApicIdMap, sender: usize, value: u64) -> Vec<u32> {
        let icr = Icr::decode(value);
        let all: Vec<u32> = (0u32..64).collect();
        let sender_real = map.real_id(sender).unwrap();
        match icr.shorthand {
            Shorthand::SelfOnly => vec![sender_real],
            Shorthand::AllIncludingSelf => all,
            Shorthand::AllExcludingSelf => all.into_iter().filter(|&c| c != sender_real).collect(),
            Shorthand::None if icr.destination == BROADCAST => all,
            Shorthand::None if icr.logical => all
                .into_iter()
                .filter(|&c| {
                    let l = logical_id(c);
                    l >> 16 == icr.destination >> 16 && l & icr.destination & 0xFFFF != 0
                })
                .collect(),
            Shorthand::None => vec![icr.destination],
        }
    }

    proptest! {
        #[test]
        fn random_icr_values_never_reach_foreign_cores(map in any_map(), sender in 0usize..8, value: u64) {
            let sender = sender % map.len();
            match decide_icr(&map, sender, value) {
                IcrDecision::Forward(plan) => {
                    let own: Vec<u32> = (0..map.len()).filter_map(|v| map.real_id(v)).collect();
                    for w in plan.icr_writes(&map) {
                        prop_assert_eq!(w & ICR_RESERVED, 0);
                        for core in reached(&map, sender, w) {
                            prop_assert!(own.contains(&core), "write {w:#x} reaches core {core}");
                        }
                        let mode = (w >> 8) & 7;
                        prop_assert!(matches!(mode, 0 | 1 | 4), "forwarded delivery mode {mode}");
                    }
                }
                IcrDecision::Init(t) | IcrDecision::Sipi { targets: t, .. } => {
                    prop_assert!(t.iter().all(|v| v < map.len()));
                }
                _ => {}
            }
        }

        #[test]
        fn forwarded_plans_cover_exactly_the_targets(ids in proptest::collection::btree_set(0u32..300, 1..12), vector in 0x20u8..0xFF) {
            let ids: Vec<u32> = ids.into_iter().collect();
            let map = ApicIdMap::sequential(&ids).unwrap();
            if let IcrDecision::Forward(plan) = decide_icr(&map, 0, ALL | vector as u64) {
                let mut got: Vec<u32> = Vec::new();
                for w in plan.icr_writes(&map) {
                    let d = (w >> 32) as u32;
                    if w & DEST_LOGICAL != 0 {
                        got.extend((0..16).filter(|b| d & 1 << b != 0).map(|b| (d >> 16) << 4 | b));
                    } else {
                        got.push(d);
                    }
                    prop_assert_eq!(w as u8, vector);
                }
                got.sort();
                prop_assert_eq!(got, ids);
            } else {
                prop_assert!(false, "broadcast must be forwarded");
            }
        }
    }
}
