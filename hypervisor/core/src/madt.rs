//! The usable processors as the firmware's ACPI tables list them: the RSDP points to the
//! root table (RSDT or XSDT), whose entries point to the other tables, one of them the
//! MADT with one entry per processor. The binary reads the physical memory; everything
//! here reads bytes it is given, and nothing in them may make it panic.

use alloc::vec::Vec;

/// Bytes of an ACPI 2.0+ RSDP.
pub const RSDP_BYTES: usize = 36;
/// Bytes of the header every other ACPI table starts with.
pub const HEADER_BYTES: usize = 36;
/// The longest table believed: a longer length means a corrupt header.
const MAX_TABLE_BYTES: usize = 1 << 20;
/// Where the MADT's entries start (after the header, the local APIC address and flags).
const MADT_ENTRIES: usize = 44;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The whole length of the table whose header is `header`, if it is sane.
pub fn table_length(header: &[u8]) -> Option<usize> {
    let len = u32_at(header, 4)? as usize;
    (HEADER_BYTES..=MAX_TABLE_BYTES).contains(&len).then_some(len)
}

/// The local APIC ids of every enabled (or online-capable) processor, in MADT order
/// (the first is the boot processor on every firmware we know). `rsdp` is the RSDP's
/// bytes; `table_at` gives the whole table at a physical address (its length from
/// [`table_length`]), or `None`.
pub fn processor_apic_ids<'a>(
    rsdp: &[u8],
    mut table_at: impl FnMut(u64) -> Option<&'a [u8]>,
) -> Result<Vec<u32>, &'static str> {
    if rsdp.get(..8) != Some(b"RSD PTR ") {
        return Err("RSDP signature is wrong");
    }
    let revision = rsdp.get(15).copied().unwrap_or(0);
    let (root, entry_size) = if revision >= 2 {
        (u64_at(rsdp, 24).ok_or("RSDP")?, 8)
    } else {
        (u32_at(rsdp, 16).ok_or("RSDP")? as u64, 4)
    };
    let root = table_at(root).ok_or("root ACPI table is malformed")?;
    let madt = (HEADER_BYTES..root.len())
        .step_by(entry_size)
        .filter_map(|at| if entry_size == 8 { u64_at(root, at) } else { u32_at(root, at).map(u64::from) })
        .filter_map(&mut table_at)
        .find(|t| t.get(..4) == Some(b"APIC"))
        .ok_or("no MADT (APIC) table")?;
    let mut ids = Vec::new();
    let mut at = MADT_ENTRIES;
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

/// Moves the boot processor's id (`bsp`, from CPUID) to the front, where the boot flow
/// expects core 0; ids without it stay as they are.
pub fn boot_processor_first(ids: &mut [u32], bsp: u32) {
    if let Some(i) = ids.iter().position(|id| *id == bsp) {
        ids.swap(0, i);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A table with signature `sig` and `body` after the header, its length filled in.
    fn table(sig: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut t = Vec::from(*sig);
        t.extend_from_slice(&((HEADER_BYTES + body.len()) as u32).to_le_bytes());
        t.resize(HEADER_BYTES, 0);
        t.extend_from_slice(body);
        t
    }

    fn rsdp(revision: u8, root: u64) -> Vec<u8> {
        let mut r = vec![0u8; RSDP_BYTES];
        r[..8].copy_from_slice(b"RSD PTR ");
        r[15] = revision;
        r[16..20].copy_from_slice(&(root as u32).to_le_bytes());
        r[24..32].copy_from_slice(&root.to_le_bytes());
        r
    }

    /// A MADT with a local APIC (id 1, enabled), a disabled one (id 2), an x2APIC (id
    /// 0x100, online capable) and an I/O APIC entry that is not a processor.
    fn madt() -> Vec<u8> {
        let mut body = vec![0u8; MADT_ENTRIES - HEADER_BYTES];
        body.extend_from_slice(&[0, 8, 0, 1, 1, 0, 0, 0]);
        body.extend_from_slice(&[0, 8, 1, 2, 0, 0, 0, 0]);
        body.extend_from_slice(&[9, 16, 0, 0, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&[1, 12, 0, 0, 0, 0, 0xc0, 0xfe, 0, 0, 0, 0]);
        table(b"APIC", &body)
    }

    #[test]
    fn finds_the_processors_through_the_xsdt_and_the_rsdt() {
        let (facp, madt) = (table(b"FACP", &[0; 8]), madt());
        let xsdt = table(b"XSDT", &[0x2000u64.to_le_bytes(), 0x3000u64.to_le_bytes()].concat());
        let rsdt = table(b"RSDT", &[0x2000u32.to_le_bytes(), 0x3000u32.to_le_bytes()].concat());
        let memory = |addr: u64| -> Option<&[u8]> {
            match addr {
                0x1000 => Some(&xsdt),
                0x1800 => Some(&rsdt),
                0x2000 => Some(&facp),
                0x3000 => Some(&madt),
                _ => None,
            }
        };
        assert_eq!(processor_apic_ids(&rsdp(2, 0x1000), memory), Ok(vec![1, 0x100]));
        assert_eq!(processor_apic_ids(&rsdp(0, 0x1800), memory), Ok(vec![1, 0x100]));
    }

    #[test]
    fn refuses_what_is_missing_or_malformed() {
        let empty_madt = table(b"APIC", &[0; 8]);
        let xsdt = table(b"XSDT", &0x3000u64.to_le_bytes());
        let memory = |addr: u64| -> Option<&[u8]> {
            match addr {
                0x1000 => Some(&xsdt),
                0x3000 => Some(&empty_madt),
                _ => None,
            }
        };
        assert_eq!(processor_apic_ids(b"RSD PTX", memory), Err("RSDP signature is wrong"));
        assert_eq!(processor_apic_ids(&rsdp(2, 0x9000), memory), Err("root ACPI table is malformed"));
        assert_eq!(processor_apic_ids(&rsdp(2, 0x1000), memory), Err("the MADT lists no usable processor"));
        let no_madt = |addr: u64| (addr == 0x1000).then_some(&xsdt[..]);
        assert_eq!(processor_apic_ids(&rsdp(2, 0x1000), no_madt), Err("no MADT (APIC) table"));
        // An entry whose length runs past the table ends the walk.
        let mut cut = madt();
        let len = cut.len();
        cut[MADT_ENTRIES + 1] = 200;
        let memory =
            |addr: u64| (addr == 0x3000).then_some(&cut[..len]).or((addr == 0x1000).then_some(&xsdt[..]));
        assert_eq!(processor_apic_ids(&rsdp(2, 0x1000), memory), Err("the MADT lists no usable processor"));
    }

    #[test]
    fn lengths_and_the_boot_processor() {
        assert_eq!(table_length(&table(b"APIC", &[0; 10])), Some(46));
        assert_eq!(table_length(&[0; 8]), None, "a length below a header's");
        let mut huge = table(b"APIC", &[]);
        huge[4..8].copy_from_slice(&(2u32 << 20).to_le_bytes());
        assert_eq!(table_length(&huge), None);
        assert_eq!(table_length(&huge[..6]), None, "a cut header");
        let mut ids = [4, 6, 0, 2];
        boot_processor_first(&mut ids, 0);
        assert_eq!(ids, [0, 6, 4, 2]);
        boot_processor_first(&mut ids, 9);
        assert_eq!(ids, [0, 6, 4, 2]);
    }
}
