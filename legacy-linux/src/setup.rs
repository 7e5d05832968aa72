//! One call to prepare a Linux partition: [`prepare`] lays the kernel, initramfs,
//! command line, zero page, ACPI tables, GDT and page tables out in the partition's RAM
//! and returns the vCPU 0 state the hypervisor copies into the VMCS.
//!
//! Guest-physical layout (RAM from GPA 0, one contiguous range):
//!
//! ```text
//! 0x0000_1000  GDT: 0x08 32-bit code (PVH), 0x10 64-bit code (__BOOT_CS), 0x18 data (__BOOT_DS)
//! 0x0000_2000  zero page (struct boot_params)             rsi at the 64-bit entry
//! 0x0000_3000  command line (NUL-terminated)
//! 0x0000_4000  PVH hvm_start_info + module + memory map    ebx at the PVH entry
//! 0x0000_5000  boot stack (rsp = 0x8000 at entry)
//! 0x0000_8000  PML4, PDPT, 4 PDs: identity map of 0-4 GiB with 2 MiB pages
//! 0x0009_F000  reserved in e820 (the PC's EBDA/VGA/BIOS hole) up to 1 MiB
//! 0x000E_0000    ACPI tables (RSDP first)
//! 0x0100_0000  the kernel (bzImage: its pref_address; vmlinux: its p_paddr)
//!   ...        free RAM
//!   top        the initramfs, page aligned, as high as the kernel allows
//! ```
//!
//! Everything below 0x9F000 except what is listed is usable RAM in the e820 map: Linux
//! needs low memory for its SMP trampoline, and it copies the zero page and command line
//! before it allocates anything.
//!
//! Entry (64-bit boot protocol, boot.rst): long mode, paging on with the identity map
//! covering the kernel's `init_size`, the zero page and the command line; CS = 0x10 and
//! DS/ES/SS = 0x18, flat; interrupts off; `rsi` = zero page. PVH entry (vmlinux only):
//! 32-bit protected mode, paging off, CS = 0x08, `ebx` = start info.
//! CR0/CR4/EFER are the values the guest must see; the hypervisor adds the VMX fixed
//! bits (CR0.NE, CR4.VMXE) itself and hides them with the read shadows.

use crate::acpi::{self, AcpiConfig, AcpiError, AcpiLayout, IoApic, PowerPorts};
use crate::boot_params::{
    place_cmdline, BootParams, CmdlineError, E820Error, E820Table, E820Type, GuestRange, BOOT_FLAG,
    BOOT_PARAMS_SIZE, HEADER_MAGIC, LOADED_HIGH, LOADER_TYPE_UNDEFINED, SETUP_HEADER_OFFSET,
};
use crate::bzimage::{BzImage, BzImageError};
use crate::pvh::{self, PvhError, PvhInputs};
use crate::vmlinux::{is_elf, Vmlinux, VmlinuxError};
use zerocopy::{FromBytes, IntoBytes};

/// GDT location.
pub const GDT_GPA: u64 = 0x1000;
/// Zero page location.
pub const BOOT_PARAMS_GPA: u64 = 0x2000;
/// Command line location.
pub const CMDLINE_GPA: u64 = 0x3000;
/// Longest command line that fits its page.
pub const CMDLINE_MAX: u32 = 0xFFF;
/// PVH start info location.
pub const PVH_START_INFO_GPA: u64 = 0x4000;
/// Initial stack pointer (the kernel switches to its own stack at once).
pub const BOOT_STACK_TOP: u64 = 0x8000;
/// First page of the identity-map page tables.
pub const PAGE_TABLES_GPA: u64 = 0x8000;
/// Bytes of page tables: PML4, PDPT and four page directories.
pub const PAGE_TABLES_BYTES: u64 = 6 * 0x1000;
/// The identity map covers this much.
pub const IDENTITY_MAP_BYTES: u64 = 4 << 30;
/// Start of the reserved legacy hole.
pub const LOW_HOLE_START: u64 = 0x9_F000;
/// End of the reserved legacy hole (1 MiB).
pub const LOW_HOLE_END: u64 = 0x10_0000;
/// ACPI tables location (inside the reserved hole, where a BIOS would put them).
pub const ACPI_GPA: u64 = 0xE_0000;
/// Smallest RAM [`prepare`] accepts.
pub const MIN_RAM: usize = 0x20_0000;
/// Command-line limit for a vmlinux, which carries no setup header (Linux's
/// COMMAND_LINE_SIZE on x86 is 2048 including the NUL).
pub const VMLINUX_CMDLINE_SIZE: u32 = 2047;
/// initrd_addr_max for a vmlinux (the 2.03+ default).
pub const VMLINUX_INITRD_ADDR_MAX: u64 = 0x7FFF_FFFF;

