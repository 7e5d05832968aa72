//! VMCS field encodings (SDM Vol. 3, Appendix B) used by the hypervisor.
//!
//! 64-bit fields are given by their "full" encoding; in 64-bit mode one `VMWRITE` of the
//! full encoding writes all 64 bits. Grouped as the SDM groups them.
//!
//! ```
//! use hallows_core::vmx::vmcs::{guest, exit_info};
//! assert_eq!(guest::RIP, 0x681E);
//! assert_eq!(exit_info::EXIT_REASON, 0x4402);
//! ```

/// VM-execution, VM-exit and VM-entry control fields.
pub mod control {
    pub const VPID: u32 = 0x0000;
    pub const IO_BITMAP_A: u32 = 0x2000;
    pub const IO_BITMAP_B: u32 = 0x2002;
    pub const MSR_BITMAPS: u32 = 0x2004;
    pub const EXIT_MSR_STORE_ADDR: u32 = 0x2006;
    pub const EXIT_MSR_LOAD_ADDR: u32 = 0x2008;
    pub const ENTRY_MSR_LOAD_ADDR: u32 = 0x200A;
    pub const TSC_OFFSET: u32 = 0x2010;
    pub const EPT_POINTER: u32 = 0x201A;
    pub const PIN_BASED: u32 = 0x4000;
    pub const PRIMARY_PROC_BASED: u32 = 0x4002;
    pub const EXCEPTION_BITMAP: u32 = 0x4004;
    pub const PAGE_FAULT_ERROR_MASK: u32 = 0x4006;
    pub const PAGE_FAULT_ERROR_MATCH: u32 = 0x4008;
    pub const CR3_TARGET_COUNT: u32 = 0x400A;
    pub const EXIT_CONTROLS: u32 = 0x400C;
    pub const EXIT_MSR_STORE_COUNT: u32 = 0x400E;
    pub const EXIT_MSR_LOAD_COUNT: u32 = 0x4010;
    pub const ENTRY_CONTROLS: u32 = 0x4012;
    pub const ENTRY_MSR_LOAD_COUNT: u32 = 0x4014;
    pub const ENTRY_INTERRUPTION_INFO: u32 = 0x4016;
    pub const ENTRY_EXCEPTION_ERROR_CODE: u32 = 0x4018;
    pub const ENTRY_INSTRUCTION_LEN: u32 = 0x401A;
    pub const TPR_THRESHOLD: u32 = 0x401C;
    pub const SECONDARY_PROC_BASED: u32 = 0x401E;
    pub const CR0_GUEST_HOST_MASK: u32 = 0x6000;
    pub const CR4_GUEST_HOST_MASK: u32 = 0x6002;
    pub const CR0_READ_SHADOW: u32 = 0x6004;
    pub const CR4_READ_SHADOW: u32 = 0x6006;
}

/// Guest-state fields.
pub mod guest {
    pub const ES_SELECTOR: u32 = 0x0800;
    pub const CS_SELECTOR: u32 = 0x0802;
    pub const SS_SELECTOR: u32 = 0x0804;
    pub const DS_SELECTOR: u32 = 0x0806;
    pub const FS_SELECTOR: u32 = 0x0808;
    pub const GS_SELECTOR: u32 = 0x080A;
    pub const LDTR_SELECTOR: u32 = 0x080C;
    pub const TR_SELECTOR: u32 = 0x080E;
    pub const VMCS_LINK_POINTER: u32 = 0x2800;
    pub const IA32_DEBUGCTL: u32 = 0x2802;
    pub const IA32_PAT: u32 = 0x2804;
    pub const IA32_EFER: u32 = 0x2806;
    pub const ES_LIMIT: u32 = 0x4800;
    pub const CS_LIMIT: u32 = 0x4802;
    pub const SS_LIMIT: u32 = 0x4804;
    pub const DS_LIMIT: u32 = 0x4806;
    pub const FS_LIMIT: u32 = 0x4808;
    pub const GS_LIMIT: u32 = 0x480A;
    pub const LDTR_LIMIT: u32 = 0x480C;
    pub const TR_LIMIT: u32 = 0x480E;
    pub const GDTR_LIMIT: u32 = 0x4810;
    pub const IDTR_LIMIT: u32 = 0x4812;
    pub const ES_ACCESS_RIGHTS: u32 = 0x4814;
    pub const CS_ACCESS_RIGHTS: u32 = 0x4816;
    pub const SS_ACCESS_RIGHTS: u32 = 0x4818;
    pub const DS_ACCESS_RIGHTS: u32 = 0x481A;
    pub const FS_ACCESS_RIGHTS: u32 = 0x481C;
    pub const GS_ACCESS_RIGHTS: u32 = 0x481E;
    pub const LDTR_ACCESS_RIGHTS: u32 = 0x4820;
    pub const TR_ACCESS_RIGHTS: u32 = 0x4822;
    pub const INTERRUPTIBILITY_STATE: u32 = 0x4824;
    pub const ACTIVITY_STATE: u32 = 0x4826;
    pub const SMBASE: u32 = 0x4828;
    pub const IA32_SYSENTER_CS: u32 = 0x482A;
    pub const PREEMPTION_TIMER_VALUE: u32 = 0x482E;
    pub const CR0: u32 = 0x6800;
    pub const CR3: u32 = 0x6802;
    pub const CR4: u32 = 0x6804;
    pub const ES_BASE: u32 = 0x6806;
    pub const CS_BASE: u32 = 0x6808;
    pub const SS_BASE: u32 = 0x680A;
    pub const DS_BASE: u32 = 0x680C;
    pub const FS_BASE: u32 = 0x680E;
    pub const GS_BASE: u32 = 0x6810;
    pub const LDTR_BASE: u32 = 0x6812;
    pub const TR_BASE: u32 = 0x6814;
    pub const GDTR_BASE: u32 = 0x6816;
    pub const IDTR_BASE: u32 = 0x6818;
    pub const DR7: u32 = 0x681A;
    pub const RSP: u32 = 0x681C;
    pub const RIP: u32 = 0x681E;
    pub const RFLAGS: u32 = 0x6820;
    pub const PENDING_DEBUG_EXCEPTIONS: u32 = 0x6822;
    pub const IA32_SYSENTER_ESP: u32 = 0x6824;
    pub const IA32_SYSENTER_EIP: u32 = 0x6826;
}

