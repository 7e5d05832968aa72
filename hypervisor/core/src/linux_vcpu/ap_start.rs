//! INIT-SIPI-SIPI for the vCPUs of a Linux partition.
//!
//! Every vCPU but the boot vCPU starts in wait-for-SIPI. The guest's INIT and start-up
//! IPIs never reach the hardware: [`super::apic::decide_icr`] turns them into
//! [`super::apic::IcrDecision::Init`] / [`super::apic::IcrDecision::Sipi`], and the binary
//! feeds each target's [`ApStart`]:
//! - INIT: a running vCPU is reset to wait-for-SIPI ([`ApEffect::Park`]); a waiting one
//!   stays waiting.
//! - SIPI with vector V while waiting: start in real mode at CS = V << 8 (base V << 12),
//!   IP = 0 ([`ApEffect::Start`]; the VMCS writes are [`sipi_start_state`]). A SIPI to a
//!   running vCPU is ignored, which is what makes the second SIPI of the MP sequence
//!   harmless.
//!
//! # Recommendation: park the AP's core in the hypervisor
//! The hypervisor started every real core at boot (it owns the real INIT/SIPI). For an AP
//! of a Linux partition, keep its core in VMX root in a parking loop until the boot vCPU's
//! ICR write is seen, then write [`sipi_start_state`] into the AP's VMCS and VMLAUNCH:
//! 1. The BSP's core handles the ICR exit and posts "start at vector V" into the target
//!    vCPU's mailbox (one cache line, written with release ordering).
//! 2. The parked core polls its mailbox (`pause` loop; the core belongs to the partition,
//!    so spinning costs no other partition anything; MONITOR/MWAIT on the line if the
//!    hypervisor uses them), applies the [`ApStart`] transition and enters the guest.
//! 3. An INIT for a *running* vCPU (CPU offline/online in Linux) must interrupt that core:
//!    post it in the mailbox and send the core an NMI (NMI exiting is on for Linux
//!    vCPUs); the NMI exit sees the mailbox, parks the vCPU and returns to step 2.
//!
//! The alternative, entering each AP with the VMCS activity state wait-for-SIPI (3) and
//! forwarding a real INIT and SIPI to its core (exit reason 3 on INIT, 4 on SIPI with the
//! vector in the qualification), needs IA32_VMX_MISC bit 8, makes the hypervisor send real
//! INIT/SIPI at guest request (a real INIT to a core in VMX non-root only exits, but a
//! mistake would reset a core of another partition), and depends on the least-tested
//! corner of the emulator. Parking keeps every real INIT/SIPI in the hypervisor's own
//! boot code and costs nothing at run time.
//!
//! ```
//! use hallows_core::linux_vcpu::ap_start::{ApEffect, ApStart};
//! let mut ap = ApStart::application_processor();
//! assert_eq!(ap.on_init(), ApEffect::Nothing);
//! assert_eq!(ap.on_sipi(0x9A), ApEffect::Start { vector: 0x9A });
//! assert_eq!(ap.on_sipi(0x9A), ApEffect::Nothing); // the second SIPI
//! assert_eq!(ap.on_init(), ApEffect::Park);
//! ```

use crate::vmx::caps::{entry, VmxCapabilities};
use crate::vmx::guest_state::{cr0, GuestStatePlan, DEFAULT_PAT};
use crate::vmx::vmcs::{control, guest};
use core::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use legacy_linux::setup::EntryState;

/// Where a vCPU is in the start-up protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApState {
    /// Parked; a SIPI starts it.
    WaitForSipi,
    /// Running guest code.
    Running,
}

/// What the binary does after a transition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApEffect {
    Nothing,
    /// Stop the running vCPU (leave the guest) and park its core.
    Park,
    /// Write [`sipi_start_state`] for `vector` and enter the guest.
    Start {
        vector: u8,
    },
}

/// The INIT-SIPI-SIPI state machine of one vCPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApStart {
    state: ApState,
}

