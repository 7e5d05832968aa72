//! Synthesised ACPI tables: the only firmware description a Linux partition gets, so it
//! discovers exactly its own CPUs and nothing of the machine around it.
//!
//! Tables (all in the partition's own memory, contiguous from the base the caller picks):
//! RSDP (revision 2), XSDT and RSDT (both listing FADT and MADT), FADT, DSDT, MADT.
//!
//! Choices, and why:
//! - **CPUs.** The MADT lists one enabled processor per entry of
//!   [`AcpiConfig::apic_ids`], with ACPI processor UID = vCPU index (0..n-1) and the APIC
//!   id given. The hypervisor passes the *physical* APIC ids of the partition's cores:
//!   Linux then programs its real local APICs directly (timer, IPIs), and every ICR write
//!   names a real core, so the hypervisor's INIT/SIPI/IPI filter compares destinations
//!   against the partition's core set without translating. Ids of 255 and above are
//!   listed as x2APIC entries.
//! - **FADT: hardware-reduced ACPI** (flag HW_REDUCED_ACPI). There is no PM timer, no SCI,
//!   no PM1 event/control blocks, no 8259 (MADT PCAT_COMPAT clear), no i8042, no CMOS
//!   RTC and no VGA: Linux then skips the legacy PIC and PIT and never probes those
//!   ports. Power-off and reset go through the hardware-reduced sleep control register and
//!   the reset register, both placed at I/O ports the hypervisor traps ([`PowerPorts`]):
//!   a write with SLP_EN to the sleep control port is the partition powering itself off
//!   ([`decode_sleep_control`]); writing the reset value to the reset port is a reboot
//!   request. Neither ever reaches the machine.
//! - **DSDT** holds `\_S5_` (sleep type [`S5_SLEEP_TYPE`]), which Linux needs before
//!   it will use ACPI power-off, and one device: COM1 (`PNP0501` at 0x3F8), because a
//!   hardware-reduced platform has no implicit ISA devices or legacy IRQs; Linux's
//!   8250_pnp driver takes the port over from the legacy probe and uses the IRQ in its
//!   `_CRS` (only listed with an I/O APIC) or, without one, polls it from a timer.
//! - **IOAPIC** is listed only if [`AcpiConfig::ioapic`] is given, i.e. if the hypervisor
//!   virtualises one (or passes one through) for this partition; without it Linux has no
//!   legacy IRQs, and the virtual UART is driven by Linux's polling fallback.

/// I/O ports for the hardware-reduced sleep and reset registers, trapped by the
/// hypervisor. Defaults: [`PowerPorts::DEFAULT`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PowerPorts {
    /// Sleep control register (one byte): SLP_TYP in bits 2-4, SLP_EN is bit 5.
    pub sleep_control: u16,
    /// Sleep status register (one byte; reads 0).
    pub sleep_status: u16,
    /// Reset register (one byte).
    pub reset: u16,
    /// Value Linux writes to `reset` to reboot.
    pub reset_value: u8,
}

impl PowerPorts {
    /// Ports used unless the hypervisor chooses others: 0x600-0x602 (no legacy device
    /// lives there; every access traps).
    pub const DEFAULT: Self =
        Self { sleep_control: 0x600, sleep_status: 0x601, reset: 0x602, reset_value: 0x0E };
}

/// The SLP_TYP value the DSDT's `\_S5_` package gives for soft-off.
pub const S5_SLEEP_TYPE: u8 = 5;
/// Sleep control: the enable bit.
pub const SLP_EN: u8 = 1 << 5;

/// Decodes a byte the guest wrote to the sleep control port: `Some(sleep type)` if it
/// requests a sleep state (SLP_EN set). `Some(S5_SLEEP_TYPE)` means power off.
pub fn decode_sleep_control(value: u8) -> Option<u8> {
    (value & SLP_EN != 0).then_some((value >> 2) & 0x7)
}

/// An I/O APIC to list in the MADT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IoApic {
    /// I/O APIC id.
    pub id: u8,
    /// MMIO base (normally 0xFEC0_0000).
    pub address: u32,
    /// First global system interrupt it handles.
    pub gsi_base: u32,
}

