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

#[cfg(test)]
mod tests {
    use super::*;

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
