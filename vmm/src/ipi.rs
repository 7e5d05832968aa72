//! Filtering the inter-processor interrupts a partition sends.
//!
//! A Linux partition programs its local APICs itself, but every write to the interrupt
//! command register (x2APIC MSR 0x830, or the xAPIC ICR at 0x300/0x310) traps. The
//! hypervisor passes the value to [`IpiFilter::route`], which decodes it and decides:
//! deliver to these vCPUs of the partition (the only cores it may reach), ignore (INIT
//! de-assert), or refuse with the violation to report to the health monitor. A partition
//! can thus start, IPI and reset exactly its own cores and no other.
//!
//! Broadcasts are legitimate from the guest's point of view (Linux uses the "all
//! excluding self" shorthand once all the CPUs it knows are online), so shorthands and
//! the broadcast destination are narrowed to the partition's own vCPUs instead of being
//! refused. A destination that names any core outside the partition is refused whole.

/// Delivery mode field (ICR bits 10:8).
const DM_FIXED: u8 = 0;
const DM_LOWEST: u8 = 1;
const DM_SMI: u8 = 2;
const DM_NMI: u8 = 4;
const DM_INIT: u8 = 5;
const DM_STARTUP: u8 = 6;
const DEST_LOGICAL: u64 = 1 << 11;
const LEVEL_ASSERT: u64 = 1 << 14;
const TRIGGER_LEVEL: u64 = 1 << 15;

/// Most vCPUs a partition can have (the table's core limit).
pub const MAX_VCPUS: usize = 256;

/// A set of vCPU indices (positions in the partition's APIC id list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VcpuSet {
    words: [u64; MAX_VCPUS / 64],
}

impl VcpuSet {
    fn insert(&mut self, index: usize) {
        self.words[index / 64] |= 1 << (index % 64);
    }
    /// True if vCPU `index` is in the set.
    pub fn contains(&self, index: usize) -> bool {
        index < MAX_VCPUS && self.words[index / 64] & (1 << (index % 64)) != 0
    }
    /// True if empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|&w| w == 0)
    }
    /// The vCPU indices in the set, ascending.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..MAX_VCPUS).filter(|&i| self.contains(i))
    }
}

/// What to deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiKind {
    /// A fixed interrupt.
    Fixed {
        /// Vector.
        vector: u8,
    },
    /// Lowest priority: deliver to one of the targets (the hypervisor may pick the first).
    LowestPriority {
        /// Vector.
        vector: u8,
    },
    /// NMI.
    Nmi,
    /// INIT (assert): reset the target vCPU to wait-for-SIPI.
    Init,
    /// Start-up: start the target (if waiting for SIPI) at `vector << 12`.
    StartUp {
        /// Start page.
        vector: u8,
    },
}

/// Why an IPI was refused (a health-monitor event).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiViolation {
    /// The destination names a core outside the partition (its APIC id).
    ForeignDestination(u32),
    /// SMI: never allowed from a partition.
    Smi,
    /// A reserved delivery mode.
    ReservedDeliveryMode(u8),
    /// A fixed or lowest-priority vector below 16 (illegal on real hardware too).
    IllegalVector(u8),
    /// Logical destination mode in xAPIC mode without known logical ids.
    UnsupportedLogicalMode,
    /// The sender index is not one of the partition's vCPUs.
    BadSender,
}

/// The filter's verdict on one ICR write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpiDecision {
    /// Deliver `kind` to every vCPU in `targets` (possibly none, for a broadcast from a
    /// one-vCPU partition).
    Deliver {
        /// What to deliver.
        kind: IpiKind,
        /// Where (vCPU indices of this partition).
        targets: VcpuSet,
    },
    /// Architecturally a no-op: INIT level de-assert.
    Ignore,
    /// Refused; report it.
    Refuse(IpiViolation),
}

/// How the partition's APICs run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApicMode<'a> {
    /// x2APIC: 32-bit destinations; logical ids derive from APIC ids (cluster model).
    X2Apic,
    /// xAPIC: 8-bit destinations; `flat_logical_ids[i]` is vCPU i's LDR bits 31:24 in the
    /// flat model, if the hypervisor tracks them (else logical mode is refused).
    XApic {
        /// Per-vCPU flat logical ids.
        flat_logical_ids: Option<&'a [u8]>,
    },
}

/// The IPI filter of one partition.
#[derive(Debug, Clone, Copy)]
pub struct IpiFilter<'a> {
    /// APIC id of each vCPU (the same list the MADT was built from).
    pub apic_ids: &'a [u32],
    /// APIC mode.
    pub mode: ApicMode<'a>,
}