/// What the tables describe.
#[derive(Debug, Clone, Copy)]
pub struct AcpiConfig<'a> {
    /// APIC id of each vCPU, vCPU 0 (the boot CPU) first.
    pub apic_ids: &'a [u32],
    /// The I/O APIC, if the partition has one.
    pub ioapic: Option<IoApic>,
    /// Trapped power-management ports.
    pub power: PowerPorts,
}

/// Where each table landed (guest-physical).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AcpiLayout {
    /// The RSDP (16-byte aligned): put it in `boot_params.acpi_rsdp_addr`.
    pub rsdp: u64,
    /// The XSDT.
    pub xsdt: u64,
    /// The RSDT.
    pub rsdt: u64,
    /// The FADT.
    pub fadt: u64,
    /// The DSDT.
    pub dsdt: u64,
    /// The MADT.
    pub madt: u64,
    /// One past the last byte used.
    pub end: u64,
}

/// Why the tables could not be built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcpiError {
    /// No CPUs.
    NoCpus,
    /// The buffer is smaller than [`tables_size`].
    BufferTooSmall,
    /// The tables would lie above 4 GiB (the RSDT holds 32-bit pointers).
    AddressTooHigh,
    /// More CPUs than a MADT length can describe.
    TooManyCpus,
}

const HEADER_LEN: usize = 36;
const RSDP_LEN: usize = 36;
const FADT_LEN: usize = 276;
const MADT_FIXED_LEN: usize = HEADER_LEN + 8;
const LAPIC_ENTRY_LEN: usize = 8;
const X2APIC_ENTRY_LEN: usize = 16;
const IOAPIC_ENTRY_LEN: usize = 12;
const LAPIC_NMI_ENTRY_LEN: usize = 6;
/// `Name (_S5_, Package (4) { 5, 5, 0, 0 })` in AML.
const S5_AML: [u8; 14] = [0x08, b'_', b'S', b'5', b'_', 0x12, 0x08, 0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00, 0x00];
/// COM1, the partition's virtual 16550 (I/O base and ISA IRQ).
pub const COM1_PORT: u16 = 0x3F8;
/// COM1's ISA IRQ, listed in its `_CRS` only when an I/O APIC is present.
pub const COM1_IRQ: u8 = 4;
const OEM_ID: [u8; 6] = *b"RHALLW";
const OEM_TABLE_ID: [u8; 8] = *b"HALLOWS ";
const CREATOR_ID: [u8; 4] = *b"RHHV";
/// Local APIC MMIO base announced in the MADT.
pub const LOCAL_APIC_ADDRESS: u32 = 0xFEE0_0000;

// FADT flags.
const FADT_WBINVD: u32 = 1 << 0;
const FADT_RESET_REG_SUP: u32 = 1 << 10;
const FADT_HW_REDUCED_ACPI: u32 = 1 << 20;
// IAPC_BOOT_ARCH: no VGA, no CMOS RTC (LEGACY_DEVICES and 8042 bits left clear).
const BOOT_ARCH_VGA_NOT_PRESENT: u16 = 1 << 2;
const BOOT_ARCH_CMOS_RTC_NOT_PRESENT: u16 = 1 << 5;

fn align16(n: usize) -> usize {
    (n + 15) & !15
}

fn madt_len(config: &AcpiConfig<'_>) -> usize {
    let cpus: usize =
        config.apic_ids.iter().map(|&id| if id < 255 { LAPIC_ENTRY_LEN } else { X2APIC_ENTRY_LEN }).sum();
    MADT_FIXED_LEN + cpus + LAPIC_NMI_ENTRY_LEN + if config.ioapic.is_some() { IOAPIC_ENTRY_LEN } else { 0 }
}

struct Offsets {
    xsdt: usize,
    rsdt: usize,
    fadt: usize,
    dsdt: usize,
    madt: usize,
    end: usize,
}