/// Host-state fields (loaded on every VM exit).
pub mod host {
    pub const ES_SELECTOR: u32 = 0x0C00;
    pub const CS_SELECTOR: u32 = 0x0C02;
    pub const SS_SELECTOR: u32 = 0x0C04;
    pub const DS_SELECTOR: u32 = 0x0C06;
    pub const FS_SELECTOR: u32 = 0x0C08;
    pub const GS_SELECTOR: u32 = 0x0C0A;
    pub const TR_SELECTOR: u32 = 0x0C0C;
    pub const IA32_PAT: u32 = 0x2C00;
    pub const IA32_EFER: u32 = 0x2C02;
    pub const IA32_SYSENTER_CS: u32 = 0x4C00;
    pub const CR0: u32 = 0x6C00;
    pub const CR3: u32 = 0x6C02;
    pub const CR4: u32 = 0x6C04;
    pub const FS_BASE: u32 = 0x6C06;
    pub const GS_BASE: u32 = 0x6C08;
    pub const TR_BASE: u32 = 0x6C0A;
    pub const GDTR_BASE: u32 = 0x6C0C;
    pub const IDTR_BASE: u32 = 0x6C0E;
    pub const IA32_SYSENTER_ESP: u32 = 0x6C10;
    pub const IA32_SYSENTER_EIP: u32 = 0x6C12;
    pub const RSP: u32 = 0x6C14;
    pub const RIP: u32 = 0x6C16;
}

/// Read-only VM-exit information fields.
pub mod exit_info {
    pub const GUEST_PHYSICAL_ADDRESS: u32 = 0x2400;
    pub const VM_INSTRUCTION_ERROR: u32 = 0x4400;
    pub const EXIT_REASON: u32 = 0x4402;
    pub const INTERRUPTION_INFO: u32 = 0x4404;
    pub const INTERRUPTION_ERROR_CODE: u32 = 0x4406;
    pub const IDT_VECTORING_INFO: u32 = 0x4408;
    pub const IDT_VECTORING_ERROR_CODE: u32 = 0x440A;
    pub const INSTRUCTION_LEN: u32 = 0x440C;
    pub const INSTRUCTION_INFO: u32 = 0x440E;
    pub const EXIT_QUALIFICATION: u32 = 0x6400;
    pub const IO_RCX: u32 = 0x6402;
    pub const IO_RSI: u32 = 0x6404;
    pub const IO_RDI: u32 = 0x6406;
    pub const IO_RIP: u32 = 0x6408;
    pub const GUEST_LINEAR_ADDRESS: u32 = 0x640A;
}

/// Width of a field, from bits 14:13 of its encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldWidth {
    Bits16,
    Bits64,
    Bits32,
    Natural,
}

/// The width encoded in `field`.
pub const fn field_width(field: u32) -> FieldWidth {
    match (field >> 13) & 3 {
        0 => FieldWidth::Bits16,
        1 => FieldWidth::Bits64,
        2 => FieldWidth::Bits32,
        _ => FieldWidth::Natural,
    }
}