/// GDT selector of the 32-bit flat code segment (PVH entry).
pub const SELECTOR_CODE32: u16 = 0x08;
/// GDT selector of the 64-bit code segment (`__BOOT_CS`).
pub const SELECTOR_CODE64: u16 = 0x10;
/// GDT selector of the flat data segment (`__BOOT_DS`).
pub const SELECTOR_DATA: u16 = 0x18;
const GDT: [u64; 4] = [
    0,
    0x00CF_9B00_0000_FFFF, // 32-bit code, base 0, limit 4 GiB
    0x00AF_9B00_0000_FFFF, // 64-bit code (L=1)
    0x00CF_9300_0000_FFFF, // data, base 0, limit 4 GiB
];

const CR0_PE: u64 = 1 << 0;
const CR0_ET: u64 = 1 << 4;
const CR0_NE: u64 = 1 << 5;
const CR0_PG: u64 = 1 << 31;
const CR4_PAE: u64 = 1 << 5;
const EFER_LME: u64 = 1 << 8;
const EFER_LMA: u64 = 1 << 10;
const PTE_PRESENT: u64 = 1 << 0;
const PTE_WRITABLE: u64 = 1 << 1;
const PTE_LARGE: u64 = 1 << 7;

/// Which entry to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BootProtocol {
    /// The 64-bit boot protocol (bzImage or vmlinux).
    Linux64,
    /// The PVH entry (vmlinux with CONFIG_PVH only).
    Pvh,
}

/// The kernel file's format, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelFormat {
    /// A bzImage (setup + compressed kernel).
    BzImage,
    /// An uncompressed vmlinux ELF.
    Vmlinux,
}

impl KernelFormat {
    /// The format's usual name.
    pub const fn name(self) -> &'static str {
        match self {
            KernelFormat::BzImage => "bzImage",
            KernelFormat::Vmlinux => "vmlinux",
        }
    }
}

/// Everything [`prepare`] needs besides guest RAM.
#[derive(Debug, Clone, Copy)]
pub struct LinuxBootConfig<'a> {
    /// bzImage or vmlinux bytes.
    pub kernel: &'a [u8],
    /// The initramfs (a cpio archive), if any.
    pub initramfs: Option<&'a [u8]>,
    /// The command line, without a NUL.
    pub cmdline: &'a [u8],
    /// APIC id of each of the partition's CPUs, the boot CPU first (see [`crate::acpi`]).
    pub apic_ids: &'a [u32],
    /// The I/O APIC the hypervisor provides, if any.
    pub ioapic: Option<IoApic>,
    /// Trapped power ports advertised in the FADT.
    pub power: PowerPorts,
    /// Entry protocol.
    pub protocol: BootProtocol,
}

/// A segment register as the VMCS guest-state area holds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Selector.
    pub selector: u16,
    /// Base.
    pub base: u64,
    /// Limit (byte granular, as VMX wants it).
    pub limit: u32,
    /// Access rights in the VMCS format (type, S, DPL, P, AVL, L, D/B, G; bit 16 =
    /// unusable).
    pub access_rights: u32,
}

/// VMX access rights: 64-bit code, present, DPL 0, accessed.
pub const AR_CODE64: u32 = 0xA09B;
/// VMX access rights: 32-bit code.
pub const AR_CODE32: u32 = 0xC09B;
/// VMX access rights: flat read/write data.
pub const AR_DATA: u32 = 0xC093;
/// VMX access rights: busy TSS (valid in 32-bit and 64-bit mode).
pub const AR_TSS_BUSY: u32 = 0x008B;
/// VMX access rights: unusable segment.
pub const AR_UNUSABLE: u32 = 1 << 16;