fn offsets(config: &AcpiConfig<'_>) -> Offsets {
    let xsdt = align16(RSDP_LEN);
    let rsdt = align16(xsdt + HEADER_LEN + 2 * 8);
    let fadt = align16(rsdt + HEADER_LEN + 2 * 4);
    let dsdt = align16(fadt + FADT_LEN);
    let madt = align16(dsdt + HEADER_LEN + dsdt_aml(config).len());
    let end = madt + madt_len(config);
    Offsets { xsdt, rsdt, fadt, dsdt, madt, end }
}

/// Bytes [`build`] needs for `config`.
pub fn tables_size(config: &AcpiConfig<'_>) -> usize {
    offsets(config).end
}

/// Writes the tables into `buf`, which the guest will see at `base_gpa` (16-byte aligned
/// for the RSDP to be found by a scan as well as through `acpi_rsdp_addr`).
pub fn build(buf: &mut [u8], base_gpa: u64, config: &AcpiConfig<'_>) -> Result<AcpiLayout, AcpiError> {
    if config.apic_ids.is_empty() {
        return Err(AcpiError::NoCpus);
    }
    if config.apic_ids.len() > 4096 {
        return Err(AcpiError::TooManyCpus);
    }
    let o = offsets(config);
    if buf.len() < o.end {
        return Err(AcpiError::BufferTooSmall);
    }
    if base_gpa.checked_add(o.end as u64).is_none_or(|end| end > 1 << 32) {
        return Err(AcpiError::AddressTooHigh);
    }
    let gpa = |off: usize| base_gpa + off as u64;
    buf[..o.end].fill(0);

    // FADT and MADT, listed by both root tables.
    write_fadt(&mut buf[o.fadt..o.fadt + FADT_LEN], gpa(o.dsdt), &config.power);
    write_dsdt(&mut buf[o.dsdt..o.madt], config);
    write_madt(&mut buf[o.madt..o.end], config);

    let xsdt = &mut buf[o.xsdt..o.xsdt + HEADER_LEN + 16];
    xsdt[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&gpa(o.fadt).to_le_bytes());
    xsdt[HEADER_LEN + 8..].copy_from_slice(&gpa(o.madt).to_le_bytes());
    finish_sdt(xsdt, *b"XSDT", 1);
    let rsdt = &mut buf[o.rsdt..o.rsdt + HEADER_LEN + 8];
    rsdt[HEADER_LEN..HEADER_LEN + 4].copy_from_slice(&(gpa(o.fadt) as u32).to_le_bytes());
    rsdt[HEADER_LEN + 4..].copy_from_slice(&(gpa(o.madt) as u32).to_le_bytes());
    finish_sdt(rsdt, *b"RSDT", 1);

    write_rsdp(&mut buf[..RSDP_LEN], gpa(o.rsdt) as u32, gpa(o.xsdt));
    Ok(AcpiLayout {
        rsdp: base_gpa,
        xsdt: gpa(o.xsdt),
        rsdt: gpa(o.rsdt),
        fadt: gpa(o.fadt),
        dsdt: gpa(o.dsdt),
        madt: gpa(o.madt),
        end: gpa(o.end),
    })
}

/// The byte that makes `bytes` sum to zero.
pub fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |sum, &b| sum.wrapping_add(b)))
}

fn write_rsdp(rsdp: &mut [u8], rsdt: u32, xsdt: u64) {
    rsdp[0..8].copy_from_slice(b"RSD PTR ");
    rsdp[9..15].copy_from_slice(&OEM_ID);
    rsdp[15] = 2; // revision: ACPI 2.0+
    rsdp[16..20].copy_from_slice(&rsdt.to_le_bytes());
    rsdp[20..24].copy_from_slice(&(RSDP_LEN as u32).to_le_bytes());
    rsdp[24..32].copy_from_slice(&xsdt.to_le_bytes());
    rsdp[8] = checksum(&rsdp[..20]);
    rsdp[32] = checksum(&rsdp[..RSDP_LEN]);
}

