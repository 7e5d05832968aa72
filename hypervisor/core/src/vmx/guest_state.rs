//! The VMCS guest-state plan for a real-time partition vCPU entering in 64-bit mode.
//!
//! [`rt_guest_state`] returns the list of `(field, value)` writes; the binary performs them
//! with `VMWRITE` after the control and host fields. [`check_guest_state`] re-checks a plan
//! against the SDM's VM-entry guest-state rules (Vol. 3, 27.3.1) that can be checked
//! without the processor, so a mistake shows up in a host test or as a clear console line
//! instead of an opaque "VM entry failure, invalid guest state".
//!
//! The vCPU starts at `rip` with `rsp`, paging on with `cr3` (from
//! [`crate::guest_paging`]), long mode active, interrupts disabled (RFLAGS = 0x2), a flat
//! 64-bit code segment, flat data segments, a usable busy 64-bit TSS at base 0 (required
//! by VM entry; the partition installs its own GDT/IDT/TSS if it needs them), an unusable
//! LDTR, and zero-limit GDTR/IDTR. The general-purpose registers (`rdi` = boot info,
//! `rsi` = vCPU index) are not VMCS fields: see [`crate::hypercall::GuestRegs::for_entry`].
//!
//! CR0/CR4 must keep the VMX-fixed bits (CR4.VMXE among them) while the guest runs; the
//! plan also sets the CR0/CR4 guest/host masks to those bits and the read shadows to the
//! values the guest asked for, so the guest reads its own view and an attempt to change a
//! fixed bit exits (a control-register access exit).
//!
//! ```
//! use hallows_core::vmx::guest_state::{check_guest_state, rt_guest_state, GuestEntry};
//! use hallows_core::vmx::caps::{bochs_skylake_msr, VmxCapabilities};
//! let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
//! let plan = rt_guest_state(&caps, GuestEntry { rip: 0x10_0000, rsp: 0x20_0000, cr3: 0x2000 });
//! let controls = caps.controls_for_partition().unwrap();
//! check_guest_state(&plan, &caps, controls.entry).unwrap();
//! for w in plan.writes() {
//!     // vmwrite(w.field, w.value)
//! #   let _ = w;
//! }
//! ```

use crate::vmx::caps::{entry, VmxCapabilities};
use crate::vmx::vmcs::{control, guest};
use arrayvec::ArrayVec;

/// IA32_EFER bits.
pub use crate::control_regs::efer;
/// CR0 and CR4 bits: one set, owned by [`crate::control_regs`].
pub use crate::control_regs::{cr0, cr4};

/// Selector of the flat 64-bit code segment.
pub const CODE_SELECTOR: u64 = 0x08;
/// Selector of the flat data segments.
pub const DATA_SELECTOR: u64 = 0x10;
/// Selector of the task register.
pub const TSS_SELECTOR: u64 = 0x18;
/// Access rights: present, DPL 0, code, execute/read, accessed, L = 1, G = 1.
pub const CODE64_ACCESS: u64 = 0xA09B;
/// Access rights: present, DPL 0, data, read/write, accessed, D/B = 1, G = 1.
pub const DATA_ACCESS: u64 = 0xC093;
/// Access rights: present, system, busy 64-bit TSS (type 11).
pub const TSS_ACCESS: u64 = 0x008B;
/// Access rights bit 16: the segment is unusable.
pub const UNUSABLE: u64 = 1 << 16;
/// Power-on IA32_PAT (WB, WT, UC-, UC, repeated).
pub const DEFAULT_PAT: u64 = 0x0007_0406_0007_0406;

/// One `VMWRITE`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VmcsWrite {
    pub field: u32,
    pub value: u64,
}

/// Where a vCPU starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GuestEntry {
    pub rip: u64,
    pub rsp: u64,
    pub cr3: u64,
}

/// Most writes a plan holds.
pub const MAX_WRITES: usize = 72;

/// An ordered list of VMCS writes.
#[derive(Clone, Debug, Default)]
pub struct GuestStatePlan {
    writes: ArrayVec<VmcsWrite, MAX_WRITES>,
}

impl GuestStatePlan {
    /// The writes, in order.
    pub fn writes(&self) -> &[VmcsWrite] {
        &self.writes
    }