/// The boot vCPU's register state at the kernel's entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryState {
    /// Which protocol this state enters.
    pub protocol: BootProtocol,
    /// Instruction pointer.
    pub rip: u64,
    /// Stack pointer.
    pub rsp: u64,
    /// Zero page address (64-bit protocol), else 0.
    pub rsi: u64,
    /// hvm_start_info address (PVH), else 0.
    pub rbx: u64,
    /// Flags: only the reserved bit 1 (interrupts off).
    pub rflags: u64,
    /// CR0 as the guest sees it.
    pub cr0: u64,
    /// CR3: the identity-map PML4 (64-bit protocol), else 0.
    pub cr3: u64,
    /// CR4 as the guest sees it.
    pub cr4: u64,
    /// IA32_EFER.
    pub efer: u64,
    /// CS.
    pub cs: Segment,
    /// DS, ES, SS, FS and GS all hold this.
    pub data: Segment,
    /// TR.
    pub tr: Segment,
    /// LDTR (unusable).
    pub ldtr: Segment,
    /// GDTR base.
    pub gdtr_base: u64,
    /// GDTR limit.
    pub gdtr_limit: u16,
    /// IDTR base (0; the kernel loads its own IDT before enabling interrupts).
    pub idtr_base: u64,
    /// IDTR limit.
    pub idtr_limit: u16,
}

/// Where [`prepare`] put everything.
#[derive(Debug, Clone)]
pub struct LinuxLayout {
    /// The kernel file's format.
    pub format: KernelFormat,
    /// Memory the kernel owns from its load address (bzImage: `init_size`).
    pub kernel: GuestRange,
    /// The initramfs, if any.
    pub initramfs: Option<GuestRange>,
    /// The zero page.
    pub boot_params: u64,
    /// The command line.
    pub cmdline: u64,
    /// The ACPI tables.
    pub acpi: AcpiLayout,
    /// The identity-map page tables.
    pub page_tables: GuestRange,
    /// The e820 map given to the guest.
    pub e820: E820Table,
}

/// The result of [`prepare`].
#[derive(Debug, Clone)]
pub struct BootPlan {
    /// vCPU 0's entry state.
    pub entry: EntryState,
    /// The memory layout.
    pub layout: LinuxLayout,
}

/// Why a Linux partition could not be prepared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupError {
    /// Guest RAM smaller than [`MIN_RAM`].
    RamTooSmall,
    /// The bzImage is unusable.
    BzImage(BzImageError),
    /// The vmlinux is unusable.
    Vmlinux(VmlinuxError),
    /// PVH requested for a bzImage or a vmlinux without the PVH note.
    NoPvhEntry,
    /// The initramfs fits nowhere above the kernel and below its limit.
    InitramfsDoesNotFit,
    /// The command line is unusable.
    Cmdline(CmdlineError),
    /// The e820 map could not be built.
    E820(E820Error),
    /// The ACPI tables could not be built.
    Acpi(AcpiError),
    /// The PVH start info could not be written.
    Pvh(PvhError),
    /// The kernel lies beyond the identity map.
    KernelAbove4G,
}