impl ApStart {
    /// The boot vCPU: running from the first entry.
    pub const fn boot_processor() -> Self {
        ApStart { state: ApState::Running }
    }

    /// Any other vCPU: waiting for a SIPI.
    pub const fn application_processor() -> Self {
        ApStart { state: ApState::WaitForSipi }
    }

    pub const fn state(&self) -> ApState {
        self.state
    }

    /// An INIT arrived.
    pub fn on_init(&mut self) -> ApEffect {
        let was = self.state;
        self.state = ApState::WaitForSipi;
        match was {
            ApState::Running => ApEffect::Park,
            ApState::WaitForSipi => ApEffect::Nothing,
        }
    }

    /// A start-up IPI with `vector` arrived.
    pub fn on_sipi(&mut self, vector: u8) -> ApEffect {
        match self.state {
            ApState::WaitForSipi => {
                self.state = ApState::Running;
                ApEffect::Start { vector }
            }
            ApState::Running => ApEffect::Nothing,
        }
    }
}

/// Real-mode access rights: code, execute/read, accessed, present (S = 1, DPL 0).
pub const REAL_CODE_ACCESS: u64 = 0x9B;
/// Real-mode access rights: data, read/write, accessed, present.
pub const REAL_DATA_ACCESS: u64 = 0x93;
/// LDTR after reset: present LDT.
pub const RESET_LDTR_ACCESS: u64 = 0x82;
/// TR after reset: present busy 32-bit TSS (16-bit busy TSS is also allowed).
pub const RESET_TR_ACCESS: u64 = 0x8B;
/// CR0 after INIT: CD, NW, ET (SDM 9.1.1).
pub const RESET_CR0: u64 = 0x6000_0010;

/// The CR0 bits that unrestricted guest lets the guest clear although FIXED0 has them.
const UNRESTRICTED_FREE: u64 = cr0::PE | cr0::PG;

/// The CR0 and CR4 guest/host masks of a Linux vCPU (any vCPU, any mode): the VMX-fixed
/// bits, except CR0.PE and CR0.PG, which unrestricted guest leaves to the guest. The boot
/// vCPU uses them too, with its entry CR0/CR4 (as the guest sees them) in the read
/// shadows and the same values with the fixed bits applied in the guest registers.
///
/// CR0.CD and CR0.NW are owned too: Linux may believe its caches are off (it sets CD
/// around MTRR changes, and a vCPU leaves INIT with CD|NW set), but the core never runs
/// uncached, which would slow the shared LLC and memory for every partition
/// (docs/isolation.md).
pub fn linux_cr_masks(caps: &VmxCapabilities) -> (u64, u64) {
    (
        (caps.cr0_fixed0 & !UNRESTRICTED_FREE) | !caps.cr0_fixed1 | CR0_CACHE_CONTROL,
        caps.cr4_fixed0 | !caps.cr4_fixed1,
    )
}

/// CR0.NW and CR0.CD: the guest's view only, never the real register.
pub const CR0_CACHE_CONTROL: u64 = crate::control_regs::cr0::NW | crate::control_regs::cr0::CD;