    /// The value planned for `field` (the last write wins).
    pub fn get(&self, field: u32) -> Option<u64> {
        self.writes.iter().rev().find(|w| w.field == field).map(|w| w.value)
    }

    /// Sets `field`, replacing an earlier write of it.
    pub fn set(&mut self, field: u32, value: u64) {
        if let Some(w) = self.writes.iter_mut().find(|w| w.field == field) {
            w.value = value;
        } else {
            // MAX_WRITES exceeds every field this module knows; a full plan keeps the
            // first writes rather than panicking.
            let _ = self.writes.try_push(VmcsWrite { field, value });
        }
    }

    fn value(&self, field: u32) -> u64 {
        self.get(field).unwrap_or(0)
    }
}

/// The guest state of an RT partition vCPU (see the module documentation).
pub fn rt_guest_state(caps: &VmxCapabilities, at: GuestEntry) -> GuestStatePlan {
    let mut p = GuestStatePlan::default();
    let wanted_cr0 = cr0::PE | cr0::MP | cr0::ET | cr0::NE | cr0::WP | cr0::PG;
    let wanted_cr4 = cr4::PAE | cr4::OSFXSR | cr4::OSXMMEXCPT;
    p.set(guest::CR0, caps.fix_cr0(wanted_cr0));
    p.set(guest::CR3, at.cr3);
    p.set(guest::CR4, caps.fix_cr4(wanted_cr4));
    // The hypervisor owns every bit of both registers (crate::control_regs decides the
    // guest's writes); the guest reads the shadows.
    p.set(control::CR0_GUEST_HOST_MASK, crate::control_regs::RT_GUEST_HOST_MASK);
    p.set(control::CR0_READ_SHADOW, wanted_cr0);
    p.set(control::CR4_GUEST_HOST_MASK, crate::control_regs::RT_GUEST_HOST_MASK);
    p.set(control::CR4_READ_SHADOW, wanted_cr4);
    p.set(guest::IA32_EFER, efer::LME | efer::LMA | efer::NXE);
    if caps.has_pat_field() {
        p.set(guest::IA32_PAT, DEFAULT_PAT);
    }
    p.set(guest::IA32_DEBUGCTL, 0);
    p.set(guest::DR7, 0x400);
    p.set(guest::RIP, at.rip);
    p.set(guest::RSP, at.rsp);
    p.set(guest::RFLAGS, 0x2);

    let segments = [
        (
            guest::CS_SELECTOR,
            guest::CS_BASE,
            guest::CS_LIMIT,
            guest::CS_ACCESS_RIGHTS,
            CODE_SELECTOR,
            CODE64_ACCESS,
        ),
        (
            guest::SS_SELECTOR,
            guest::SS_BASE,
            guest::SS_LIMIT,
            guest::SS_ACCESS_RIGHTS,
            DATA_SELECTOR,
            DATA_ACCESS,
        ),
        (
            guest::DS_SELECTOR,
            guest::DS_BASE,
            guest::DS_LIMIT,
            guest::DS_ACCESS_RIGHTS,
            DATA_SELECTOR,
            DATA_ACCESS,
        ),
        (
            guest::ES_SELECTOR,
            guest::ES_BASE,
            guest::ES_LIMIT,
            guest::ES_ACCESS_RIGHTS,
            DATA_SELECTOR,
            DATA_ACCESS,
        ),
        (
            guest::FS_SELECTOR,
            guest::FS_BASE,
            guest::FS_LIMIT,
            guest::FS_ACCESS_RIGHTS,
            DATA_SELECTOR,
            DATA_ACCESS,
        ),
        (
            guest::GS_SELECTOR,
            guest::GS_BASE,
            guest::GS_LIMIT,
            guest::GS_ACCESS_RIGHTS,
            DATA_SELECTOR,
            DATA_ACCESS,
        ),
    ];
    for (sel, base, limit, access, sel_value, access_value) in segments {
        p.set(sel, sel_value);
        p.set(base, 0);
        p.set(limit, 0xFFFF_FFFF);
        p.set(access, access_value);
    }
    p.set(guest::TR_SELECTOR, TSS_SELECTOR);
    p.set(guest::TR_BASE, 0);
    p.set(guest::TR_LIMIT, 0x67);
    p.set(guest::TR_ACCESS_RIGHTS, TSS_ACCESS);
    p.set(guest::LDTR_SELECTOR, 0);
    p.set(guest::LDTR_BASE, 0);
    p.set(guest::LDTR_LIMIT, 0);
    p.set(guest::LDTR_ACCESS_RIGHTS, UNUSABLE);
    p.set(guest::GDTR_BASE, 0);
    p.set(guest::GDTR_LIMIT, 0);
    p.set(guest::IDTR_BASE, 0);
    p.set(guest::IDTR_LIMIT, 0);

    p.set(guest::ACTIVITY_STATE, 0);
    p.set(guest::INTERRUPTIBILITY_STATE, 0);
    p.set(guest::PENDING_DEBUG_EXCEPTIONS, 0);
    p.set(guest::IA32_SYSENTER_CS, 0);
    p.set(guest::IA32_SYSENTER_ESP, 0);
    p.set(guest::IA32_SYSENTER_EIP, 0);
    p.set(guest::VMCS_LINK_POINTER, u64::MAX);
    p
}