/// Fills the common header of a table whose body is already in place, and its checksum.
fn finish_sdt(table: &mut [u8], signature: [u8; 4], revision: u8) {
    table[0..4].copy_from_slice(&signature);
    let len = table.len() as u32;
    table[4..8].copy_from_slice(&len.to_le_bytes());
    table[8] = revision;
    table[9] = 0;
    table[10..16].copy_from_slice(&OEM_ID);
    table[16..24].copy_from_slice(&OEM_TABLE_ID);
    table[24..28].copy_from_slice(&1u32.to_le_bytes());
    table[28..32].copy_from_slice(&CREATOR_ID);
    table[32..36].copy_from_slice(&1u32.to_le_bytes());
    table[9] = checksum(table);
}

/// A Generic Address Structure for a one-byte system-I/O register.
fn io_gas(port: u16) -> [u8; 12] {
    let mut gas = [0u8; 12];
    gas[0] = 1; // system I/O space
    gas[1] = 8; // register bit width
    gas[3] = 1; // byte access
    gas[4..12].copy_from_slice(&u64::from(port).to_le_bytes());
    gas
}

fn write_fadt(fadt: &mut [u8], dsdt: u64, power: &PowerPorts) {
    fadt[40..44].copy_from_slice(&(dsdt as u32).to_le_bytes()); // DSDT
    fadt[109..111]
        .copy_from_slice(&(BOOT_ARCH_VGA_NOT_PRESENT | BOOT_ARCH_CMOS_RTC_NOT_PRESENT).to_le_bytes());
    fadt[112..116].copy_from_slice(&(FADT_WBINVD | FADT_RESET_REG_SUP | FADT_HW_REDUCED_ACPI).to_le_bytes());
    fadt[116..128].copy_from_slice(&io_gas(power.reset)); // RESET_REG
    fadt[128] = power.reset_value;
    fadt[131] = 5; // FADT minor version: ACPI 6.5
    fadt[140..148].copy_from_slice(&dsdt.to_le_bytes()); // X_DSDT
    fadt[244..256].copy_from_slice(&io_gas(power.sleep_control)); // SLEEP_CONTROL_REG
    fadt[256..268].copy_from_slice(&io_gas(power.sleep_status)); // SLEEP_STATUS_REG
    fadt[268..276].copy_from_slice(b"RHALLOWS"); // hypervisor vendor identity
    finish_sdt(fadt, *b"FACP", 6);
}

/// A small fixed-capacity AML byte buffer.
struct Aml {
    bytes: [u8; 96],
    len: usize,
}