/// The VMCS writes that start a vCPU after SIPI `vector` (SDM 9.1.1, state after INIT,
/// with CS:IP = V<<8:0): real mode (needs the unrestricted-guest control), all segments
/// 64 KiB at base 0 except CS (base V << 12), flat GDTR/IDTR limit 0xFFFF, RFLAGS = 2,
/// EFER = 0, DR7 = 0x400, active, not blocked. `entry_controls` is the vCPU's VM-entry
/// control value; the plan writes it back with IA-32e mode guest cleared. The
/// general-purpose registers are the binary's: zero them (EDX may hold the CPUID family
/// signature as after a real INIT; Linux's trampoline does not read it).
///
/// CR0 and CR4 follow the same scheme as [`crate::vmx::guest_state`]: the VMX-fixed bits are
/// forced on in the real register and hidden behind the read shadow, with those bits in
/// the guest/host mask, except PE and PG, which unrestricted guest lets the guest own (so
/// entering protected and long mode causes no exit). The guest's later writes to masked
/// bits (NE, CR4.VMXE) exit as control-register accesses, see [`super::exits`].
pub fn sipi_start_state(caps: &VmxCapabilities, entry_controls: u32, vector: u8) -> GuestStatePlan {
    let mut p = GuestStatePlan::default();
    let cs = (vector as u64) << 8;
    let cr0_forced = caps.cr0_fixed0 & !UNRESTRICTED_FREE;
    p.set(guest::CR0, (RESET_CR0 | cr0_forced) & caps.cr0_fixed1 & !CR0_CACHE_CONTROL);
    p.set(control::CR0_READ_SHADOW, RESET_CR0);
    let (cr0_mask, cr4_mask) = linux_cr_masks(caps);
    p.set(control::CR0_GUEST_HOST_MASK, cr0_mask);
    p.set(guest::CR3, 0);
    p.set(guest::CR4, caps.fix_cr4(0));
    p.set(control::CR4_READ_SHADOW, 0);
    p.set(control::CR4_GUEST_HOST_MASK, cr4_mask);
    p.set(guest::IA32_EFER, 0);
    p.set(control::ENTRY_CONTROLS, (entry_controls & !entry::IA32E_MODE_GUEST) as u64);
    if caps.has_pat_field() {
        p.set(guest::IA32_PAT, DEFAULT_PAT);
    }
    p.set(guest::IA32_DEBUGCTL, 0);
    p.set(guest::DR7, 0x400);
    p.set(guest::RIP, 0);
    p.set(guest::RSP, 0);
    p.set(guest::RFLAGS, 0x2);
    let segments = [
        (guest::CS_SELECTOR, guest::CS_BASE, guest::CS_LIMIT, guest::CS_ACCESS_RIGHTS, cs, REAL_CODE_ACCESS),
        (guest::SS_SELECTOR, guest::SS_BASE, guest::SS_LIMIT, guest::SS_ACCESS_RIGHTS, 0, REAL_DATA_ACCESS),
        (guest::DS_SELECTOR, guest::DS_BASE, guest::DS_LIMIT, guest::DS_ACCESS_RIGHTS, 0, REAL_DATA_ACCESS),
        (guest::ES_SELECTOR, guest::ES_BASE, guest::ES_LIMIT, guest::ES_ACCESS_RIGHTS, 0, REAL_DATA_ACCESS),
        (guest::FS_SELECTOR, guest::FS_BASE, guest::FS_LIMIT, guest::FS_ACCESS_RIGHTS, 0, REAL_DATA_ACCESS),
        (guest::GS_SELECTOR, guest::GS_BASE, guest::GS_LIMIT, guest::GS_ACCESS_RIGHTS, 0, REAL_DATA_ACCESS),
        (
            guest::LDTR_SELECTOR,
            guest::LDTR_BASE,
            guest::LDTR_LIMIT,
            guest::LDTR_ACCESS_RIGHTS,
            0,
            RESET_LDTR_ACCESS,
        ),
        (guest::TR_SELECTOR, guest::TR_BASE, guest::TR_LIMIT, guest::TR_ACCESS_RIGHTS, 0, RESET_TR_ACCESS),
    ];
    for (sel, base, limit, ar, selector, access) in segments {
        p.set(sel, selector);
        p.set(base, selector << 4);
        p.set(limit, 0xFFFF);
        p.set(ar, access);
    }
    p.set(guest::GDTR_BASE, 0);
    p.set(guest::GDTR_LIMIT, 0xFFFF);
    p.set(guest::IDTR_BASE, 0);
    p.set(guest::IDTR_LIMIT, 0xFFFF);
    p.set(guest::ACTIVITY_STATE, 0);
    p.set(guest::INTERRUPTIBILITY_STATE, 0);
    p.set(guest::PENDING_DEBUG_EXCEPTIONS, 0);
    p.set(guest::IA32_SYSENTER_CS, 0);
    p.set(guest::IA32_SYSENTER_ESP, 0);
    p.set(guest::IA32_SYSENTER_EIP, 0);
    p.set(guest::VMCS_LINK_POINTER, u64::MAX);
    p
}

