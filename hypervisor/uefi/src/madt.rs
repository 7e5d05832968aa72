//! Reads the firmware's ACPI tables (identity-mapped while UEFI runs) for
//! `hallows_core::madt`, which finds the usable processors in them.

use alloc::vec::Vec;

use hallows_core::madt::{table_length, HEADER_BYTES, RSDP_BYTES};

/// Reads `len` bytes of physical memory as a slice.
///
/// # Safety
/// `[addr, addr+len)` must be mapped and hold firmware data that is not being modified.
unsafe fn phys_slice<'a>(addr: u64, len: usize) -> &'a [u8] {
    // SAFETY: the caller guarantees the range is mapped and stable.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }
}

/// A whole ACPI table (header + body) at `addr`, if its length is sane.
///
/// # Safety
/// `addr` must point to an ACPI table the firmware published.
unsafe fn sdt<'a>(addr: u64) -> Option<&'a [u8]> {
    // SAFETY: the header is 36 bytes of firmware memory.
    let len = table_length(unsafe { phys_slice(addr, HEADER_BYTES) })?;
    // SAFETY: the table spans `len` bytes of firmware memory.
    Some(unsafe { phys_slice(addr, len) })
}

/// The local APIC ids of every enabled (or online-capable) processor, in MADT order.
///
/// # Safety
/// `rsdp` must be the RSDP address from the UEFI configuration table.
pub unsafe fn processor_apic_ids(rsdp: u64) -> Result<Vec<u32>, &'static str> {
    // SAFETY: the RSDP (ACPI 2.0+) is 36 bytes.
    let rsdp = unsafe { phys_slice(rsdp, RSDP_BYTES) };
    // SAFETY: every address asked for comes from the RSDP or the root table's entries,
    // which point to ACPI tables.
    hallows_core::madt::processor_apic_ids(rsdp, |addr| unsafe { sdt(addr) })
}