impl Aml {
    fn new() -> Self {
        Self { bytes: [0; 96], len: 0 }
    }
    fn push(&mut self, bytes: &[u8]) -> &mut Self {
        self.bytes[self.len..self.len + bytes.len()].copy_from_slice(bytes);
        self.len += bytes.len();
        self
    }
    /// Appends `op`, a one-byte PkgLength covering `body` (all our packages are < 64
    /// bytes), then `body`.
    fn package(&mut self, op: &[u8], body: &Aml) -> &mut Self {
        debug_assert!(body.len() < 63);
        self.push(op).push(&[body.len() as u8 + 1]).push(body.as_slice())
    }
    fn as_slice(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
    fn len(&self) -> usize {
        self.len
    }
}

/// The DSDT's AML: `\_S5_` and, so that Linux finds the UART through ACPI (a
/// hardware-reduced platform has no implicit ISA devices or legacy IRQs),
/// `Scope (\_SB) { Device (COM1) { _HID PNP0501, _UID 1, _CRS { IO 0x3F8-0x3FF
/// [, IRQNoFlags {4}] } } }`. Without an I/O APIC the `_CRS` has no IRQ, and Linux's
/// 8250 driver polls the port from a timer instead of waiting for interrupts.
fn dsdt_aml(config: &AcpiConfig<'_>) -> Aml {
    let mut resources = Aml::new();
    let [port_lo, port_hi] = COM1_PORT.to_le_bytes();
    // IO descriptor: decode16, min = max = 0x3F8, alignment 1, length 8.
    resources.push(&[0x47, 0x01, port_lo, port_hi, port_lo, port_hi, 0x01, 0x08]);
    if config.ioapic.is_some() {
        let [mask_lo, mask_hi] = (1u16 << COM1_IRQ).to_le_bytes();
        resources.push(&[0x22, mask_lo, mask_hi]); // IRQNoFlags: edge, active high
    }
    resources.push(&[0x79, 0x00]); // end tag
    let mut buffer = Aml::new();
    buffer.push(&[0x0A, resources.len() as u8]).push(resources.as_slice()); // BufferSize, data
    let mut device = Aml::new();
    device
        .push(b"COM1")
        .push(b"\x08_HID\x0C")
        .push(&[0x41, 0xD0, 0x05, 0x01]) // EisaId ("PNP0501")
        .push(b"\x08_UID\x01")
        .push(b"\x08_CRS")
        .package(&[0x11], &buffer);
    let mut scope = Aml::new();
    scope.push(b"\\_SB_").package(&[0x5B, 0x82], &device);
    let mut aml = Aml::new();
    aml.push(&S5_AML).package(&[0x10], &scope);
    aml
}

fn write_dsdt(dsdt: &mut [u8], config: &AcpiConfig<'_>) {
    let aml = dsdt_aml(config);
    let dsdt = &mut dsdt[..HEADER_LEN + aml.len()];
    dsdt[HEADER_LEN..].copy_from_slice(aml.as_slice());
    finish_sdt(dsdt, *b"DSDT", 2);
}

fn write_madt(madt: &mut [u8], config: &AcpiConfig<'_>) {
    madt[36..40].copy_from_slice(&LOCAL_APIC_ADDRESS.to_le_bytes());
    madt[40..44].copy_from_slice(&0u32.to_le_bytes()); // no PCAT_COMPAT: there is no 8259
    let mut at = MADT_FIXED_LEN;
    for (uid, &apic_id) in config.apic_ids.iter().enumerate() {
        if apic_id < 255 {
            let e = &mut madt[at..at + LAPIC_ENTRY_LEN];
            e[0] = 0; // processor local APIC
            e[1] = LAPIC_ENTRY_LEN as u8;
            e[2] = uid as u8;
            e[3] = apic_id as u8;
            e[4..8].copy_from_slice(&1u32.to_le_bytes()); // enabled
            at += LAPIC_ENTRY_LEN;
        } else {
            let e = &mut madt[at..at + X2APIC_ENTRY_LEN];
            e[0] = 9; // processor local x2APIC
            e[1] = X2APIC_ENTRY_LEN as u8;
            e[4..8].copy_from_slice(&apic_id.to_le_bytes());
            e[8..12].copy_from_slice(&1u32.to_le_bytes());
            e[12..16].copy_from_slice(&(uid as u32).to_le_bytes());
            at += X2APIC_ENTRY_LEN;
        }
    }
    if let Some(ioapic) = config.ioapic {
        let e = &mut madt[at..at + IOAPIC_ENTRY_LEN];
        e[0] = 1;
        e[1] = IOAPIC_ENTRY_LEN as u8;
        e[2] = ioapic.id;
        e[4..8].copy_from_slice(&ioapic.address.to_le_bytes());
        e[8..12].copy_from_slice(&ioapic.gsi_base.to_le_bytes());
        at += IOAPIC_ENTRY_LEN;
    }
    // LINT1 of every processor is NMI (active high, edge), as on PCs.
    let e = &mut madt[at..at + LAPIC_NMI_ENTRY_LEN];
    e[0] = 4;
    e[1] = LAPIC_NMI_ENTRY_LEN as u8;
    e[2] = 0xFF;
    e[3..5].copy_from_slice(&0x0005u16.to_le_bytes());
    e[5] = 1;
    finish_sdt(madt, *b"APIC", 5);
}

#[cfg(test)]
mod tests {
    use super::*;
    extern crate std;
    use std::vec::Vec;

    const BASE: u64 = 0xE_0000;

    fn sum(bytes: &[u8]) -> u8 {
        bytes.iter().fold(0u8, |s, &b| s.wrapping_add(b))
    }

    fn build_vec(config: &AcpiConfig<'_>) -> (Vec<u8>, AcpiLayout) {
        let mut buf = std::vec![0xCCu8; tables_size(config)];
        let layout = build(&mut buf, BASE, config).unwrap();
        (buf, layout)
    }