/// Lays out a Linux partition in `ram` (its RAM, GPA 0 = `ram[0]`) and returns the boot
/// vCPU's entry state. `ram` is written only inside the areas listed in the module docs.
pub fn prepare(ram: &mut [u8], config: &LinuxBootConfig<'_>) -> Result<BootPlan, SetupError> {
    if ram.len() < MIN_RAM {
        return Err(SetupError::RamTooSmall);
    }
    let ram_range = [GuestRange::sized(0, ram.len() as u64)];
    let carve = [(GuestRange { start: LOW_HOLE_START, end: LOW_HOLE_END }, E820Type::Reserved)];
    let e820 = E820Table::for_partition(&ram_range, &carve).map_err(SetupError::E820)?;

    // Kernel.
    let mut params = BootParams::zeroed();
    let (format, kernel, entry_64, pvh_entry, initrd_addr_max, cmdline_size) = if is_elf(config.kernel) {
        let elf = Vmlinux::parse(config.kernel).map_err(SetupError::Vmlinux)?;
        let extent = elf.load(ram).map_err(SetupError::Vmlinux)?;
        let entry = elf.entry_64().map_err(SetupError::Vmlinux)?;
        synthesise_header(&mut params, extent.start);
        (KernelFormat::Vmlinux, extent, entry, elf.pvh_entry(), VMLINUX_INITRD_ADDR_MAX, VMLINUX_CMDLINE_SIZE)
    } else {
        let bz = BzImage::parse(config.kernel).map_err(SetupError::BzImage)?;
        let load = bz.load_address(e820.usable()).map_err(SetupError::BzImage)?;
        let code = bz.kernel();
        let dest = ram.get_mut(load as usize..load as usize + code.len()).ok_or(SetupError::KernelAbove4G)?;
        dest.copy_from_slice(code);
        let header_area = &mut params.as_mut_bytes()[SETUP_HEADER_OFFSET..];
        header_area[..bz.header_bytes().len()].copy_from_slice(bz.header_bytes());
        params.hdr.code32_start.set(load as u32);
        let size = if bz.protocol_version() >= 0x0206 { bz.cmdline_size() } else { 255 };
        (
            KernelFormat::BzImage,
            GuestRange::sized(load, bz.init_size()),
            BzImage::entry_64(load),
            None,
            bz.initrd_addr_max(),
            size,
        )
    };
    if kernel.end > IDENTITY_MAP_BYTES {
        return Err(SetupError::KernelAbove4G);
    }
    params.hdr.type_of_loader = LOADER_TYPE_UNDEFINED;
    params.hdr.loadflags |= LOADED_HIGH;

    // Command line.
    place_cmdline(ram, CMDLINE_GPA, config.cmdline, cmdline_size.min(CMDLINE_MAX))
        .map_err(SetupError::Cmdline)?;
    params.set_cmdline(CMDLINE_GPA);
    params.hdr.cmdline_size.set(cmdline_size.min(CMDLINE_MAX));

    // Initramfs.
    let initramfs = match config.initramfs {
        Some(bytes) if !bytes.is_empty() => {
            let size = bytes.len() as u64;
            let addr = crate::boot_params::initramfs_address(&e820, size, initrd_addr_max, kernel.end)
                .ok_or(SetupError::InitramfsDoesNotFit)?;
            ram[addr as usize..(addr + size) as usize].copy_from_slice(bytes);
            params.set_ramdisk(addr, size);
            Some(GuestRange::sized(addr, size))
        }
        _ => None,
    };

    // ACPI.
    let acpi_config = AcpiConfig { apic_ids: config.apic_ids, ioapic: config.ioapic, power: config.power };
    let acpi_end = ACPI_GPA as usize + acpi::tables_size(&acpi_config);
    if acpi_end > LOW_HOLE_END as usize {
        return Err(SetupError::Acpi(AcpiError::TooManyCpus));
    }
    let acpi_layout = acpi::build(&mut ram[ACPI_GPA as usize..LOW_HOLE_END as usize], ACPI_GPA, &acpi_config)
        .map_err(SetupError::Acpi)?;
    params.acpi_rsdp_addr.set(acpi_layout.rsdp);

    // Zero page.
    params.set_e820(&e820);
    ram[BOOT_PARAMS_GPA as usize..BOOT_PARAMS_GPA as usize + BOOT_PARAMS_SIZE]
        .copy_from_slice(params.as_bytes());

    // GDT and page tables (both protocols get the GDT; only the 64-bit one uses paging).
    for (i, descriptor) in GDT.iter().enumerate() {
        let at = GDT_GPA as usize + i * 8;
        ram[at..at + 8].copy_from_slice(&descriptor.to_le_bytes());
    }
    write_identity_map(ram);

    let entry = match config.protocol {
        BootProtocol::Linux64 => long_mode_entry(entry_64),
        BootProtocol::Pvh => {
            let pvh_entry = pvh_entry.ok_or(SetupError::NoPvhEntry)?;
            let inputs =
                PvhInputs { cmdline_gpa: CMDLINE_GPA, initramfs, rsdp_gpa: acpi_layout.rsdp, e820: &e820 };
            let start_info =
                pvh::write_start_info(ram, PVH_START_INFO_GPA, &inputs).map_err(SetupError::Pvh)?;
            pvh_entry_state(u64::from(pvh_entry), start_info)
        }
    };
    Ok(BootPlan {
        entry,
        layout: LinuxLayout {
            format,
            kernel,
            initramfs,
            boot_params: BOOT_PARAMS_GPA,
            cmdline: CMDLINE_GPA,
            acpi: acpi_layout,
            page_tables: GuestRange::sized(PAGE_TABLES_GPA, PAGE_TABLES_BYTES),
            e820,
        },
    })
}

/// A setup header for a vmlinux, which has none of its own: the fields the kernel reads.
fn synthesise_header(params: &mut BootParams, load: u64) {
    params.hdr.boot_flag.set(BOOT_FLAG);
    params.hdr.header.set(HEADER_MAGIC);
    params.hdr.version.set(0x020F);
    params.hdr.code32_start.set(load as u32);
    params.hdr.kernel_alignment.set(0x20_0000);
}

