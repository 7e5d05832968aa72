//! The VM-execution control fields of a vCPU's VMCS, as one list of (field, value) writes
//! per kind of vCPU. The binary writes them as they are; the decisions in them (a dedicated
//! core runs without the preemption timer, each partition has its own VPID, where the
//! bitmaps and the EPT are, which CR0/CR4 bits Linux owns) are tested here.

use super::caps::{exit as exit_ctl, pin, VmxControls};
use super::guest_state::DEFAULT_PAT;
use super::vmcs::{control, guest, host};

/// Where a vCPU's tables are (host-physical) and whose they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VcpuTables {
    /// The partition's index in the table: its VPID is this + 1 (VPID 0 is the host's).
    pub partition: usize,
    /// The two 4 KiB I/O bitmap pages, consecutive.
    pub io_bitmaps: u64,
    pub msr_bitmap: u64,
    pub eptp: u64,
}

/// The partition's VPID (VPID 0 belongs to the hypervisor).
pub const fn vpid(partition: usize) -> u64 {
    1 + partition as u64
}

fn common(c: &VmxControls, pin_based: u32, exit: u32, t: &VcpuTables) -> [(u32, u64); 12] {
    [
        (control::PIN_BASED, pin_based as u64),
        (control::PRIMARY_PROC_BASED, c.primary as u64),
        (control::SECONDARY_PROC_BASED, c.secondary as u64),
        (control::EXIT_CONTROLS, exit as u64),
        (control::ENTRY_CONTROLS, c.entry as u64),
        (control::EXCEPTION_BITMAP, 0),
        (control::CR3_TARGET_COUNT, 0),
        (control::IO_BITMAP_A, t.io_bitmaps),
        (control::IO_BITMAP_B, t.io_bitmaps + 4096),
        (control::MSR_BITMAPS, t.msr_bitmap),
        (control::EPT_POINTER, t.eptp),
        (control::VPID, vpid(t.partition)),
    ]
}

/// A real-time vCPU's control fields. `scheduled`: its core runs a cyclic schedule, whose
/// windows the VMX-preemption timer ends; a dedicated core runs without it (zero exits).
pub fn rt_controls(c: &VmxControls, t: &VcpuTables, scheduled: bool) -> [(u32, u64); 12] {
    let (mut pin_based, mut exit) = (c.pin, c.exit);
    if !scheduled {
        pin_based &= !pin::PREEMPTION_TIMER;
        exit &= !exit_ctl::SAVE_PREEMPTION_TIMER;
    }
    common(c, pin_based, exit, t)
}

/// A Linux vCPU's control fields: its own controls (`linux_vcpu::exits::linux_controls`),
/// the CR0/CR4 bits the hypervisor owns (`cr_masks`), the host's PAT kept and the guest's
/// starting at the power-on default.
pub fn linux_controls(
    c: &VmxControls,
    t: &VcpuTables,
    cr_masks: (u64, u64),
    host_pat: u64,
) -> [(u32, u64); 16] {
    let [a, b, c2, d, e, f, g, h, i, j, k, l] = common(c, c.pin, c.exit, t);
    [
        a,
        b,
        c2,
        d,
        e,
        f,
        g,
        (control::CR0_GUEST_HOST_MASK, cr_masks.0),
        (control::CR4_GUEST_HOST_MASK, cr_masks.1),
        h,
        i,
        j,
        k,
        l,
        (host::IA32_PAT, host_pat),
        (guest::IA32_PAT, DEFAULT_PAT),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controls() -> VmxControls {
        VmxControls {
            pin: pin::PREEMPTION_TIMER | 1,
            primary: 2,
            secondary: 3,
            exit: exit_ctl::SAVE_PREEMPTION_TIMER | 4,
            entry: 5,
        }
    }

    fn get(fields: &[(u32, u64)], field: u32) -> u64 {
        let hits: Vec<u64> = fields.iter().filter(|(f, _)| *f == field).map(|(_, v)| *v).collect();
        assert_eq!(hits.len(), 1, "field {field:#x} written exactly once");
        hits[0]
    }

    const T: VcpuTables =
        VcpuTables { partition: 2, io_bitmaps: 0x10_0000, msr_bitmap: 0x20_0000, eptp: 0x30_001E };

    #[test]
    fn a_dedicated_core_runs_without_the_preemption_timer() {
        let dedicated = rt_controls(&controls(), &T, false);
        assert_eq!(get(&dedicated, control::PIN_BASED) as u32 & pin::PREEMPTION_TIMER, 0);
        assert_eq!(get(&dedicated, control::EXIT_CONTROLS) as u32 & exit_ctl::SAVE_PREEMPTION_TIMER, 0);
        let scheduled = rt_controls(&controls(), &T, true);
        assert_ne!(get(&scheduled, control::PIN_BASED) as u32 & pin::PREEMPTION_TIMER, 0);
        assert_ne!(get(&scheduled, control::EXIT_CONTROLS) as u32 & exit_ctl::SAVE_PREEMPTION_TIMER, 0);
    }

    #[test]
    fn each_partition_has_its_own_vpid_and_tables() {
        for fields in
            [&rt_controls(&controls(), &T, true)[..], &linux_controls(&controls(), &T, (7, 8), 9)[..]]
        {
            assert_eq!(get(fields, control::VPID), 3);
            assert_eq!(get(fields, control::IO_BITMAP_A), 0x10_0000);
            assert_eq!(get(fields, control::IO_BITMAP_B), 0x10_1000);
            assert_eq!(get(fields, control::MSR_BITMAPS), 0x20_0000);
            assert_eq!(get(fields, control::EPT_POINTER), 0x30_001E);
            assert_eq!(get(fields, control::EXCEPTION_BITMAP), 0);
        }
        assert_ne!(vpid(0), 0, "VPID 0 is the hypervisor's");
    }

    #[test]
    fn linux_owns_what_its_masks_leave_and_starts_with_the_default_pat() {
        let fields = linux_controls(&controls(), &T, (0x21, 0x2000), 0x0007_0406_0007_0406);
        assert_eq!(get(&fields, control::CR0_GUEST_HOST_MASK), 0x21);
        assert_eq!(get(&fields, control::CR4_GUEST_HOST_MASK), 0x2000);
        assert_eq!(get(&fields, host::IA32_PAT), 0x0007_0406_0007_0406);
        assert_eq!(get(&fields, guest::IA32_PAT), DEFAULT_PAT);
        // Linux keeps its controls as computed (its timer and exits are its own business).
        assert_eq!(get(&fields, control::PIN_BASED) as u32, controls().pin);
    }
}
