//! What a partition sees when it executes `CPUID` (which always exits).
//!
//! The binary executes CPUID on the host with the guest's `eax`/`ecx` and passes the
//! result through [`filter`], which hides what a partition must not use or cannot use
//! under RustHallows and announces the hypervisor:
//! - leaf 1: VMX and SMX cleared, the hypervisor-present bit (`ECX[31]`) set;
//! - leaf 7: RDT monitoring and allocation (`EBX[12]`, `EBX[15]`) cleared; leaves 0xF and 0x10
//!   (RDT details) read as zero: cache ways are the hypervisor's business;
//! - leaf 0xA (performance monitoring) reads as zero: the PMU is not virtualised;
//! - leaf 0x4000_0000 returns the maximum hypervisor leaf and the vendor "RustHallows\0";
//!   the other 0x4000_00xx leaves read as zero.
//!
//! ```
//! use hallows_core::cpuid::{filter, HYPERVISOR_LEAF};
//! let leaf1 = filter(1, 0, [0x906EA, 0, 0x7FFA_FBFF, 0xBFEB_FBFF]);
//! assert_eq!(leaf1[2] & (1 << 5), 0); // no VMX
//! assert_ne!(leaf1[2] & (1 << 31), 0); // hypervisor present
//! let vendor = filter(HYPERVISOR_LEAF, 0, [0; 4]);
//! assert_eq!(&vendor[1].to_le_bytes(), b"Rust");
//! ```

/// First leaf of the hypervisor range.
pub const HYPERVISOR_LEAF: u32 = 0x4000_0000;
/// The vendor signature in EBX, ECX, EDX of [`HYPERVISOR_LEAF`].
pub const VENDOR: &[u8; 12] = b"RustHallows\0";

const VMX: u32 = 1 << 5;
const SMX: u32 = 1 << 6;
const HYPERVISOR_PRESENT: u32 = 1 << 31;
const RDT_MONITORING: u32 = 1 << 12;
const RDT_ALLOCATION: u32 = 1 << 15;

/// The registers `[eax, ebx, ecx, edx]` the guest gets for `CPUID(leaf, subleaf)` given
/// the host's answer `host` (which already reflects the subleaf; every filtered leaf is
/// filtered the same way in all its subleaves).
pub fn filter(leaf: u32, _subleaf: u32, host: [u32; 4]) -> [u32; 4] {
    let [eax, ebx, ecx, edx] = host;
    let word = |i: usize| u32::from_le_bytes([VENDOR[i], VENDOR[i + 1], VENDOR[i + 2], VENDOR[i + 3]]);
    match leaf {
        1 => [eax, ebx, (ecx & !(VMX | SMX)) | HYPERVISOR_PRESENT, edx],
        7 => [eax, ebx & !(RDT_MONITORING | RDT_ALLOCATION), ecx, edx],
        0xA | 0xF | 0x10 => [0; 4],
        HYPERVISOR_LEAF => [HYPERVISOR_LEAF, word(0), word(4), word(8)],
        0x4000_0001..=0x4000_00FF => [0; 4],
        _ => host,
    }
}

const MONITOR: u32 = 1 << 3;
const PDCM: u32 = 1 << 15;
const PKU: u32 = 1 << 3;
const OSPKE: u32 = 1 << 4;
const WAITPKG: u32 = 1 << 5;

/// What an RT vCPU sees: [`filter`], then what follows from the RT policy:
/// - leaf 1: MONITOR/MWAIT cleared (they exit as forbidden instructions), PDCM cleared
///   (no MSR is readable), OSXSAVE mirrors the guest's own CR4.OSXSAVE (`guest_cr4`, the
///   read shadow; the host's CR4 would otherwise show through);
/// - leaf 7: PKU/OSPKE (CR4.PKE is refused) and WAITPKG (UMWAIT/TPAUSE are not enabled)
///   cleared;
/// - leaf 0xD: only the XSAVE components a partition may enable
///   ([`crate::xstate::XstatePolicy::cpuid_leaf_0xd`]).
pub fn rt_view(
    leaf: u32,
    subleaf: u32,
    host: [u32; 4],
    guest_cr4: u64,
    xstate: &crate::xstate::XstatePolicy,
) -> [u32; 4] {
    let [eax, ebx, ecx, edx] = filter(leaf, subleaf, host);
    match leaf {
        1 => [
            eax,
            ebx,
            crate::vcpu::modes::mirror_guest_cr4(1, subleaf, ecx & !(MONITOR | PDCM), guest_cr4),
            edx,
        ],
        7 => [eax, ebx, ecx & !(PKU | OSPKE | WAITPKG), edx],
        0xD => xstate.cpuid_leaf_0xd(subleaf, [eax, ebx, ecx, edx]),
        _ => [eax, ebx, ecx, edx],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CPUID.1:ECX.OSXSAVE.
    const OSXSAVE: u32 = 1 << 27;

    #[test]
    fn rt_view_follows_the_rt_policy() {
        let x = crate::xstate::XstatePolicy::from_cpuid(0x2FF, 0);
        let all = [u32::MAX; 4];
        let leaf1 = rt_view(1, 0, all, 0, &x);
        assert_eq!(leaf1[2] & (MONITOR | PDCM | OSXSAVE | VMX), 0);
        assert_ne!(leaf1[2] & HYPERVISOR_PRESENT, 0);
        let with_osxsave = rt_view(1, 0, [0; 4], crate::control_regs::cr4::OSXSAVE, &x);
        assert_eq!(with_osxsave[2] & OSXSAVE, OSXSAVE, "mirrors the guest's CR4");
        assert_eq!(rt_view(7, 0, all, 0, &x)[2] & (PKU | OSPKE | WAITPKG), 0);
        assert_eq!(rt_view(0xD, 0, [0x2FF, 1, 2, 0], 0, &x), [0xE7, 1, 2, 0]);
        assert_eq!(rt_view(0x8000_0001, 0, all, 0, &x), all);
    }

    #[test]
    fn leaves_are_filtered() {
        let all = [u32::MAX; 4];
        assert_eq!(filter(1, 0, all), [u32::MAX, u32::MAX, !(VMX | SMX), u32::MAX]);
        assert_eq!(filter(1, 0, [0; 4])[2], HYPERVISOR_PRESENT);
        assert_eq!(filter(7, 0, all)[1], !(RDT_MONITORING | RDT_ALLOCATION));
        assert_eq!(filter(7, 0, all)[2], u32::MAX);
        for leaf in [0xA, 0xF, 0x10, 0x4000_0001, 0x4000_00FF] {
            assert_eq!(filter(leaf, 1, all), [0; 4], "leaf {leaf:#x}");
        }
        assert_eq!(filter(0, 0, [0x16, 1, 2, 3]), [0x16, 1, 2, 3]);
        assert_eq!(filter(0x4000_0100, 0, all), all);
        let v = filter(HYPERVISOR_LEAF, 0, all);
        let mut sig = Vec::new();
        for r in &v[1..] {
            sig.extend_from_slice(&r.to_le_bytes());
        }
        assert_eq!(v[0], HYPERVISOR_LEAF);
        assert_eq!(&sig, VENDOR);
    }
}