/// PML4[0] -> PDPT; PDPT[0..4] -> four PDs; each PD maps 1 GiB with 2 MiB pages.
fn write_identity_map(ram: &mut [u8]) {
    let base = PAGE_TABLES_GPA as usize;
    let tables = &mut ram[base..base + PAGE_TABLES_BYTES as usize];
    tables.fill(0);
    let pdpt = PAGE_TABLES_GPA + 0x1000;
    tables[..8].copy_from_slice(&(pdpt | PTE_PRESENT | PTE_WRITABLE).to_le_bytes());
    for gib in 0..4u64 {
        let pd = PAGE_TABLES_GPA + 0x2000 + gib * 0x1000;
        let at = 0x1000 + gib as usize * 8;
        tables[at..at + 8].copy_from_slice(&(pd | PTE_PRESENT | PTE_WRITABLE).to_le_bytes());
        for i in 0..512u64 {
            let addr = (gib << 30) | (i << 21);
            let at = 0x2000 + gib as usize * 0x1000 + i as usize * 8;
            tables[at..at + 8]
                .copy_from_slice(&(addr | PTE_PRESENT | PTE_WRITABLE | PTE_LARGE).to_le_bytes());
        }
    }
}

fn flat(selector: u16, access_rights: u32) -> Segment {
    Segment { selector, base: 0, limit: 0xFFFF_FFFF, access_rights }
}

fn common_state(protocol: BootProtocol, rip: u64, cs: Segment) -> EntryState {
    EntryState {
        protocol,
        rip,
        rsp: BOOT_STACK_TOP,
        rsi: 0,
        rbx: 0,
        rflags: 0x2,
        cr0: CR0_PE | CR0_ET | CR0_NE,
        cr3: 0,
        cr4: 0,
        efer: 0,
        cs,
        data: flat(SELECTOR_DATA, AR_DATA),
        tr: Segment { selector: 0, base: 0, limit: 0x67, access_rights: AR_TSS_BUSY },
        ldtr: Segment { selector: 0, base: 0, limit: 0, access_rights: AR_UNUSABLE },
        gdtr_base: GDT_GPA,
        gdtr_limit: (GDT.len() * 8 - 1) as u16,
        idtr_base: 0,
        idtr_limit: 0,
    }
}

fn long_mode_entry(rip: u64) -> EntryState {
    EntryState {
        rsi: BOOT_PARAMS_GPA,
        cr0: CR0_PE | CR0_ET | CR0_NE | CR0_PG,
        cr3: PAGE_TABLES_GPA,
        cr4: CR4_PAE,
        efer: EFER_LME | EFER_LMA,
        ..common_state(BootProtocol::Linux64, rip, flat(SELECTOR_CODE64, AR_CODE64))
    }
}

fn pvh_entry_state(rip: u64, start_info: u64) -> EntryState {
    EntryState { rbx: start_info, ..common_state(BootProtocol::Pvh, rip, flat(SELECTOR_CODE32, AR_CODE32)) }
}