fn canonical(addr: u64) -> bool {
    let top = addr as i64 >> 47;
    top == 0 || top == -1
}

/// The granularity rule: limit bits 11:0 all ones if G = 1, bits 31:20 zero if G = 0.
fn granularity_ok(limit: u64, access: u64) -> bool {
    let g = access & (1 << 15) != 0;
    (limit & 0xFFF == 0xFFF || !g) && (limit >> 20 & 0xFFF == 0 || g)
}

/// Checks `plan` against the VM-entry guest-state rules that do not need the processor
/// (64-bit guest without unrestricted guest or virtual-8086 mode). `entry_controls` is
/// the VM-entry control value; `caps` supplies the CR0/CR4 fixed bits. Returns the first
/// broken rule, in the SDM's words.
pub fn check_guest_state(
    plan: &GuestStatePlan,
    caps: &VmxCapabilities,
    entry_controls: u32,
) -> Result<(), &'static str> {
    let v = |f| plan.value(f);
    let ia32e = entry_controls & entry::IA32E_MODE_GUEST != 0;
    let (cr0, cr4, efer) = (v(guest::CR0), v(guest::CR4), v(guest::IA32_EFER));
    let rule = |ok: bool, what: &'static str| if ok { Ok(()) } else { Err(what) };

    rule(cr0 & caps.cr0_fixed0 == caps.cr0_fixed0, "CR0 must have every IA32_VMX_CR0_FIXED0 bit set")?;
    rule(cr0 & !caps.cr0_fixed1 == 0, "CR0 must have every IA32_VMX_CR0_FIXED1 zero bit clear")?;
    rule(cr4 & caps.cr4_fixed0 == caps.cr4_fixed0, "CR4 must have every IA32_VMX_CR4_FIXED0 bit set")?;
    rule(cr4 & !caps.cr4_fixed1 == 0, "CR4 must have every IA32_VMX_CR4_FIXED1 zero bit clear")?;
    rule(cr0 & cr0::PG == 0 || cr0 & cr0::PE != 0, "CR0.PG = 1 requires CR0.PE = 1")?;
    rule(
        !ia32e || (cr0 & cr0::PG != 0 && cr4 & cr4::PAE != 0),
        "IA-32e mode guest requires CR0.PG and CR4.PAE",
    )?;
    rule(ia32e || cr4 & cr4::PCIDE == 0, "CR4.PCIDE requires IA-32e mode guest")?;
    rule(v(guest::CR3) >> 52 == 0, "CR3 beyond the physical-address width")?;
    rule(v(guest::DR7) >> 32 == 0, "DR7 bits 63:32 must be zero")?;
    if entry_controls & entry::LOAD_EFER != 0 {
        rule(efer & !(efer::SCE | efer::LME | efer::LMA | efer::NXE) == 0, "IA32_EFER reserved bits set")?;
        rule((efer & efer::LMA != 0) == ia32e, "IA32_EFER.LMA must equal the IA-32e mode guest control")?;
        rule(
            cr0 & cr0::PG == 0 || (efer & efer::LMA != 0) == (efer & efer::LME != 0),
            "with CR0.PG = 1, IA32_EFER.LME must equal IA32_EFER.LMA",
        )?;
    }
    if entry_controls & entry::LOAD_PAT != 0 || plan.get(guest::IA32_PAT).is_some() {
        let pat = v(guest::IA32_PAT);
        rule(pat.to_le_bytes().iter().all(|b| matches!(b, 0 | 1 | 4 | 5 | 6 | 7)), "IA32_PAT entry invalid")?;
    }

    // Segment registers.
    let cs_ar = v(guest::CS_ACCESS_RIGHTS);
    let ss_ar = v(guest::SS_ACCESS_RIGHTS);
    let tr_ar = v(guest::TR_ACCESS_RIGHTS);
    let ldtr_ar = v(guest::LDTR_ACCESS_RIGHTS);
    let dpl = |ar: u64| ar >> 5 & 3;
    rule(v(guest::TR_SELECTOR) & 4 == 0, "TR selector TI flag must be 0")?;
    rule(ldtr_ar & UNUSABLE != 0 || v(guest::LDTR_SELECTOR) & 4 == 0, "LDTR selector TI flag must be 0")?;
    rule(v(guest::SS_SELECTOR) & 3 == v(guest::CS_SELECTOR) & 3, "SS.RPL must equal CS.RPL")?;
    for (base, name) in [
        (guest::TR_BASE, "TR base must be canonical"),
        (guest::FS_BASE, "FS base must be canonical"),
        (guest::GS_BASE, "GS base must be canonical"),
        (guest::LDTR_BASE, "LDTR base must be canonical"),
        (guest::GDTR_BASE, "GDTR base must be canonical"),
        (guest::IDTR_BASE, "IDTR base must be canonical"),
    ] {
        rule(canonical(v(base)), name)?;
    }
    rule(v(guest::CS_BASE) >> 32 == 0, "CS base bits 63:32 must be zero")?;
    rule(cs_ar & UNUSABLE == 0, "CS must be usable")?;
    rule(matches!(cs_ar & 0xF, 9 | 11 | 13 | 15), "CS type must be an accessed code segment")?;
    rule(cs_ar & 0x10 != 0, "CS must be a code/data segment (S = 1)")?;
    rule(cs_ar & 0x80 != 0, "CS must be present")?;
    rule(
        !matches!(cs_ar & 0xF, 9 | 11) || dpl(cs_ar) == dpl(ss_ar),
        "non-conforming CS.DPL must equal SS.DPL",
    )?;
    rule(cs_ar & 0xF00 == 0 && cs_ar >> 17 == 0, "CS access-rights reserved bits set")?;
    rule(!ia32e || cs_ar & (1 << 13) == 0 || cs_ar & (1 << 14) == 0, "CS.L = 1 requires CS.D = 0")?;
    rule(granularity_ok(v(guest::CS_LIMIT), cs_ar), "CS limit and granularity disagree")?;
    if ss_ar & UNUSABLE == 0 {
        rule(matches!(ss_ar & 0xF, 3 | 7), "SS type must be read/write accessed data")?;
        rule(dpl(ss_ar) == v(guest::SS_SELECTOR) & 3, "SS.DPL must equal SS.RPL")?;
    }
    for (base, limit, ar_field) in [
        (guest::SS_BASE, guest::SS_LIMIT, guest::SS_ACCESS_RIGHTS),
        (guest::DS_BASE, guest::DS_LIMIT, guest::DS_ACCESS_RIGHTS),
        (guest::ES_BASE, guest::ES_LIMIT, guest::ES_ACCESS_RIGHTS),
        (guest::FS_BASE, guest::FS_LIMIT, guest::FS_ACCESS_RIGHTS),
        (guest::GS_BASE, guest::GS_LIMIT, guest::GS_ACCESS_RIGHTS),
    ] {
        let ar = v(ar_field);
        if ar & UNUSABLE != 0 {
            continue;
        }
        rule(ar & 1 != 0, "usable data segment type must be accessed")?;
        rule(ar & 8 == 0 || ar & 2 != 0, "usable code segment in a data register must be readable")?;
        rule(ar & 0x10 != 0 && ar & 0x80 != 0, "usable data segment must have S = 1 and P = 1")?;
        rule(ar & 0xF00 == 0 && ar >> 17 == 0, "data segment access-rights reserved bits set")?;
        rule(granularity_ok(v(limit), ar), "data segment limit and granularity disagree")?;
        rule(
            matches!(ar_field, guest::FS_ACCESS_RIGHTS | guest::GS_ACCESS_RIGHTS) || v(base) >> 32 == 0,
            "SS/DS/ES base bits 63:32 must be zero",
        )?;
    }
    rule(tr_ar & UNUSABLE == 0, "TR must be usable")?;
    rule(
        if ia32e { tr_ar & 0xF == 11 } else { matches!(tr_ar & 0xF, 3 | 11) },
        "TR type must be a busy TSS (11 in IA-32e mode)",
    )?;
    rule(tr_ar & 0x10 == 0 && tr_ar & 0x80 != 0, "TR must be a present system segment")?;
    rule(tr_ar & 0xF00 == 0 && tr_ar >> 17 == 0, "TR access-rights reserved bits set")?;
    rule(granularity_ok(v(guest::TR_LIMIT), tr_ar), "TR limit and granularity disagree")?;
    if ldtr_ar & UNUSABLE == 0 {
        rule(
            ldtr_ar & 0xF == 2 && ldtr_ar & 0x10 == 0 && ldtr_ar & 0x80 != 0,
            "usable LDTR must be a present LDT",
        )?;
    }
    rule(
        v(guest::GDTR_LIMIT) >> 16 == 0 && v(guest::IDTR_LIMIT) >> 16 == 0,
        "GDTR/IDTR limit bits 31:16 must be zero",
    )?;

    // RIP and RFLAGS.
    let rip = v(guest::RIP);
    if ia32e && cs_ar & (1 << 13) != 0 {
        rule(canonical(rip), "RIP must be canonical")?;
    } else {
        rule(rip >> 32 == 0, "RIP bits 63:32 must be zero outside 64-bit mode")?;
    }
    let rflags = v(guest::RFLAGS);
    rule(rflags & 2 != 0, "RFLAGS bit 1 must be set")?;
    rule(rflags & (!0u64 << 22 | 1 << 15 | 1 << 5 | 1 << 3) == 0, "RFLAGS reserved bits set")?;
    rule(!ia32e || rflags & (1 << 17) == 0, "RFLAGS.VM must be 0 in IA-32e mode")?;

    // Non-register state.
    rule(v(guest::ACTIVITY_STATE) <= 3, "activity state must be 0..3")?;
    rule(v(guest::ACTIVITY_STATE) != 1 || dpl(ss_ar) == 0, "HLT activity state requires SS.DPL = 0")?;
    rule(v(guest::INTERRUPTIBILITY_STATE) >> 5 == 0, "interruptibility-state reserved bits set")?;
    rule(
        v(guest::INTERRUPTIBILITY_STATE) & 1 == 0 || rflags & (1 << 9) != 0,
        "blocking by STI requires RFLAGS.IF = 1",
    )?;
    rule(plan.get(guest::VMCS_LINK_POINTER) == Some(u64::MAX), "VMCS link pointer must be all ones")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::caps::bochs_skylake_msr;

    fn setup() -> (VmxCapabilities, GuestStatePlan, u32) {
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        let plan = rt_guest_state(&caps, GuestEntry { rip: 0x10_0000, rsp: 0x40_0000, cr3: 0x2000 });
        let entry = caps.controls_for_partition().unwrap().entry;
        (caps, plan, entry)
    }

    #[test]
    fn plan_passes_every_checkable_rule() {
        let (caps, plan, entry) = setup();
        assert_eq!(check_guest_state(&plan, &caps, entry), Ok(()));
        assert_eq!(plan.get(guest::RIP), Some(0x10_0000));
        assert_eq!(plan.get(guest::RSP), Some(0x40_0000));
        assert_eq!(plan.get(guest::CR3), Some(0x2000));
        assert_eq!(plan.get(guest::CR4).unwrap() & cr4::VMXE, cr4::VMXE, "fixed bit forced on");
        assert_eq!(plan.get(control::CR4_READ_SHADOW).unwrap() & cr4::VMXE, 0, "guest does not see VMXE");
        assert_eq!(plan.get(control::CR4_GUEST_HOST_MASK).unwrap() & cr4::VMXE, cr4::VMXE);
        assert_eq!(plan.get(guest::IA32_EFER), Some(0xD00));
        assert_eq!(plan.get(guest::LDTR_ACCESS_RIGHTS), Some(UNUSABLE));
        // Every field is written once.
        let mut fields: Vec<u32> = plan.writes().iter().map(|w| w.field).collect();
        fields.sort();
        fields.dedup();
        assert_eq!(fields.len(), plan.writes().len());
    }

    fn broken(field: u32, value: u64) -> Result<(), &'static str> {
        let (caps, mut plan, entry) = setup();
        plan.set(field, value);
        check_guest_state(&plan, &caps, entry)
    }

    #[test]
    fn checker_catches_broken_plans() {
        let (_, plan, _) = setup();
        let cr0v = plan.get(guest::CR0).unwrap();
        let cr4v = plan.get(guest::CR4).unwrap();
        let cases: [(u32, u64, &str); 16] = [
            (guest::CR0, cr0v & !cr0::PE, "CR0 must have every IA32_VMX_CR0_FIXED0 bit set"),
            (guest::CR4, cr4v & !cr4::PAE, "IA-32e mode guest requires CR0.PG and CR4.PAE"),
            (guest::CR4, cr4v & !cr4::VMXE, "CR4 must have every IA32_VMX_CR4_FIXED0 bit set"),
            (
                guest::IA32_EFER,
                efer::LME | efer::NXE,
                "IA32_EFER.LMA must equal the IA-32e mode guest control",
            ),
            (
                guest::IA32_EFER,
                efer::LMA | efer::NXE,
                "with CR0.PG = 1, IA32_EFER.LME must equal IA32_EFER.LMA",
            ),
            (guest::CS_ACCESS_RIGHTS, CODE64_ACCESS | 1 << 14, "CS.L = 1 requires CS.D = 0"),
            (guest::CS_ACCESS_RIGHTS, CODE64_ACCESS & !1, "CS type must be an accessed code segment"),
            (guest::TR_ACCESS_RIGHTS, 0x89, "TR type must be a busy TSS (11 in IA-32e mode)"),
            (guest::TR_ACCESS_RIGHTS, UNUSABLE | TSS_ACCESS, "TR must be usable"),
            (guest::TR_SELECTOR, 0x1C, "TR selector TI flag must be 0"),
            (guest::RFLAGS, 0, "RFLAGS bit 1 must be set"),
            (guest::RIP, 0x8000_0000_0000, "RIP must be canonical"),
            (guest::VMCS_LINK_POINTER, 0, "VMCS link pointer must be all ones"),
            (guest::CS_LIMIT, 0xFFFF_F000, "CS limit and granularity disagree"),
            (guest::LDTR_ACCESS_RIGHTS, 0x82 | 1, "usable LDTR must be a present LDT"),
            (guest::IA32_PAT, 0x0007_0406_0007_0402, "IA32_PAT entry invalid"),
        ];
        for (field, value, why) in cases {
            assert_eq!(broken(field, value), Err(why), "field {field:#x} = {value:#x}");
        }
    }

    #[test]
    fn pat_is_written_only_where_the_field_exists() {
        let no_pat = VmxCapabilities::from_msrs(|m| {
            let v = bochs_skylake_msr(m);
            match m {
                crate::vmx::caps::msr::IA32_VMX_TRUE_ENTRY_CTLS => v & !((entry::LOAD_PAT as u64) << 32),
                crate::vmx::caps::msr::IA32_VMX_TRUE_EXIT_CTLS => {
                    v & !(((crate::vmx::caps::exit::SAVE_PAT | crate::vmx::caps::exit::LOAD_PAT) as u64)
                        << 32)
                }
                _ => v,
            }
        });
        let at = GuestEntry { rip: 0x10_0000, rsp: 0x40_0000, cr3: 0x2000 };
        assert_eq!(rt_guest_state(&no_pat, at).get(guest::IA32_PAT), None);
        let entry_controls = no_pat.controls_for_partition().unwrap().entry;
        assert_eq!(check_guest_state(&rt_guest_state(&no_pat, at), &no_pat, entry_controls), Ok(()));
        let (_, plan, _) = setup();
        assert_eq!(plan.get(guest::IA32_PAT), Some(DEFAULT_PAT));
    }

    #[test]
    fn checker_knows_ia32e_mode_needs_lma() {
        let (caps, plan, entry) = setup();
        // Same plan, but entering without the IA-32e mode guest control.
        assert_eq!(
            check_guest_state(&plan, &caps, entry & !entry::IA32E_MODE_GUEST),
            Err("IA32_EFER.LMA must equal the IA-32e mode guest control")
        );
    }
}