    fn at(buf: &[u8], layout_gpa: u64) -> &[u8] {
        let off = (layout_gpa - BASE) as usize;
        let len = u32::from_le_bytes(buf[off + 4..off + 8].try_into().unwrap()) as usize;
        &buf[off..off + len]
    }

    fn config(apic_ids: &[u32]) -> AcpiConfig<'_> {
        AcpiConfig { apic_ids, ioapic: None, power: PowerPorts::DEFAULT }
    }

    #[test]
    fn rsdp_has_both_checksums_and_points_at_the_root_tables() {
        let (buf, layout) = build_vec(&config(&[0, 1]));
        let rsdp = &buf[..36];
        assert_eq!(&rsdp[..8], b"RSD PTR ");
        assert_eq!(sum(&rsdp[..20]), 0, "ACPI 1.0 checksum over the first 20 bytes");
        assert_eq!(sum(rsdp), 0, "extended checksum over all 36 bytes");
        assert_eq!(rsdp[15], 2);
        assert_eq!(u32::from_le_bytes(rsdp[20..24].try_into().unwrap()), 36);
        assert_eq!(u64::from_le_bytes(rsdp[24..32].try_into().unwrap()), layout.xsdt);
        assert_eq!(u64::from(u32::from_le_bytes(rsdp[16..20].try_into().unwrap())), layout.rsdt);
        assert_eq!(layout.rsdp % 16, 0);
    }

    #[test]
    fn every_table_checksums_to_zero() {
        let ids = [0, 2, 4, 6];
        let cfg =
            AcpiConfig { ioapic: Some(IoApic { id: 8, address: 0xFEC0_0000, gsi_base: 0 }), ..config(&ids) };
        let (buf, layout) = build_vec(&cfg);
        for (gpa, sig) in [
            (layout.xsdt, b"XSDT"),
            (layout.rsdt, b"RSDT"),
            (layout.fadt, b"FACP"),
            (layout.dsdt, b"DSDT"),
            (layout.madt, b"APIC"),
        ] {
            let table = at(&buf, gpa);
            assert_eq!(&table[..4], sig);
            assert_eq!(sum(table), 0, "{}", core::str::from_utf8(sig).unwrap());
        }
        assert_eq!(layout.end - BASE, tables_size(&cfg) as u64);
    }

    #[test]
    fn fadt_is_hardware_reduced_with_trapped_power_ports() {
        let (buf, layout) = build_vec(&config(&[0]));
        let fadt = at(&buf, layout.fadt);
        assert_eq!(fadt.len(), 276);
        assert_eq!(fadt[8], 6, "revision");
        let flags = u32::from_le_bytes(fadt[112..116].try_into().unwrap());
        assert_ne!(flags & (1 << 20), 0, "HW_REDUCED_ACPI");
        assert_ne!(flags & (1 << 10), 0, "RESET_REG_SUP");
        assert_eq!(u64::from_le_bytes(fadt[140..148].try_into().unwrap()), layout.dsdt, "X_DSDT");
        assert_eq!(fadt[244], 1, "sleep control in system I/O");
        assert_eq!(u64::from_le_bytes(fadt[248..256].try_into().unwrap()), 0x600);
        assert_eq!(u64::from_le_bytes(fadt[120..128].try_into().unwrap()), 0x602);
        assert_eq!(fadt[128], PowerPorts::DEFAULT.reset_value);
        assert_eq!(&fadt[56..92], &[0u8; 36], "no PM1/PM2/PM timer/GPE blocks");
        let dsdt = at(&buf, layout.dsdt);
        assert_eq!(&dsdt[36..41], b"\x08_S5_");
        assert!(layout.dsdt + dsdt.len() as u64 <= layout.madt);
    }