/// Reads back the zero page [`prepare`] wrote (for tests and diagnostics).
pub fn boot_params_in(ram: &[u8]) -> Option<BootParams> {
    let start = BOOT_PARAMS_GPA as usize;
    BootParams::read_from_bytes(ram.get(start..start + BOOT_PARAMS_SIZE)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::boot_params::{CAN_USE_HEAP, XLF_KERNEL_64};
    use crate::bzimage::tests::synthetic_bzimage;
    use crate::vmlinux::tests::synthetic_vmlinux;
    extern crate std;
    use std::vec::Vec;

    const RAM: usize = 64 << 20;

    fn config<'a>(
        kernel: &'a [u8],
        initramfs: Option<&'a [u8]>,
        protocol: BootProtocol,
    ) -> LinuxBootConfig<'a> {
        LinuxBootConfig {
            kernel,
            initramfs,
            cmdline: b"console=ttyS0 earlyprintk=serial",
            apic_ids: &[0, 1],
            ioapic: None,
            power: PowerPorts::DEFAULT,
            protocol,
        }
    }

    fn u64_at(ram: &[u8], gpa: u64) -> u64 {
        u64::from_le_bytes(ram[gpa as usize..gpa as usize + 8].try_into().unwrap())
    }

    /// Walks the guest page tables like the MMU does for a 2 MiB mapping.
    fn translate(ram: &[u8], cr3: u64, va: u64) -> Option<u64> {
        let pml4e = u64_at(ram, cr3 + ((va >> 39) & 0x1FF) * 8);
        if pml4e & PTE_PRESENT == 0 {
            return None;
        }
        let pdpte = u64_at(ram, (pml4e & 0x000F_FFFF_FFFF_F000) + ((va >> 30) & 0x1FF) * 8);
        if pdpte & PTE_PRESENT == 0 {
            return None;
        }
        let pde = u64_at(ram, (pdpte & 0x000F_FFFF_FFFF_F000) + ((va >> 21) & 0x1FF) * 8);
        if pde & PTE_PRESENT == 0 || pde & PTE_LARGE == 0 {
            return None;
        }
        Some((pde & 0x000F_FFFF_FFE0_0000) | (va & 0x1F_FFFF))
    }

    #[test]
    fn bzimage_64_bit_boot() {
        let image = synthetic_bzimage(4, b"PMODE-KERNEL", 0x80_0000);
        let initramfs: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let mut ram = std::vec![0u8; RAM];
        let plan = prepare(&mut ram, &config(&image, Some(&initramfs), BootProtocol::Linux64)).unwrap();
        let e = plan.entry;

        // Kernel at pref_address, entry at +0x200, protected-mode code copied there.
        assert_eq!(plan.layout.format, KernelFormat::BzImage);
        assert_eq!((KernelFormat::BzImage.name(), KernelFormat::Vmlinux.name()), ("bzImage", "vmlinux"));
        assert_eq!(plan.layout.kernel, GuestRange::sized(0x100_0000, 0x80_0000));
        assert_eq!(&ram[0x100_0000..0x100_000C], b"PMODE-KERNEL");
        assert_eq!(e.rip, 0x100_0200);
        assert_eq!(e.rsi, BOOT_PARAMS_GPA);

        // Zero page: header copied, loader fields set.
        let bp = boot_params_in(&ram).unwrap();
        assert_eq!(bp.hdr.header.get(), HEADER_MAGIC);
        assert_eq!(bp.hdr.boot_flag.get(), BOOT_FLAG);
        assert_eq!(bp.hdr.type_of_loader, 0xFF);
        assert_eq!(bp.hdr.loadflags & LOADED_HIGH, LOADED_HIGH);
        assert_eq!(bp.hdr.loadflags & CAN_USE_HEAP, 0);
        assert_eq!(bp.hdr.xloadflags.get() & XLF_KERNEL_64, XLF_KERNEL_64);
        assert_eq!(bp.hdr.code32_start.get(), 0x100_0000);
        assert_eq!(bp.acpi_rsdp_addr.get(), ACPI_GPA);
        assert_eq!(&ram[ACPI_GPA as usize..ACPI_GPA as usize + 8], b"RSD PTR ");

        // Command line.
        assert_eq!(u64::from(bp.hdr.cmd_line_ptr.get()), CMDLINE_GPA);
        assert_eq!(bp.ext_cmd_line_ptr.get(), 0);
        let cmd = &ram[CMDLINE_GPA as usize..CMDLINE_GPA as usize + 33];
        assert_eq!(cmd, b"console=ttyS0 earlyprintk=serial\0");

        // Initramfs: high, page aligned, after the kernel's init_size, intact.
        let rd = plan.layout.initramfs.unwrap();
        assert_eq!(u64::from(bp.hdr.ramdisk_image.get()), rd.start);
        assert_eq!(u64::from(bp.hdr.ramdisk_size.get()), 100_000);
        assert_eq!(rd.start % 0x1000, 0);
        assert!(rd.start >= 0x180_0000);
        assert!(RAM as u64 - rd.end < 0x1000);
        assert_eq!(&ram[rd.start as usize..rd.end as usize], &initramfs[..]);

        // e820: RAM, the hole, RAM; nothing past the partition's end.
        let e820: Vec<_> = bp.e820_table[..usize::from(bp.e820_entries)]
            .iter()
            .map(|e| (e.addr.get(), e.size.get(), e.kind.get()))
            .collect();
        assert_eq!(e820, [(0, 0x9_F000, 1), (0x9_F000, 0x6_1000, 2), (0x10_0000, RAM as u64 - 0x10_0000, 1)]);
    }

    #[test]
    fn long_mode_state_follows_the_64_bit_protocol() {
        let image = synthetic_bzimage(4, b"K", 0x80_0000);
        let mut ram = std::vec![0u8; RAM];
        let e = prepare(&mut ram, &config(&image, None, BootProtocol::Linux64)).unwrap().entry;
        assert_eq!(e.cs.selector, 0x10, "__BOOT_CS");
        assert_eq!(e.data.selector, 0x18, "__BOOT_DS");
        assert_eq!(e.cs.access_rights, AR_CODE64);
        assert_eq!(e.rflags & (1 << 9), 0, "interrupts disabled");
        assert_ne!(e.cr0 & CR0_PG, 0);
        assert_ne!(e.cr0 & CR0_PE, 0);
        assert_ne!(e.cr4 & CR4_PAE, 0);
        assert_eq!(e.efer, EFER_LME | EFER_LMA);
        // The GDT holds the descriptors the selectors name.
        let gdt = |sel: u16| u64_at(&ram, e.gdtr_base + u64::from(sel));
        assert_eq!(gdt(0x10) >> 40 & 0xFF, 0x9B);
        assert_ne!(gdt(0x10) & (1 << 53), 0, "L bit");
        assert_eq!(gdt(0x18) >> 40 & 0xFF, 0x93);
        assert_eq!(e.gdtr_limit, 31);
        // Identity map: kernel init_size, zero page, command line all map to themselves.
        for va in [0x100_0000, 0x100_0200, 0x17F_FFFF, BOOT_PARAMS_GPA, CMDLINE_GPA, 0xFFFF_FFFF] {
            assert_eq!(translate(&ram, e.cr3, va), Some(va), "{va:#x}");
        }
        assert_eq!(translate(&ram, e.cr3, 1 << 32), None);
        // No initramfs: fields stay zero.
        let bp = boot_params_in(&ram).unwrap();
        assert_eq!((bp.hdr.ramdisk_image.get(), bp.hdr.ramdisk_size.get()), (0, 0));
    }

    #[test]
    fn vmlinux_64_bit_boot() {
        let file = synthetic_vmlinux(Some(0x100_0004));
        let initramfs = [7u8; 5000];
        let mut ram = std::vec![0u8; RAM];
        let plan = prepare(&mut ram, &config(&file, Some(&initramfs), BootProtocol::Linux64)).unwrap();
        assert_eq!(plan.layout.format, KernelFormat::Vmlinux);
        assert_eq!(plan.entry.rip, 0x100_0000, "startup_64 = e_entry");
        assert_eq!(plan.entry.protocol, BootProtocol::Linux64);
        assert_eq!(&ram[0x100_0003..0x100_000C], b"STARTUP64");
        let bp = boot_params_in(&ram).unwrap();
        assert_eq!(bp.hdr.header.get(), HEADER_MAGIC, "synthesised header");
        assert_eq!(bp.hdr.boot_flag.get(), BOOT_FLAG);
        assert_eq!(bp.hdr.type_of_loader, 0xFF);
        assert_eq!(u64::from(bp.hdr.ramdisk_size.get()), 5000);
        assert!(u64::from(bp.hdr.ramdisk_image.get()) >= plan.layout.kernel.end);
    }

    #[test]
    fn vmlinux_pvh_boot() {
        let file = synthetic_vmlinux(Some(0x100_0004));
        let initramfs = [7u8; 5000];
        let mut ram = std::vec![0u8; RAM];
        let plan = prepare(&mut ram, &config(&file, Some(&initramfs), BootProtocol::Pvh)).unwrap();
        let e = plan.entry;
        assert_eq!((e.rip, e.rbx, e.rsi), (0x100_0004, PVH_START_INFO_GPA, 0));
        assert_eq!(e.cr0 & CR0_PG, 0, "paging off");
        assert_ne!(e.cr0 & CR0_PE, 0);
        assert_eq!(e.efer, 0);
        assert_eq!(e.cs.selector, SELECTOR_CODE32);
        assert_eq!(e.cs.access_rights, AR_CODE32);
        let info = crate::pvh::HvmStartInfo::read_from_bytes(&ram[0x4000..0x4038]).unwrap();
        assert_eq!(info.magic.get(), crate::pvh::HVM_START_MAGIC);
        assert_eq!(info.cmdline_paddr.get(), CMDLINE_GPA);
        assert_eq!(info.rsdp_paddr.get(), ACPI_GPA);
        assert_eq!(info.nr_modules.get(), 1);
        assert_eq!(info.memmap_entries.get(), 3);
        // PVH needs the note.
        let no_note = synthetic_vmlinux(None);
        assert_eq!(
            prepare(&mut ram, &config(&no_note, None, BootProtocol::Pvh)).unwrap_err(),
            SetupError::NoPvhEntry
        );
        let bz = synthetic_bzimage(4, b"K", 0x1000);
        assert_eq!(
            prepare(&mut ram, &config(&bz, None, BootProtocol::Pvh)).unwrap_err(),
            SetupError::NoPvhEntry
        );
    }

    #[test]
    fn refuses_what_does_not_fit() {
        let image = synthetic_bzimage(4, b"K", 0x80_0000);
        let mut tiny = std::vec![0u8; 0x10_0000];
        assert_eq!(
            prepare(&mut tiny, &config(&image, None, BootProtocol::Linux64)).unwrap_err(),
            SetupError::RamTooSmall
        );
        let mut ram = std::vec![0u8; 24 << 20];
        // Kernel fits (16..24 MiB) but leaves no room for an initramfs above it.
        let rd = [0u8; 0x1000];
        assert_eq!(
            prepare(&mut ram, &config(&image, Some(&rd), BootProtocol::Linux64)).unwrap_err(),
            SetupError::InitramfsDoesNotFit
        );
        let long = std::vec![b'x'; 3000];
        let cfg = LinuxBootConfig { cmdline: &long, ..config(&image, None, BootProtocol::Linux64) };
        let mut ram = std::vec![0u8; RAM];
        assert_eq!(prepare(&mut ram, &cfg).unwrap_err(), SetupError::Cmdline(CmdlineError::TooLong));
        assert!(matches!(
            prepare(&mut ram, &config(b"garbage", None, BootProtocol::Linux64)).unwrap_err(),
            SetupError::BzImage(_)
        ));
        let cfg = LinuxBootConfig { apic_ids: &[], ..config(&image, None, BootProtocol::Linux64) };
        assert_eq!(prepare(&mut ram, &cfg).unwrap_err(), SetupError::Acpi(AcpiError::NoCpus));
    }

    /// The real Debian kernel and initramfs, when `scripts/linux-assets` has run.
    #[test]
    fn debian_assets_if_present() {
        let (Some(bz), Some(rd)) =
            (crate::test_assets::read("bzImage"), crate::test_assets::read("initramfs.cpio"))
        else {
            return;
        };
        let mut ram = std::vec![0u8; 256 << 20];
        let plan = prepare(&mut ram, &config(&bz, Some(&rd), BootProtocol::Linux64)).unwrap();
        assert_eq!(plan.entry.rip, 0x100_0200);
        let rd_range = plan.layout.initramfs.unwrap();
        assert!(rd_range.start >= plan.layout.kernel.end);
        assert_eq!(&ram[rd_range.start as usize..][..6], b"070701", "newc cpio magic");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
        #[test]
        fn layouts_never_overlap(ram_mib in 2usize..48, init_mib in 1u32..16, rd_kib in 0usize..4096, cpus in 1usize..16) {
            let image = synthetic_bzimage(4, b"K", init_mib << 20);
            let initramfs = std::vec![0x5Au8; rd_kib << 10];
            let apic_ids: Vec<u32> = (0..cpus as u32).collect();
            let cfg = LinuxBootConfig {
                apic_ids: &apic_ids,
                ..config(&image, Some(&initramfs), BootProtocol::Linux64)
            };
            let mut ram = std::vec![0u8; ram_mib << 20];
            if let Ok(plan) = prepare(&mut ram, &cfg) {
                let l = &plan.layout;
                let ram_range = GuestRange::sized(0, ram.len() as u64);
                let mut regions = std::vec![
                    GuestRange::sized(GDT_GPA, 0x1000),
                    GuestRange::sized(BOOT_PARAMS_GPA, 0x1000),
                    GuestRange::sized(CMDLINE_GPA, 0x1000),
                    l.page_tables,
                    GuestRange { start: l.acpi.rsdp, end: l.acpi.end },
                    l.kernel,
                ];
                regions.extend(l.initramfs);
                for (i, a) in regions.iter().enumerate() {
                    proptest::prop_assert!(ram_range.contains_range(a), "{:?} outside RAM", a);
                    for b in &regions[i + 1..] {
                        proptest::prop_assert!(!a.overlaps(b), "{:?} overlaps {:?}", a, b);
                    }
                }
                proptest::prop_assert!(l.acpi.end <= LOW_HOLE_END && l.acpi.rsdp >= LOW_HOLE_START);
                if let Some(rd) = l.initramfs {
                    proptest::prop_assert!(ram[rd.start as usize..rd.end as usize].iter().all(|&b| b == 0x5A));
                }
            }
        }
    }
}