/// The Linux boot vCPU's entry state: the reset-like state of a SIPI (`sipi_start_state`),
/// overridden by the boot plan's entry state `e` (legacy-linux: 64-bit protocol with paging
/// on, or 32-bit). IA-32e mode follows EFER.LMA; CR0/CR4 get the bits VMX forces while
/// their shadows show what the boot protocol asked for.
pub fn boot_entry_state(caps: &VmxCapabilities, entry_controls: u32, e: &EntryState) -> GuestStatePlan {
    let mut p = sipi_start_state(caps, entry_controls, 0);
    let cr0_forced = caps.cr0_fixed0 & !(cr0::PE | cr0::PG);
    let long_mode = e.efer & crate::control_regs::efer::LMA != 0;
    let entry_controls = if long_mode {
        entry_controls | entry::IA32E_MODE_GUEST
    } else {
        entry_controls & !entry::IA32E_MODE_GUEST
    };
    let writes = [
        (control::ENTRY_CONTROLS, entry_controls as u64),
        (guest::CR0, (e.cr0 | cr0_forced) & caps.cr0_fixed1),
        (control::CR0_READ_SHADOW, e.cr0),
        (guest::CR3, e.cr3),
        (guest::CR4, caps.fix_cr4(e.cr4)),
        (control::CR4_READ_SHADOW, e.cr4),
        (guest::IA32_EFER, e.efer),
        (guest::RIP, e.rip),
        (guest::RSP, e.rsp),
        (guest::RFLAGS, e.rflags | 2),
        (guest::GDTR_BASE, e.gdtr_base),
        (guest::GDTR_LIMIT, e.gdtr_limit as u64),
        (guest::IDTR_BASE, e.idtr_base),
        (guest::IDTR_LIMIT, e.idtr_limit as u64),
    ];
    for (field, value) in writes {
        p.set(field, value);
    }
    let segments = [
        (guest::CS_SELECTOR, guest::CS_BASE, guest::CS_LIMIT, guest::CS_ACCESS_RIGHTS, e.cs),
        (guest::SS_SELECTOR, guest::SS_BASE, guest::SS_LIMIT, guest::SS_ACCESS_RIGHTS, e.data),
        (guest::DS_SELECTOR, guest::DS_BASE, guest::DS_LIMIT, guest::DS_ACCESS_RIGHTS, e.data),
        (guest::ES_SELECTOR, guest::ES_BASE, guest::ES_LIMIT, guest::ES_ACCESS_RIGHTS, e.data),
        (guest::FS_SELECTOR, guest::FS_BASE, guest::FS_LIMIT, guest::FS_ACCESS_RIGHTS, e.data),
        (guest::GS_SELECTOR, guest::GS_BASE, guest::GS_LIMIT, guest::GS_ACCESS_RIGHTS, e.data),
        (guest::TR_SELECTOR, guest::TR_BASE, guest::TR_LIMIT, guest::TR_ACCESS_RIGHTS, e.tr),
        (guest::LDTR_SELECTOR, guest::LDTR_BASE, guest::LDTR_LIMIT, guest::LDTR_ACCESS_RIGHTS, e.ldtr),
    ];
    for (selector, base, limit, access, s) in segments {
        p.set(selector, s.selector as u64);
        p.set(base, s.base);
        p.set(limit, s.limit as u64);
        p.set(access, s.access_rights as u64);
    }
    p
}

/// A parked vCPU's start-up mailbox, the recommendation above as it runs: the boot
/// vCPU's core posts the guest's INIT and start-up IPIs, the parked vCPU's core polls it.
/// A start-up IPI counts only after an INIT, as on hardware.
#[derive(Debug, Default)]
pub struct Mailbox {
    /// An INIT was posted.
    init: AtomicBool,
    /// `0x100 | vector` once a start-up IPI was posted, else 0.
    sipi: AtomicU32,
}