    /// Walks the DSDT's AML: `\_S5_` package, then `Scope (\_SB) { Device (COM1) }`,
    /// checking every PkgLength matches the bytes that follow.
    fn com1_resources(cfg: &AcpiConfig<'_>) -> Vec<u8> {
        let (buf, layout) = build_vec(cfg);
        let aml = &at(&buf, layout.dsdt)[36..];
        assert_eq!(&aml[..S5_AML.len()], &S5_AML);
        let scope = &aml[S5_AML.len()..];
        assert_eq!(scope[0], 0x10, "ScopeOp");
        assert_eq!(usize::from(scope[1]), scope.len() - 1, "scope PkgLength");
        assert_eq!(&scope[2..7], b"\\_SB_");
        let device = &scope[7..];
        assert_eq!(device[..2], [0x5B, 0x82], "DeviceOp");
        assert_eq!(usize::from(device[2]), device.len() - 2, "device PkgLength");
        assert_eq!(&device[3..7], b"COM1");
        assert_eq!(&device[7..17], b"\x08_HID\x0C\x41\xD0\x05\x01");
        assert_eq!(&device[17..23], b"\x08_UID\x01");
        assert_eq!(&device[23..28], b"\x08_CRS");
        let buffer = &device[28..];
        assert_eq!(buffer[0], 0x11, "BufferOp");
        assert_eq!(usize::from(buffer[1]), buffer.len() - 1, "buffer PkgLength");
        assert_eq!(buffer[2], 0x0A);
        assert_eq!(usize::from(buffer[3]), buffer.len() - 4, "BufferSize");
        buffer[4..].to_vec()
    }

    #[test]
    fn dsdt_describes_com1_with_an_irq_only_when_an_ioapic_exists() {
        let polled = com1_resources(&config(&[0]));
        assert_eq!(polled, [0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03, 0x01, 0x08, 0x79, 0x00]);
        let ids = [0];
        let cfg =
            AcpiConfig { ioapic: Some(IoApic { id: 1, address: 0xFEC0_0000, gsi_base: 0 }), ..config(&ids) };
        let with_irq = com1_resources(&cfg);
        assert_eq!(with_irq[8..], [0x22, 0x10, 0x00, 0x79, 0x00], "IRQNoFlags {{4}} then end tag");
    }

    #[test]
    fn sleep_control_decoding() {
        // What ACPICA writes for S5 in hardware-reduced mode: SLP_TYP << 2 | SLP_EN.
        assert_eq!(decode_sleep_control((S5_SLEEP_TYPE << 2) | SLP_EN), Some(S5_SLEEP_TYPE));
        assert_eq!(decode_sleep_control(S5_SLEEP_TYPE << 2), None);
        assert_eq!(decode_sleep_control(SLP_EN), Some(0));
    }

    #[test]
    fn madt_lists_exactly_the_given_cpus_in_order() {
        let ids = [4, 5, 300];
        let (buf, layout) = build_vec(&config(&ids));
        let madt = at(&buf, layout.madt);
        assert_eq!(u32::from_le_bytes(madt[36..40].try_into().unwrap()), LOCAL_APIC_ADDRESS);
        assert_eq!(u32::from_le_bytes(madt[40..44].try_into().unwrap()) & 1, 0, "no 8259");
        assert_eq!(&madt[44..52], &[0, 8, 0, 4, 1, 0, 0, 0]);
        assert_eq!(&madt[52..60], &[0, 8, 1, 5, 1, 0, 0, 0]);
        assert_eq!(madt[60], 9, "x2APIC entry for id 300");
        assert_eq!(u32::from_le_bytes(madt[64..68].try_into().unwrap()), 300);
        assert_eq!(u32::from_le_bytes(madt[72..76].try_into().unwrap()), 2, "uid");
        assert_eq!(madt[76], 4, "LAPIC NMI last");
        assert_eq!(madt.len(), 76 + 6);
    }

    #[test]
    fn rejects_bad_requests() {
        let mut small = [0u8; 64];
        assert_eq!(build(&mut small, BASE, &config(&[0])), Err(AcpiError::BufferTooSmall));
        let mut buf = std::vec![0u8; 4096];
        assert_eq!(build(&mut buf, BASE, &config(&[])), Err(AcpiError::NoCpus));
        assert_eq!(build(&mut buf, 0xFFFF_FF00, &config(&[0])), Err(AcpiError::AddressTooHigh));
    }