/// A failed VMX instruction: its VM-instruction error number (0 when the VMCS pointer
/// itself was invalid, VMfailInvalid).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmFail(pub u32);

impl core::fmt::Display for VmFail {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0 == 0 {
            write!(f, "VMfailInvalid (no current VMCS)")
        } else {
            write!(f, "VM-instruction error {}: {}", self.0, instruction_error_text(self.0))
        }
    }
}

/// VM-instruction error numbers (SDM 31.4) as text, for the console.
pub fn instruction_error_text(number: u32) -> &'static str {
    match number {
        1 => "VMCALL executed in VMX root operation",
        2 => "VMCLEAR with invalid physical address",
        3 => "VMCLEAR with VMXON pointer",
        4 => "VMLAUNCH with non-clear VMCS",
        5 => "VMRESUME with non-launched VMCS",
        6 => "VMRESUME after VMXOFF",
        7 => "VM entry with invalid control field(s)",
        8 => "VM entry with invalid host-state field(s)",
        9 => "VMPTRLD with invalid physical address",
        10 => "VMPTRLD with VMXON pointer",
        11 => "VMPTRLD with incorrect VMCS revision identifier",
        12 => "VMREAD/VMWRITE from/to unsupported VMCS component",
        13 => "VMWRITE to read-only VMCS component",
        15 => "VMXON executed in VMX root operation",
        16 => "VM entry with invalid executive-VMCS pointer",
        17 => "VM entry with non-launched executive VMCS",
        18 => "VM entry with executive-VMCS pointer not VMXON pointer",
        19 => "VMCALL with non-clear VMCS",
        20 => "VMCALL with invalid VM-exit control fields",
        22 => "VMCALL with incorrect MSEG revision identifier",
        23 => "VMXOFF under dual-monitor treatment",
        24 => "VMCALL with invalid SMM-monitor features",
        25 => "VM entry with invalid VM-execution control fields in executive VMCS",
        26 => "VM entry with events blocked by MOV SS",
        28 => "Invalid operand to INVEPT/INVVPID",
        _ => "unknown VM-instruction error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use x86::vmx::vmcs as x;

    #[test]
    fn encodings_match_the_x86_crate() {
        let pairs = [
            (control::VPID, x::control::VPID),
            (control::IO_BITMAP_A, x::control::IO_BITMAP_A_ADDR_FULL),
            (control::IO_BITMAP_B, x::control::IO_BITMAP_B_ADDR_FULL),
            (control::MSR_BITMAPS, x::control::MSR_BITMAPS_ADDR_FULL),
            (control::EXIT_MSR_STORE_ADDR, x::control::VMEXIT_MSR_STORE_ADDR_FULL),
            (control::EXIT_MSR_LOAD_ADDR, x::control::VMEXIT_MSR_LOAD_ADDR_FULL),
            (control::ENTRY_MSR_LOAD_ADDR, x::control::VMENTRY_MSR_LOAD_ADDR_FULL),
            (control::TSC_OFFSET, x::control::TSC_OFFSET_FULL),
            (control::EPT_POINTER, x::control::EPTP_FULL),
            (control::PIN_BASED, x::control::PINBASED_EXEC_CONTROLS),
            (control::PRIMARY_PROC_BASED, x::control::PRIMARY_PROCBASED_EXEC_CONTROLS),
            (control::EXCEPTION_BITMAP, x::control::EXCEPTION_BITMAP),
            (control::PAGE_FAULT_ERROR_MASK, x::control::PAGE_FAULT_ERR_CODE_MASK),
            (control::PAGE_FAULT_ERROR_MATCH, x::control::PAGE_FAULT_ERR_CODE_MATCH),
            (control::CR3_TARGET_COUNT, x::control::CR3_TARGET_COUNT),
            (control::EXIT_CONTROLS, x::control::VMEXIT_CONTROLS),
            (control::EXIT_MSR_STORE_COUNT, x::control::VMEXIT_MSR_STORE_COUNT),
            (control::EXIT_MSR_LOAD_COUNT, x::control::VMEXIT_MSR_LOAD_COUNT),
            (control::ENTRY_CONTROLS, x::control::VMENTRY_CONTROLS),
            (control::ENTRY_MSR_LOAD_COUNT, x::control::VMENTRY_MSR_LOAD_COUNT),
            (control::ENTRY_INTERRUPTION_INFO, x::control::VMENTRY_INTERRUPTION_INFO_FIELD),
            (control::ENTRY_EXCEPTION_ERROR_CODE, x::control::VMENTRY_EXCEPTION_ERR_CODE),
            (control::ENTRY_INSTRUCTION_LEN, x::control::VMENTRY_INSTRUCTION_LEN),
            (control::TPR_THRESHOLD, x::control::TPR_THRESHOLD),
            (control::SECONDARY_PROC_BASED, x::control::SECONDARY_PROCBASED_EXEC_CONTROLS),
            (control::CR0_GUEST_HOST_MASK, x::control::CR0_GUEST_HOST_MASK),
            (control::CR4_GUEST_HOST_MASK, x::control::CR4_GUEST_HOST_MASK),
            (control::CR0_READ_SHADOW, x::control::CR0_READ_SHADOW),
            (control::CR4_READ_SHADOW, x::control::CR4_READ_SHADOW),
            (guest::ES_SELECTOR, x::guest::ES_SELECTOR),
            (guest::CS_SELECTOR, x::guest::CS_SELECTOR),
            (guest::SS_SELECTOR, x::guest::SS_SELECTOR),
            (guest::DS_SELECTOR, x::guest::DS_SELECTOR),
            (guest::FS_SELECTOR, x::guest::FS_SELECTOR),
            (guest::GS_SELECTOR, x::guest::GS_SELECTOR),
            (guest::LDTR_SELECTOR, x::guest::LDTR_SELECTOR),
            (guest::TR_SELECTOR, x::guest::TR_SELECTOR),
            (guest::VMCS_LINK_POINTER, x::guest::LINK_PTR_FULL),
            (guest::IA32_DEBUGCTL, x::guest::IA32_DEBUGCTL_FULL),
            (guest::IA32_PAT, x::guest::IA32_PAT_FULL),
            (guest::IA32_EFER, x::guest::IA32_EFER_FULL),
            (guest::ES_LIMIT, x::guest::ES_LIMIT),
            (guest::CS_LIMIT, x::guest::CS_LIMIT),
            (guest::SS_LIMIT, x::guest::SS_LIMIT),
            (guest::DS_LIMIT, x::guest::DS_LIMIT),
            (guest::FS_LIMIT, x::guest::FS_LIMIT),
            (guest::GS_LIMIT, x::guest::GS_LIMIT),
            (guest::LDTR_LIMIT, x::guest::LDTR_LIMIT),
            (guest::TR_LIMIT, x::guest::TR_LIMIT),
            (guest::GDTR_LIMIT, x::guest::GDTR_LIMIT),
            (guest::IDTR_LIMIT, x::guest::IDTR_LIMIT),
            (guest::ES_ACCESS_RIGHTS, x::guest::ES_ACCESS_RIGHTS),
            (guest::CS_ACCESS_RIGHTS, x::guest::CS_ACCESS_RIGHTS),
            (guest::SS_ACCESS_RIGHTS, x::guest::SS_ACCESS_RIGHTS),
            (guest::DS_ACCESS_RIGHTS, x::guest::DS_ACCESS_RIGHTS),
            (guest::FS_ACCESS_RIGHTS, x::guest::FS_ACCESS_RIGHTS),
            (guest::GS_ACCESS_RIGHTS, x::guest::GS_ACCESS_RIGHTS),
            (guest::LDTR_ACCESS_RIGHTS, x::guest::LDTR_ACCESS_RIGHTS),
            (guest::TR_ACCESS_RIGHTS, x::guest::TR_ACCESS_RIGHTS),
            (guest::INTERRUPTIBILITY_STATE, x::guest::INTERRUPTIBILITY_STATE),
            (guest::ACTIVITY_STATE, x::guest::ACTIVITY_STATE),
            (guest::SMBASE, x::guest::SMBASE),
            (guest::IA32_SYSENTER_CS, x::guest::IA32_SYSENTER_CS),
            (guest::PREEMPTION_TIMER_VALUE, x::guest::VMX_PREEMPTION_TIMER_VALUE),
            (guest::CR0, x::guest::CR0),
            (guest::CR3, x::guest::CR3),
            (guest::CR4, x::guest::CR4),
            (guest::ES_BASE, x::guest::ES_BASE),
            (guest::CS_BASE, x::guest::CS_BASE),
            (guest::SS_BASE, x::guest::SS_BASE),
            (guest::DS_BASE, x::guest::DS_BASE),
            (guest::FS_BASE, x::guest::FS_BASE),
            (guest::GS_BASE, x::guest::GS_BASE),
            (guest::LDTR_BASE, x::guest::LDTR_BASE),
            (guest::TR_BASE, x::guest::TR_BASE),
            (guest::GDTR_BASE, x::guest::GDTR_BASE),
            (guest::IDTR_BASE, x::guest::IDTR_BASE),
            (guest::DR7, x::guest::DR7),
            (guest::RSP, x::guest::RSP),
            (guest::RIP, x::guest::RIP),
            (guest::RFLAGS, x::guest::RFLAGS),
            (guest::PENDING_DEBUG_EXCEPTIONS, x::guest::PENDING_DBG_EXCEPTIONS),
            (guest::IA32_SYSENTER_ESP, x::guest::IA32_SYSENTER_ESP),
            (guest::IA32_SYSENTER_EIP, x::guest::IA32_SYSENTER_EIP),
            (host::ES_SELECTOR, x::host::ES_SELECTOR),
            (host::CS_SELECTOR, x::host::CS_SELECTOR),
            (host::SS_SELECTOR, x::host::SS_SELECTOR),
            (host::DS_SELECTOR, x::host::DS_SELECTOR),
            (host::FS_SELECTOR, x::host::FS_SELECTOR),
            (host::GS_SELECTOR, x::host::GS_SELECTOR),
            (host::TR_SELECTOR, x::host::TR_SELECTOR),
            (host::IA32_PAT, x::host::IA32_PAT_FULL),
            (host::IA32_EFER, x::host::IA32_EFER_FULL),
            (host::IA32_SYSENTER_CS, x::host::IA32_SYSENTER_CS),
            (host::CR0, x::host::CR0),
            (host::CR3, x::host::CR3),
            (host::CR4, x::host::CR4),
            (host::FS_BASE, x::host::FS_BASE),
            (host::GS_BASE, x::host::GS_BASE),
            (host::TR_BASE, x::host::TR_BASE),
            (host::GDTR_BASE, x::host::GDTR_BASE),
            (host::IDTR_BASE, x::host::IDTR_BASE),
            (host::IA32_SYSENTER_ESP, x::host::IA32_SYSENTER_ESP),
            (host::IA32_SYSENTER_EIP, x::host::IA32_SYSENTER_EIP),
            (host::RSP, x::host::RSP),
            (host::RIP, x::host::RIP),
            (exit_info::GUEST_PHYSICAL_ADDRESS, x::ro::GUEST_PHYSICAL_ADDR_FULL),
            (exit_info::VM_INSTRUCTION_ERROR, x::ro::VM_INSTRUCTION_ERROR),
            (exit_info::EXIT_REASON, x::ro::EXIT_REASON),
            (exit_info::INTERRUPTION_INFO, x::ro::VMEXIT_INTERRUPTION_INFO),
            (exit_info::INTERRUPTION_ERROR_CODE, x::ro::VMEXIT_INTERRUPTION_ERR_CODE),
            (exit_info::IDT_VECTORING_INFO, x::ro::IDT_VECTORING_INFO),
            (exit_info::IDT_VECTORING_ERROR_CODE, x::ro::IDT_VECTORING_ERR_CODE),
            (exit_info::INSTRUCTION_LEN, x::ro::VMEXIT_INSTRUCTION_LEN),
            (exit_info::INSTRUCTION_INFO, x::ro::VMEXIT_INSTRUCTION_INFO),
            (exit_info::EXIT_QUALIFICATION, x::ro::EXIT_QUALIFICATION),
            (exit_info::IO_RCX, x::ro::IO_RCX),
            (exit_info::IO_RSI, x::ro::IO_RSI),
            (exit_info::IO_RDI, x::ro::IO_RDI),
            (exit_info::IO_RIP, x::ro::IO_RIP),
            (exit_info::GUEST_LINEAR_ADDRESS, x::ro::GUEST_LINEAR_ADDR),
        ];
        for (i, (mine, theirs)) in pairs.iter().enumerate() {
            assert_eq!(mine, theirs, "pair {i}");
        }
    }

    #[test]
    fn widths_follow_the_encoding() {
        assert_eq!(field_width(guest::CS_SELECTOR), FieldWidth::Bits16);
        assert_eq!(field_width(guest::IA32_EFER), FieldWidth::Bits64);
        assert_eq!(field_width(guest::CS_ACCESS_RIGHTS), FieldWidth::Bits32);
        assert_eq!(field_width(guest::RIP), FieldWidth::Natural);
        assert_eq!(instruction_error_text(7), "VM entry with invalid control field(s)");
        assert_eq!(instruction_error_text(999), "unknown VM-instruction error");
        assert_eq!(VmFail(0).to_string(), "VMfailInvalid (no current VMCS)");
        assert_eq!(
            VmFail(8).to_string(),
            "VM-instruction error 8: VM entry with invalid host-state field(s)"
        );
    }
}
