//! Finds the usable processors in the ACPI MADT, starting from the RSDP the firmware
//! publishes. Only reads firmware tables (identity-mapped while UEFI runs).

use alloc::vec::Vec;

/// Reads `len` bytes of physical memory as a slice.
///
/// # Safety
/// `[addr, addr+len)` must be mapped and hold firmware data that is not being modified.
unsafe fn phys_slice<'a>(addr: u64, len: usize) -> &'a [u8] {
    // SAFETY: the caller guarantees the range is mapped and stable.
    unsafe { core::slice::from_raw_parts(addr as *const u8, len) }
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// A whole ACPI table (header + body) at `addr`, if its length is sane.
///
/// # Safety
/// `addr` must point to an ACPI table the firmware published.
unsafe fn sdt<'a>(addr: u64) -> Option<&'a [u8]> {
    // SAFETY: the header is 36 bytes of firmware memory.
    let header = unsafe { phys_slice(addr, 36) };
    let len = u32_at(header, 4)? as usize;
    if !(36..=1 << 20).contains(&len) {
        return None;
    }
    // SAFETY: the table spans `len` bytes of firmware memory.
    Some(unsafe { phys_slice(addr, len) })
}

/// The local APIC ids of every enabled (or online-capable) processor, in MADT order
/// (the first is the boot processor on every firmware we know).
///
/// # Safety
/// `rsdp` must be the RSDP address from the UEFI configuration table.
pub unsafe fn processor_apic_ids(rsdp: u64) -> Result<Vec<u32>, &'static str> {
    // SAFETY: the RSDP (ACPI 2.0+) is 36 bytes.
    let r = unsafe { phys_slice(rsdp, 36) };
    if &r[..8] != b"RSD PTR " {
        return Err("RSDP signature is wrong");
    }
    let (root, entry_size) =
        if r[15] >= 2 { (u64_at(r, 24).ok_or("RSDP")?, 8) } else { (u32_at(r, 16).ok_or("RSDP")? as u64, 4) };
    // SAFETY: the root table comes from the RSDP.
    let root = unsafe { sdt(root) }.ok_or("root ACPI table is malformed")?;
    let madt = (36..root.len())
        .step_by(entry_size)
        .filter_map(|at| if entry_size == 8 { u64_at(root, at) } else { u32_at(root, at).map(u64::from) })
        // SAFETY: every root entry points to an ACPI table.
        .filter_map(|addr| unsafe { sdt(addr) })
        .find(|t| &t[..4] == b"APIC")
        .ok_or("no MADT (APIC) table")?;
    let mut ids = Vec::new();
    let mut at = 44;
    while at + 2 <= madt.len() {
        let (kind, len) = (madt[at], madt[at + 1] as usize);
        if len < 2 || at + len > madt.len() {
            break;
        }
        let e = &madt[at..at + len];
        match kind {
            // Processor local APIC: id at 3, flags at 4 (bit 0 enabled, bit 1 online capable).
            0 if len >= 8 && u32_at(e, 4).unwrap_or(0) & 3 != 0 => ids.push(e[3] as u32),
            // Processor local x2APIC: id at 4, flags at 8.
            9 if len >= 16 && u32_at(e, 8).unwrap_or(0) & 3 != 0 => ids.push(u32_at(e, 4).unwrap_or(0)),
            _ => {}
        }
        at += len;
    }
    if ids.is_empty() {
        return Err("the MADT lists no usable processor");
    }
    Ok(ids)
}