    /// Reads the tables back with the `acpi` crate through a handler that maps guest
    /// physical addresses onto the test buffer.
    mod parse_back {
        use super::*;
        use ::acpi::madt::{Madt, MadtEntry};
        use ::acpi::{AcpiHandler, AcpiTables, PhysicalMapping};
        use core::ptr::NonNull;

        #[derive(Clone)]
        struct BufferHandler {
            base_gpa: usize,
            ptr: *mut u8,
            len: usize,
        }

        impl AcpiHandler for BufferHandler {
            #[allow(unsafe_code)]
            unsafe fn map_physical_region<T>(
                &self,
                physical_address: usize,
                size: usize,
            ) -> PhysicalMapping<Self, T> {
                let offset = physical_address - self.base_gpa;
                assert!(offset + size <= self.len, "acpi crate read outside the tables");
                // SAFETY: offset + size lies within the live test buffer (checked above).
                let virt = unsafe { self.ptr.add(offset) } as *mut T;
                // SAFETY: `virt` points into the buffer, non-null, and covers `size` bytes.
                unsafe {
                    PhysicalMapping::new(
                        physical_address,
                        NonNull::new(virt).unwrap(),
                        size,
                        size,
                        self.clone(),
                    )
                }
            }

            fn unmap_physical_region<T>(_region: &PhysicalMapping<Self, T>) {}
        }

        fn cpus_and_ioapics(cfg: &AcpiConfig<'_>) -> (Vec<(u32, u32)>, Vec<u8>) {
            let (mut buf, layout) = build_vec(cfg);
            let handler = BufferHandler { base_gpa: BASE as usize, ptr: buf.as_mut_ptr(), len: buf.len() };
            #[allow(unsafe_code)]
            // SAFETY: the handler only maps within `buf`, which outlives `tables`.
            let tables = unsafe { AcpiTables::from_rsdp(handler, layout.rsdp as usize) }.unwrap();
            assert_eq!(tables.revision(), 2);
            let fadt = tables.find_table::<::acpi::fadt::Fadt>().unwrap();
            assert_eq!(fadt.dsdt_address().unwrap(), layout.dsdt as usize);
            assert!(tables.dsdt().is_ok());
            let madt = tables.find_table::<Madt>().unwrap();
            assert!(!madt.get().supports_8259());
            let mut cpus = Vec::new();
            let mut ioapics = Vec::new();
            for entry in madt.get().entries() {
                match entry {
                    MadtEntry::LocalApic(e) => {
                        assert_eq!({ e.flags } & 1, 1, "enabled");
                        cpus.push((u32::from(e.processor_id), u32::from(e.apic_id)));
                    }
                    MadtEntry::LocalX2Apic(e) => cpus.push(({ e.processor_uid }, { e.x2apic_id })),
                    MadtEntry::IoApic(e) => ioapics.push(e.io_apic_id),
                    MadtEntry::LocalApicNmi(_) => {}
                    _ => panic!("unexpected MADT entry"),
                }
            }
            drop(madt);
            drop(fadt);
            drop(tables);
            (cpus, ioapics)
        }

        #[test]
        fn acpi_crate_sees_exactly_our_cpus() {
            let (cpus, ioapics) = cpus_and_ioapics(&config(&[2, 3]));
            assert_eq!(cpus, [(0, 2), (1, 3)]);
            assert!(ioapics.is_empty());
            let ids = [0, 1, 2, 3, 4, 5, 6, 7];
            let cfg = AcpiConfig {
                ioapic: Some(IoApic { id: 9, address: 0xFEC0_0000, gsi_base: 0 }),
                ..config(&ids)
            };
            let (cpus, ioapics) = cpus_and_ioapics(&cfg);
            assert_eq!(cpus.len(), 8);
            assert!(cpus.iter().enumerate().all(|(i, &(uid, id))| uid == i as u32 && id == i as u32));
            assert_eq!(ioapics, [9]);
            let (cpus, _) = cpus_and_ioapics(&config(&[1, 256]));
            assert_eq!(cpus, [(0, 1), (1, 256)]);
        }
    }
}
