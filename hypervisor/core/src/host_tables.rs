//! The hypervisor's own execution environment after ExitBootServices, as data: the
//! descriptors of each core's GDT (flat code and data, a TSS without I/O bitmap), the
//! interrupt gates of the IDT, and the identity page tables' entries. The binary
//! allocates the memory, writes these values and loads the registers.

/// Code segment selector of the hypervisor.
pub const CODE_SELECTOR: u16 = 0x08;
/// Data segment selector of the hypervisor.
pub const DATA_SELECTOR: u16 = 0x10;
/// Task-state segment selector (each core has its own GDT, so the same selector).
pub const TSS_SELECTOR: u16 = 0x18;

/// Bytes of a 64-bit TSS.
pub const TSS_BYTES: usize = 104;
/// Entries of a GDT: null, code, data, and the 16-byte TSS descriptor.
pub const GDT_ENTRIES: usize = 5;
/// Exception vectors the IDT covers.
pub const EXCEPTION_VECTORS: usize = 32;

/// 64-bit code segment, DPL 0.
const CODE_DESCRIPTOR: u64 = 0x00af_9b00_0000_ffff;
/// Data segment, DPL 0.
const DATA_DESCRIPTOR: u64 = 0x00cf_9300_0000_ffff;
/// Available 64-bit TSS, present.
const TSS_TYPE_PRESENT: u64 = 0x89;
/// Present, DPL 0, 64-bit interrupt gate.
const INTERRUPT_GATE: u64 = 0x8e;
/// Page-table entry bits: present and writable; with a large page (1 GiB or 2 MiB).
const PRESENT_WRITABLE: u64 = 0x3;
const LARGE_PAGE: u64 = 0x80;

/// A core's GDT for its TSS at `tss_base`.
pub const fn gdt(tss_base: u64) -> [u64; GDT_ENTRIES] {
    let limit = (TSS_BYTES - 1) as u64;
    let tss_low =
        limit | (tss_base & 0xff_ffff) << 16 | TSS_TYPE_PRESENT << 40 | ((tss_base >> 24) & 0xff) << 56;
    [0, CODE_DESCRIPTOR, DATA_DESCRIPTOR, tss_low, tss_base >> 32]
}

/// A TSS whose I/O map base lies beyond its limit: no I/O permission bitmap.
pub const fn tss() -> [u8; TSS_BYTES] {
    let mut t = [0u8; TSS_BYTES];
    let base = (TSS_BYTES as u16).to_le_bytes();
    t[102] = base[0];
    t[103] = base[1];
    t
}

/// The IDT gate of a handler at `handler` in the hypervisor's code segment.
pub const fn interrupt_gate(handler: u64) -> [u64; 2] {
    let low = (handler & 0xffff)
        | (CODE_SELECTOR as u64) << 16
        | INTERRUPT_GATE << 40
        | ((handler >> 16) & 0xffff) << 48;
    [low, handler >> 32]
}

/// Whether the CPU pushes an error code for exception `vector`.
pub const fn has_error_code(vector: u64) -> bool {
    matches!(vector, 8 | 10..=14 | 17 | 21 | 29 | 30)
}

/// An entry pointing to the next-level table at `table`.
pub const fn table_entry(table: u64) -> u64 {
    table | PRESENT_WRITABLE
}

/// Entry `i` of the identity PDPT with 1 GiB pages.
pub const fn identity_1g(i: u64) -> u64 {
    i << 30 | PRESENT_WRITABLE | LARGE_PAGE
}

/// Entry `j` of the identity page directory under PDPT entry `i`, with 2 MiB pages.
pub const fn identity_2m(i: u64, j: u64) -> u64 {
    i << 30 | j << 21 | PRESENT_WRITABLE | LARGE_PAGE
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gdt_holds_flat_segments_and_the_tss() {
        let g = gdt(0x1234_5678_9abc_def0);
        assert_eq!(g[0], 0);
        assert_eq!(g[CODE_SELECTOR as usize / 8], 0x00af_9b00_0000_ffff, "L bit, no D bit");
        assert_eq!(g[DATA_SELECTOR as usize / 8], 0x00cf_9300_0000_ffff);
        // Limit 103, base bits 0-23 at 16, type at 40, base 24-31 at 56, base 32-63 next.
        assert_eq!(g[3], 103 | 0xbc_def0 << 16 | 0x89 << 40 | 0x9a << 56);
        assert_eq!(g[4], 0x1234_5678);
        let t = tss();
        assert_eq!(u16::from_le_bytes([t[102], t[103]]), 104, "I/O map beyond the limit");
        assert!(t[..102].iter().all(|b| *b == 0));
    }

    #[test]
    fn gates_and_page_entries() {
        let [low, high] = interrupt_gate(0xffff_8000_1234_5678);
        assert_eq!(low & 0xffff, 0x5678);
        assert_eq!((low >> 16) & 0xffff, CODE_SELECTOR as u64);
        assert_eq!((low >> 40) & 0xff, 0x8e);
        assert_eq!(low >> 48, 0x1234);
        assert_eq!(high, 0xffff_8000);
        assert!(has_error_code(14) && has_error_code(8) && !has_error_code(3) && !has_error_code(2));
        assert_eq!(identity_1g(3), 0xC000_0083);
        assert_eq!(identity_2m(1, 2), 0x4040_0083);
        assert_eq!(table_entry(0x5000), 0x5003);
    }
}