impl Mailbox {
    pub fn post_init(&self) {
        self.init.store(true, Ordering::SeqCst);
    }

    /// A start-up IPI with `vector`: kept only when an INIT came first.
    pub fn post_sipi(&self, vector: u8) {
        if self.init.load(Ordering::SeqCst) {
            self.sipi.store(0x100 | vector as u32, Ordering::SeqCst);
        }
    }

    /// The vector of a start-up IPI posted since the last look; taking it consumes the
    /// INIT too.
    pub fn take_sipi(&self) -> Option<u8> {
        let sipi = self.sipi.swap(0, Ordering::SeqCst);
        if sipi == 0 {
            return None;
        }
        self.init.store(false, Ordering::SeqCst);
        Some(sipi as u8)
    }

    /// Forgets any INIT or start-up IPI posted: the partition restarts, and what the old
    /// kernel posted must not start a vCPU of the new one.
    pub fn clear(&self) {
        self.sipi.store(0, Ordering::SeqCst);
        self.init.store(false, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmx::caps::bochs_skylake_msr;
    use crate::vmx::guest_state::cr4;

    #[test]
    fn cleared_mailbox_starts_nothing() {
        let mb = Mailbox::default();
        mb.post_init();
        mb.post_sipi(0x9A);
        mb.clear();
        assert_eq!(mb.take_sipi(), None);
        mb.post_sipi(0x9A);
        assert_eq!(mb.take_sipi(), None, "the INIT before the restart does not count");
    }

    #[test]
    fn init_sipi_sipi() {
        let mut ap = ApStart::application_processor();
        assert_eq!(ap.state(), ApState::WaitForSipi);
        assert_eq!(ap.on_init(), ApEffect::Nothing, "INIT assert to a parked AP");
        assert_eq!(ap.on_sipi(0x9A), ApEffect::Start { vector: 0x9A });
        assert_eq!(ap.state(), ApState::Running);
        assert_eq!(ap.on_sipi(0x9A), ApEffect::Nothing, "second SIPI ignored");
        assert_eq!(ap.on_sipi(0x10), ApEffect::Nothing);
        assert_eq!(ap.on_init(), ApEffect::Park, "INIT resets a running vCPU");
        assert_eq!(ap.state(), ApState::WaitForSipi);
        assert_eq!(ap.on_sipi(0x10), ApEffect::Start { vector: 0x10 }, "restartable");
        let mut bsp = ApStart::boot_processor();
        assert_eq!(bsp.on_sipi(0x9A), ApEffect::Nothing);
        assert_eq!(bsp.on_init(), ApEffect::Park);
    }

    /// The real-mode guest-state rules (SDM 27.3.1) that apply with unrestricted guest.
    fn check_real_mode(p: &GuestStatePlan, caps: &VmxCapabilities) -> Result<(), &'static str> {
        let v = |f| p.get(f).ok_or("field missing");
        let cr0v = v(guest::CR0)?;
        let free = cr0::PE | cr0::PG;
        if cr0v & (caps.cr0_fixed0 & !free) != caps.cr0_fixed0 & !free {
            return Err("CR0 fixed-0 bits (other than PE/PG) must be set");
        }
        if cr0v & !caps.cr0_fixed1 != 0 {
            return Err("CR0 fixed-1 zero bits must be clear");
        }
        let cr4v = v(guest::CR4)?;
        if cr4v & caps.cr4_fixed0 != caps.cr4_fixed0 || cr4v & !caps.cr4_fixed1 != 0 {
            return Err("CR4 fixed bits");
        }
        if v(guest::IA32_EFER)? & (1 << 10) != 0
            || v(control::ENTRY_CONTROLS)? & entry::IA32E_MODE_GUEST as u64 != 0
        {
            return Err("real mode needs LMA = 0 and no IA-32e mode guest");
        }
        if v(guest::SS_ACCESS_RIGHTS)? >> 5 & 3 != 0 {
            return Err("SS.DPL must be 0 with CR0.PE = 0");
        }
        let cs_type = v(guest::CS_ACCESS_RIGHTS)? & 0xF;
        if !matches!(cs_type, 3 | 9 | 11 | 13 | 15) {
            return Err("CS type");
        }
        for f in [guest::CS_LIMIT, guest::SS_LIMIT, guest::DS_LIMIT] {
            if v(f)? > 0xFFFF {
                return Err("16-bit limits");
            }
        }
        if v(guest::TR_ACCESS_RIGHTS)? & 0xF != 11 && v(guest::TR_ACCESS_RIGHTS)? & 0xF != 3 {
            return Err("TR must be a busy TSS");
        }
        if v(guest::RFLAGS)? & 2 == 0 || v(guest::VMCS_LINK_POINTER)? != u64::MAX {
            return Err("RFLAGS bit 1 / link pointer");
        }
        Ok(())
    }

    #[test]
    fn sipi_state_is_the_sdm_reset_state_at_the_vector() {
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        let entry_controls = entry::IA32E_MODE_GUEST | entry::LOAD_EFER | 0x11FB;
        let p = sipi_start_state(&caps, entry_controls, 0x9A);
        assert_eq!(check_real_mode(&p, &caps), Ok(()));
        assert_eq!(p.get(guest::CS_SELECTOR), Some(0x9A00));
        assert_eq!(p.get(guest::CS_BASE), Some(0x9_A000));
        assert_eq!(p.get(guest::RIP), Some(0));
        assert_eq!(p.get(guest::DS_BASE), Some(0));
        assert_eq!(p.get(guest::GDTR_LIMIT), Some(0xFFFF));
        let cr0v = p.get(guest::CR0).unwrap();
        assert_eq!(cr0v & (cr0::PE | cr0::PG), 0, "real mode, paging off");
        assert_eq!(cr0v & cr0::NE, cr0::NE, "NE forced by VMX");
        assert_eq!(cr0v & RESET_CR0, RESET_CR0 & !CR0_CACHE_CONTROL, "ET; never CD/NW for real");
        assert_eq!(cr0v & CR0_CACHE_CONTROL, 0);
        assert_eq!(p.get(control::CR0_READ_SHADOW), Some(RESET_CR0), "guest reads the reset value");
        let mask = p.get(control::CR0_GUEST_HOST_MASK).unwrap();
        assert_eq!(mask & (cr0::PE | cr0::PG), 0, "PE/PG are the guest's");
        assert_eq!(mask & cr0::NE, cr0::NE);
        assert_eq!(mask & CR0_CACHE_CONTROL, CR0_CACHE_CONTROL, "CD/NW are the hypervisor's");
        assert_eq!((mask, p.get(control::CR4_GUEST_HOST_MASK).unwrap()), linux_cr_masks(&caps));
        assert_eq!(p.get(guest::CR4).unwrap() & cr4::VMXE, cr4::VMXE);
        assert_eq!(p.get(control::CR4_READ_SHADOW), Some(0));
        assert_eq!(p.get(control::ENTRY_CONTROLS), Some((entry_controls & !entry::IA32E_MODE_GUEST) as u64));
        assert_eq!(p.get(guest::IA32_PAT), Some(DEFAULT_PAT));
        // Each field once.
        let mut fields: Vec<u32> = p.writes().iter().map(|w| w.field).collect();
        fields.sort();
        fields.dedup();
        assert_eq!(fields.len(), p.writes().len());
        // Vector 0 and 0xFF.
        assert_eq!(sipi_start_state(&caps, entry_controls, 0xFF).get(guest::CS_BASE), Some(0xF_F000));
        assert_eq!(sipi_start_state(&caps, entry_controls, 0).get(guest::CS_SELECTOR), Some(0));
    }

    #[test]
    fn checker_catches_a_long_mode_entry() {
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        let mut p = sipi_start_state(&caps, entry::IA32E_MODE_GUEST, 1);
        p.set(control::ENTRY_CONTROLS, entry::IA32E_MODE_GUEST as u64);
        assert!(check_real_mode(&p, &caps).is_err());
        let mut p = sipi_start_state(&caps, 0, 1);
        p.set(guest::SS_ACCESS_RIGHTS, REAL_DATA_ACCESS | 3 << 5);
        assert_eq!(check_real_mode(&p, &caps), Err("SS.DPL must be 0 with CR0.PE = 0"));
    }

    #[test]
    fn the_boot_vcpu_enters_in_the_boot_plans_state() {
        use legacy_linux::setup::{BootProtocol, Segment};
        let caps = VmxCapabilities::from_msrs(bochs_skylake_msr);
        let flat = |selector, access_rights| Segment { selector, base: 0, limit: 0xFFFF_FFFF, access_rights };
        let e = EntryState {
            protocol: BootProtocol::Linux64,
            rip: 0x100_0000,
            rsp: 0x9_0000,
            rsi: 0x7000,
            rbx: 0,
            rflags: 2,
            cr0: 0x8000_0031,
            cr3: 0x9000,
            cr4: cr4::PAE,
            efer: crate::control_regs::efer::LME | crate::control_regs::efer::LMA,
            cs: flat(0x10, 0xA09B),
            data: flat(0x18, 0xC093),
            tr: Segment { selector: 0, base: 0, limit: 0x67, access_rights: 0x8B },
            ldtr: Segment { selector: 0, base: 0, limit: 0, access_rights: 1 << 16 },
            gdtr_base: 0x1000,
            gdtr_limit: 0x27,
            idtr_base: 0,
            idtr_limit: 0,
        };
        let plan = boot_entry_state(&caps, entry::IA32E_MODE_GUEST | 0x11FF, &e);
        // Long mode: IA-32e entry; the shadows show the protocol's values, the real CR4
        // carries VMXE.
        assert_ne!(plan.get(control::ENTRY_CONTROLS).unwrap() as u32 & entry::IA32E_MODE_GUEST, 0);
        assert_eq!(plan.get(control::CR0_READ_SHADOW), Some(0x8000_0031));
        assert_eq!(plan.get(control::CR4_READ_SHADOW), Some(cr4::PAE));
        assert_ne!(plan.get(guest::CR4).unwrap() & cr4::VMXE, 0);
        assert_eq!(plan.get(guest::RIP), Some(0x100_0000));
        assert_eq!(plan.get(guest::CS_SELECTOR), Some(0x10));
        assert_eq!(plan.get(guest::SS_ACCESS_RIGHTS), Some(0xC093));
        assert_eq!(plan.get(guest::LDTR_ACCESS_RIGHTS), Some(1 << 16));
        // What the SIPI state sets and the boot plan does not say stays (debug state).
        assert_eq!(plan.get(guest::DR7), Some(0x400));
        // A 32-bit entry leaves IA-32e mode off.
        let protected = EntryState { efer: 0, cr0: 0x11, cr4: 0, ..e };
        let plan = boot_entry_state(&caps, entry::IA32E_MODE_GUEST | 0x11FF, &protected);
        assert_eq!(plan.get(control::ENTRY_CONTROLS).unwrap() as u32 & entry::IA32E_MODE_GUEST, 0);
    }

    #[test]
    fn a_mailbox_starts_a_vcpu_only_after_init() {
        let mb = Mailbox::default();
        mb.post_sipi(0x9a);
        assert_eq!(mb.take_sipi(), None, "a SIPI without INIT is lost");
        mb.post_init();
        assert_eq!(mb.take_sipi(), None);
        mb.post_sipi(0x9a);
        mb.post_sipi(0x9b);
        assert_eq!(mb.take_sipi(), Some(0x9b), "the latest vector");
        assert_eq!(mb.take_sipi(), None);
        mb.post_sipi(0x9c);
        assert_eq!(mb.take_sipi(), None, "the INIT was consumed");
        mb.post_init();
        mb.post_sipi(0);
        assert_eq!(mb.take_sipi(), Some(0), "vector 0 is a vector");
    }
}