impl IpiFilter<'_> {
    /// Decides what to do with an ICR value written by vCPU `sender` (for xAPIC, the
    /// 64-bit value is ICR high << 32 | ICR low, written when the low half is).
    pub fn route(&self, sender: usize, icr: u64) -> IpiDecision {
        if sender >= self.apic_ids.len() || self.apic_ids.len() > MAX_VCPUS {
            return IpiDecision::Refuse(IpiViolation::BadSender);
        }
        let vector = icr as u8;
        let kind = match ((icr >> 8) & 7) as u8 {
            DM_FIXED if vector < 16 => return IpiDecision::Refuse(IpiViolation::IllegalVector(vector)),
            DM_FIXED => IpiKind::Fixed { vector },
            DM_LOWEST if vector < 16 => return IpiDecision::Refuse(IpiViolation::IllegalVector(vector)),
            DM_LOWEST => IpiKind::LowestPriority { vector },
            DM_SMI => return IpiDecision::Refuse(IpiViolation::Smi),
            DM_NMI => IpiKind::Nmi,
            DM_INIT if icr & TRIGGER_LEVEL != 0 && icr & LEVEL_ASSERT == 0 => return IpiDecision::Ignore,
            DM_INIT => IpiKind::Init,
            DM_STARTUP => IpiKind::StartUp { vector },
            reserved => return IpiDecision::Refuse(IpiViolation::ReservedDeliveryMode(reserved)),
        };
        let all = |except: Option<usize>| {
            let mut set = VcpuSet::default();
            (0..self.apic_ids.len()).filter(|&i| Some(i) != except).for_each(|i| set.insert(i));
            set
        };
        let targets = match (icr >> 18) & 3 {
            1 => {
                let mut set = VcpuSet::default();
                set.insert(sender);
                set
            }
            2 => all(None),
            3 => all(Some(sender)),
            _ => match self.destination(icr) {
                Ok(set) => set,
                Err(violation) => return IpiDecision::Refuse(violation),
            },
        };
        IpiDecision::Deliver { kind, targets }
    }

    /// Resolves the destination field (no shorthand).
    fn destination(&self, icr: u64) -> Result<VcpuSet, IpiViolation> {
        let logical = icr & DEST_LOGICAL != 0;
        let mut set = VcpuSet::default();
        match self.mode {
            ApicMode::X2Apic => {
                let dest = (icr >> 32) as u32;
                if dest == u32::MAX {
                    return Ok(self.everyone());
                }
                if !logical {
                    let index = self.index_of(dest).ok_or(IpiViolation::ForeignDestination(dest))?;
                    set.insert(index);
                    return Ok(set);
                }
                // Cluster model: bits 31:16 cluster, 15:0 a bitmap of APIC ids within it.
                let cluster = dest >> 16;
                for bit in (0..16).filter(|b| dest & (1 << b) != 0) {
                    let apic_id = (cluster << 4) | bit;
                    set.insert(self.index_of(apic_id).ok_or(IpiViolation::ForeignDestination(apic_id))?);
                }
                Ok(set)
            }
            ApicMode::XApic { flat_logical_ids } => {
                let dest = (icr >> 56) as u8;
                if dest == 0xFF {
                    return Ok(self.everyone());
                }
                if !logical {
                    let id = u32::from(dest);
                    set.insert(self.index_of(id).ok_or(IpiViolation::ForeignDestination(id))?);
                    return Ok(set);
                }
                let ldrs = flat_logical_ids.ok_or(IpiViolation::UnsupportedLogicalMode)?;
                let mut covered = 0u8;
                for (index, &ldr) in ldrs.iter().enumerate().take(self.apic_ids.len()) {
                    if ldr & dest != 0 {
                        set.insert(index);
                        covered |= ldr & dest;
                    }
                }
                // A bit no vCPU of ours answers to may be another partition's core.
                let stray = dest & !covered;
                if stray != 0 {
                    return Err(IpiViolation::ForeignDestination(u32::from(stray)));
                }
                Ok(set)
            }
        }
    }

    fn everyone(&self) -> VcpuSet {
        let mut set = VcpuSet::default();
        (0..self.apic_ids.len()).for_each(|i| set.insert(i));
        set
    }

    fn index_of(&self, apic_id: u32) -> Option<usize> {
        self.apic_ids.iter().position(|&id| id == apic_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    /// The partition owns physical cores with APIC ids 2 and 3 (cores 0 and 1 belong to
    /// an RT partition).
    const IDS: [u32; 2] = [2, 3];
    const X2: IpiFilter<'static> = IpiFilter { apic_ids: &IDS, mode: ApicMode::X2Apic };

    fn icr(mode: u8, vector: u8, dest: u32) -> u64 {
        (u64::from(dest) << 32) | (u64::from(mode) << 8) | u64::from(vector) | LEVEL_ASSERT
    }

    fn targets(d: IpiDecision) -> Vec<usize> {
        match d {
            IpiDecision::Deliver { targets, .. } => targets.iter().collect(),
            other => panic!("not delivered: {other:?}"),
        }
    }

    #[test]
    fn linux_ap_start_sequence_to_own_core_passes() {
        // INIT assert, INIT de-assert, SIPI, SIPI to APIC id 3 (vCPU 1).
        let init = X2.route(0, icr(DM_INIT, 0, 3));
        assert!(matches!(init, IpiDecision::Deliver { kind: IpiKind::Init, .. }));
        assert_eq!(targets(init), [1]);
        let deassert = (3u64 << 32) | (u64::from(DM_INIT) << 8) | TRIGGER_LEVEL;
        assert_eq!(X2.route(0, deassert), IpiDecision::Ignore);
        let sipi = X2.route(0, icr(DM_STARTUP, 0x9A, 3));
        assert!(matches!(sipi, IpiDecision::Deliver { kind: IpiKind::StartUp { vector: 0x9A }, .. }));
        assert_eq!(targets(sipi), [1]);
    }

    #[test]
    fn other_partitions_cores_are_refused() {
        for mode in [DM_INIT, DM_STARTUP, DM_FIXED, DM_NMI] {
            assert_eq!(
                X2.route(0, icr(mode, 0x40, 1)),
                IpiDecision::Refuse(IpiViolation::ForeignDestination(1)),
                "mode {mode}"
            );
        }
        assert_eq!(X2.route(0, icr(DM_SMI, 0, 3)), IpiDecision::Refuse(IpiViolation::Smi));
        assert_eq!(X2.route(0, icr(3, 0x40, 3)), IpiDecision::Refuse(IpiViolation::ReservedDeliveryMode(3)));
        assert_eq!(X2.route(0, icr(DM_FIXED, 2, 3)), IpiDecision::Refuse(IpiViolation::IllegalVector(2)));
        assert_eq!(X2.route(5, icr(DM_FIXED, 0x40, 3)), IpiDecision::Refuse(IpiViolation::BadSender));
    }

    #[test]
    fn shorthands_and_broadcast_stay_inside_the_partition() {
        let ids = [4, 5, 6];
        let f = IpiFilter { apic_ids: &ids, mode: ApicMode::X2Apic };
        let base = u64::from(DM_FIXED) << 8 | 0xFB;
        assert_eq!(targets(f.route(1, base | (3 << 18))), [0, 2], "all excluding self");
        assert_eq!(targets(f.route(1, base | (2 << 18))), [0, 1, 2], "all including self");
        assert_eq!(targets(f.route(1, base | (1 << 18))), [1], "self");
        assert_eq!(targets(f.route(0, base | (u64::from(u32::MAX) << 32))), [0, 1, 2], "broadcast id");
        // INIT to everyone else: only our own cores are reset.
        let init_all = (u64::from(DM_INIT) << 8) | LEVEL_ASSERT | (3 << 18);
        assert_eq!(targets(f.route(0, init_all)), [1, 2]);
    }

    #[test]
    fn x2apic_cluster_logical_destinations() {
        let ids = [0x10, 0x11, 0x13];
        let f = IpiFilter { apic_ids: &ids, mode: ApicMode::X2Apic };
        let base = (u64::from(DM_FIXED) << 8) | 0x30 | DEST_LOGICAL;
        // Cluster 1, bits 0 and 3 = APIC ids 0x10 and 0x13.
        assert_eq!(targets(f.route(0, base | ((1u64 << 16 | 0b1001) << 32))), [0, 2]);
        // Bit 2 of cluster 1 is APIC id 0x12: someone else's.
        assert_eq!(
            f.route(0, base | ((1u64 << 16 | 0b0100) << 32)),
            IpiDecision::Refuse(IpiViolation::ForeignDestination(0x12))
        );
        // Cluster 0 bit 0 = APIC id 0.
        assert_eq!(f.route(0, base | (1u64 << 32)), IpiDecision::Refuse(IpiViolation::ForeignDestination(0)));
    }

    #[test]
    fn xapic_physical_and_flat_logical() {
        let ids = [2, 3];
        let f = IpiFilter { apic_ids: &ids, mode: ApicMode::XApic { flat_logical_ids: Some(&[0x01, 0x02]) } };
        let phys = |dest: u8| (u64::from(dest) << 56) | (u64::from(DM_FIXED) << 8) | 0x40;
        assert_eq!(targets(f.route(0, phys(3))), [1]);
        assert_eq!(f.route(0, phys(7)), IpiDecision::Refuse(IpiViolation::ForeignDestination(7)));
        assert_eq!(targets(f.route(0, phys(0xFF))), [0, 1]);
        let logical = |mask: u8| phys(mask) | DEST_LOGICAL;
        assert_eq!(targets(f.route(0, logical(0x03))), [0, 1]);
        assert_eq!(f.route(0, logical(0x06)), IpiDecision::Refuse(IpiViolation::ForeignDestination(0x04)));
        let unknown = IpiFilter { apic_ids: &ids, mode: ApicMode::XApic { flat_logical_ids: None } };
        assert_eq!(
            unknown.route(0, logical(0x01)),
            IpiDecision::Refuse(IpiViolation::UnsupportedLogicalMode)
        );
    }

    proptest::proptest! {
        #[test]
        fn never_targets_outside_the_partition(value in proptest::prelude::any::<u64>(), sender in 0usize..4) {
            for mode in [ApicMode::X2Apic, ApicMode::XApic { flat_logical_ids: Some(&[1, 2]) }] {
                let f = IpiFilter { apic_ids: &IDS, mode };
                if let IpiDecision::Deliver { targets, .. } = f.route(sender, value) {
                    proptest::prop_assert!(targets.iter().all(|i| i < IDS.len()));
                }
            }
        }
    }
}
