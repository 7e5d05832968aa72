//! The VMCS host-state area: where the CPU returns to on every VM exit. Which field gets
//! which value is decided here; the binary reads the control registers and EFER and
//! writes the list once per VMCS (the stack pointer before each entry).

use super::vmcs::host;
use crate::host_tables::{CODE_SELECTOR, DATA_SELECTOR, TSS_SELECTOR};

/// What the host state is made of on one core.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostState {
    pub cr0: u64,
    pub cr3: u64,
    pub cr4: u64,
    /// This core's TSS and GDT, the shared IDT.
    pub tr_base: u64,
    pub gdtr_base: u64,
    pub idtr_base: u64,
    pub efer: u64,
    /// The exit stub.
    pub rip: u64,
}

/// The host-state fields every vCPU on a core shares: the hypervisor's control
/// registers, flat selectors with FS and GS based at 0, this core's GDT and TSS, the IDT,
/// no SYSENTER, EFER and the exit stub.
pub const fn fields(s: &HostState) -> [(u32, u64); 20] {
    let data = DATA_SELECTOR as u64;
    [
        (host::CR0, s.cr0),
        (host::CR3, s.cr3),
        (host::CR4, s.cr4),
        (host::CS_SELECTOR, CODE_SELECTOR as u64),
        (host::SS_SELECTOR, data),
        (host::DS_SELECTOR, data),
        (host::ES_SELECTOR, data),
        (host::FS_SELECTOR, data),
        (host::GS_SELECTOR, data),
        (host::TR_SELECTOR, TSS_SELECTOR as u64),
        (host::FS_BASE, 0),
        (host::GS_BASE, 0),
        (host::TR_BASE, s.tr_base),
        (host::GDTR_BASE, s.gdtr_base),
        (host::IDTR_BASE, s.idtr_base),
        (host::IA32_SYSENTER_CS, 0),
        (host::IA32_SYSENTER_ESP, 0),
        (host::IA32_SYSENTER_EIP, 0),
        (host::IA32_EFER, s.efer),
        (host::RIP, s.rip),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_host_field_once_with_its_value() {
        let s = HostState {
            cr0: 0x8005_0033,
            cr3: 0x1000,
            cr4: 0x2620,
            tr_base: 0xA000,
            gdtr_base: 0xB000,
            idtr_base: 0xC000,
            efer: 0xD01,
            rip: 0xE000,
        };
        let f = fields(&s);
        let mut encodings: Vec<u32> = f.iter().map(|(field, _)| *field).collect();
        encodings.sort();
        encodings.dedup();
        assert_eq!(encodings.len(), 20, "no field twice");
        let value = |field| f.iter().find(|(e, _)| *e == field).map(|(_, v)| *v);
        assert_eq!(value(host::CR3), Some(0x1000));
        assert_eq!(value(host::CS_SELECTOR), Some(0x08));
        assert_eq!(value(host::GS_SELECTOR), Some(0x10));
        assert_eq!(value(host::TR_SELECTOR), Some(0x18));
        assert_eq!(value(host::TR_BASE), Some(0xA000));
        assert_eq!(value(host::IDTR_BASE), Some(0xC000));
        assert_eq!(value(host::IA32_EFER), Some(0xD01));
        assert_eq!(value(host::RIP), Some(0xE000));
        assert_eq!(value(host::RSP), None, "written before each entry");
        assert_eq!(value(host::IA32_PAT), None, "only Linux vCPUs load PAT");
    }
}
