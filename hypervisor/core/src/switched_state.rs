//! Register state that VMX does NOT switch between a guest and the hypervisor, and that the
//! hypervisor therefore switches itself when two partitions share a core (and resets when
//! a partition restarts), so that no partition reads what a neighbour left in the CPU.
//!
//! The VMCS guest area already holds CR0, CR3, CR4, DR7, RSP, RIP, RFLAGS, the segment
//! registers and their bases (FS.base, GS.base), GDTR/IDTR/LDTR/TR, IA32_DEBUGCTL,
//! SYSENTER_CS/ESP/EIP, IA32_PAT, IA32_EFER and the interruptibility state. What a
//! partition can still change WITHOUT a VM exit, and nobody else switches:
//!
//! | state | how a guest changes it | switched |
//! |---|---|---|
//! | general-purpose registers | any instruction | by the exit stub, per vCPU |
//! | x87, SSE, AVX, AVX-512 registers, MXCSR | any FP/SIMD instruction | XSAVE/XRSTOR ([`crate::xstate`]) |
//! | XCR0 | XSETBV (always exits; checked) | yes ([`SwitchedRegisters::xcr0`]) |
//! | DR0-DR3, DR6 | MOV to DR (MOV-DR exiting is off) | yes |
//! | CR2 | any page fault | yes |
//! | CR8 (task priority, the local APIC's TPR) | MOV to CR8 | never reaches the CPU: CR8 loads and stores exit, the value is virtual, per vCPU ([`SwitchedRegisters::virtual_tpr`]) |
//! | IA32_KERNEL_GS_BASE | SWAPGS (an instruction, no MSR access) | yes ([`SWITCHED_MSRS`]) |
//! | other MSRs (STAR, LSTAR, CSTAR, FMASK, TSC_AUX, SPEC_CTRL, ...) | WRMSR only | not needed: every RT MSR write exits ([`RT_MSR_WRITE_PASSTHROUGH`] is empty) and is refused |
//!
//! ```
//! use hallows_core::switched_state::{CoreStateOwner, Switch};
//! let mut owner = CoreStateOwner::default();
//! assert_eq!(owner.enter(0), Some(Switch { save: None, load: 0 }));
//! assert_eq!(owner.enter(0), None); // same vCPU again: nothing to do
//! assert_eq!(owner.enter(1), Some(Switch { save: Some(0), load: 1 }));
//! owner.forget(1); // vCPU 1 restarted: its stale registers must not be saved over the reset
//! assert_eq!(owner.enter(1), Some(Switch { save: None, load: 1 }));
//! ```

/// IA32_KERNEL_GS_BASE, exchanged with GS.base by SWAPGS.
pub const IA32_KERNEL_GS_BASE: u32 = 0xC000_0102;

/// MSRs the hypervisor switches between partitions on a shared core: the ones a guest can
/// change without a VM exit (see the table in the module documentation).
pub const SWITCHED_MSRS: [u32; 1] = [IA32_KERNEL_GS_BASE];

/// MSRs an RT partition may read without a VM exit (the MSR bitmap's read bits): none.
/// Every read exits and is a health-monitor event, so no MSR is a read channel either.
pub const RT_MSR_READ_PASSTHROUGH: [u32; 0] = [];
/// MSRs an RT partition may write without a VM exit: none (see [`SWITCHED_MSRS`]).
pub const RT_MSR_WRITE_PASSTHROUGH: [u32; 0] = [];

/// DR6 after reset (SDM: bits 4-11, 16-31 read as 1).
pub const DR6_RESET: u64 = 0xFFFF_0FF0;

/// The non-VMCS registers of one vCPU, as saved when it leaves its core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SwitchedRegisters {
    pub dr0_3: [u64; 4],
    pub dr6: u64,
    pub cr2: u64,
    pub kernel_gs_base: u64,
    pub xcr0: u64,
    /// The vCPU's virtual task-priority register (CR8): never loaded into the CPU,
    /// because CR8 loads and stores exit (see `crate::control_regs::tpr_write`).
    pub virtual_tpr: u64,
}

impl SwitchedRegisters {
    /// The values of a vCPU that has never run (and of a restarted one).
    pub const RESET: SwitchedRegisters = SwitchedRegisters {
        dr0_3: [0; 4],
        dr6: DR6_RESET,
        cr2: 0,
        kernel_gs_base: 0,
        xcr0: crate::xstate::XCR0_RESET,
        virtual_tpr: 0,
    };
}

impl Default for SwitchedRegisters {
    fn default() -> Self {
        Self::RESET
    }
}

/// What the binary does before entering a vCPU on a core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Switch {
    /// Save the CPU's current state into this vCPU (slot on the core) first.
    pub save: Option<usize>,
    /// Then load this vCPU's saved state.
    pub load: usize,
}

/// Tracks whose non-VMCS registers the core's CPU holds (`None`: nobody's yet, or a reset
/// state that must not be saved).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CoreStateOwner {
    holder: Option<usize>,
}

impl CoreStateOwner {
    /// Before entering vCPU `slot`: the switch to perform, or `None` when the CPU already
    /// holds its state.
    pub fn enter(&mut self, slot: usize) -> Option<Switch> {
        if self.holder == Some(slot) {
            return None;
        }
        let save = self.holder.replace(slot);
        Some(Switch { save, load: slot })
    }

    /// vCPU `slot` was reset (restart): what the CPU holds of it is garbage to be
    /// discarded, and its next entry must load its reset state.
    pub fn forget(&mut self, slot: usize) {
        if self.holder == Some(slot) {
            self.holder = None;
        }
    }

    /// The vCPU whose state the CPU holds.
    pub fn holder(&self) -> Option<usize> {
        self.holder
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::bitmaps::{fill_msr_bitmap, msr_access_exits};

    /// MSRs outside the VMCS that hold state a partition could use to talk to, or read
    /// from, a neighbour on the same core.
    const NON_VMCS_MSRS: [u32; 9] = [
        0xC000_0081, // STAR
        0xC000_0082, // LSTAR
        0xC000_0083, // CSTAR
        0xC000_0084, // FMASK
        0xC000_0102, // KERNEL_GS_BASE
        0xC000_0103, // TSC_AUX
        0x48,        // SPEC_CTRL
        0x680,       // LASTBRANCH_0_FROM_IP (last-branch records)
        0x6E0,       // TSC_DEADLINE
    ];

    #[test]
    fn every_guest_writable_non_vmcs_msr_is_switched() {
        let mut bitmap = [0u8; 4096];
        fill_msr_bitmap(&mut bitmap, &RT_MSR_READ_PASSTHROUGH, &RT_MSR_WRITE_PASSTHROUGH);
        for msr in NON_VMCS_MSRS {
            let writable_without_exit = !msr_access_exits(&bitmap, msr, true);
            // SWAPGS changes KERNEL_GS_BASE without any MSR access at all.
            let changed_by_instruction = msr == IA32_KERNEL_GS_BASE;
            if writable_without_exit || changed_by_instruction {
                assert!(SWITCHED_MSRS.contains(&msr), "MSR {msr:#x} must be switched");
            }
            assert!(msr_access_exits(&bitmap, msr, false), "reading MSR {msr:#x} must exit");
        }
    }

    #[test]
    fn ownership_follows_entries_and_restarts() {
        let mut o = CoreStateOwner::default();
        assert_eq!(o.holder(), None);
        assert_eq!(o.enter(2), Some(Switch { save: None, load: 2 }));
        assert_eq!(o.enter(2), None);
        assert_eq!(o.enter(0), Some(Switch { save: Some(2), load: 0 }));
        o.forget(2); // not the holder: nothing changes
        assert_eq!(o.holder(), Some(0));
        assert_eq!(o.enter(2), Some(Switch { save: Some(0), load: 2 }));
        o.forget(2);
        assert_eq!(o.enter(0), Some(Switch { save: None, load: 0 }));
        assert_eq!(SwitchedRegisters::default(), SwitchedRegisters::RESET);
        assert_eq!(SwitchedRegisters::RESET.xcr0, 1);
    }
}
