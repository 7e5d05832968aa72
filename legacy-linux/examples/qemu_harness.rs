//! Builds the sources of a QEMU test image that boots a real kernel exactly as
//! `legacy_linux::setup::prepare` lays it out, so the layout, the zero page, the e820 map
//! and the synthesised ACPI tables can be checked against a real Linux before the
//! hypervisor can run one (QEMU TCG has no VT-x; this needs none).
//!
//! The image is an ELF that QEMU's PVH loader starts in 32-bit protected mode. A small
//! stub copies the prepared low memory (zero page, command line, GDT, page tables, ACPI
//! tables) into place, opens the q35 BIOS shadow (PAM) for writing so the ACPI tables at
//! 0xE0000 land, and then enters the kernel with the returned `EntryState` (long mode,
//! CR3, GDT selectors, RSP, RSI, RIP; or, with `--pvh`, the 32-bit PVH state with EBX). The kernel and initramfs are loaded by QEMU from
//! the ELF at the addresses `prepare` chose.
//!
//! Usage: `qemu_harness KERNEL INITRAMFS OUT_DIR RAM_MIB APIC_IDS [CMDLINE] [--ioapic]
//! [--sleep-port=N] [--pvh]` (APIC_IDS comma-separated; N is where the FADT puts the sleep
//! control register: QEMU's `isa-debug-exit` there turns the guest's ACPI power-off into
//! QEMU's exit, as the hypervisor's trap would end the partition). Then `as`/`ld` turn OUT_DIR/harness.S into an ELF:
//! `scripts/linux-assets --setup-check` does all of it and boots the result.

use legacy_linux::acpi::{IoApic, PowerPorts};
use legacy_linux::setup::{prepare, BootProtocol, LinuxBootConfig, LOW_HOLE_END};
use std::fmt::Write as _;
use std::path::Path;

/// Where the stub and its copy of low memory are loaded (above the guest's e820 RAM).
const STUB_GPA: u64 = 0x1000_0000;

fn main() {
    if let Err(message) = run() {
        eprintln!("qemu_harness: {message}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let ioapic = args.iter().any(|a| a == "--ioapic");
    let pvh = args.iter().any(|a| a == "--pvh");
    let mut power = PowerPorts::DEFAULT;
    if let Some(port) = args.iter().find_map(|a| a.strip_prefix("--sleep-port=")) {
        let port = port.trim_start_matches("0x");
        power.sleep_control = u16::from_str_radix(port, 16).map_err(|_| "bad --sleep-port (hex)")?;
    }
    let args: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    if args.len() < 5 {
        return Err("usage: KERNEL INITRAMFS OUT_DIR RAM_MIB APIC_IDS [CMDLINE] [--ioapic]".into());
    }
    let read = |p: &str| std::fs::read(p).map_err(|e| format!("{p}: {e}"));
    let kernel = read(args[0])?;
    let initramfs = read(args[1])?;
    let out = Path::new(args[2].as_str());
    let ram_mib: usize = args[3].parse().map_err(|_| "RAM_MIB must be a number")?;
    let apic_ids: Vec<u32> =
        args[4].split(',').map(|s| s.parse().map_err(|_| "bad APIC id")).collect::<Result<_, _>>()?;
    let cmdline = args.get(5).map(|s| s.as_str()).unwrap_or("console=ttyS0 panic=-1");

    let mut ram = vec![0u8; ram_mib << 20];
    let config = LinuxBootConfig {
        kernel: &kernel,
        initramfs: Some(&initramfs),
        cmdline: cmdline.as_bytes(),
        apic_ids: &apic_ids,
        ioapic: ioapic.then_some(IoApic { id: apic_ids.len() as u8, address: 0xFEC0_0000, gsi_base: 0 }),
        power,
        protocol: if pvh { BootProtocol::Pvh } else { BootProtocol::Linux64 },
    };
    let plan = prepare(&mut ram, &config).map_err(|e| format!("prepare: {e:?}"))?;
    let layout = &plan.layout;
    let entry = plan.entry;
    let rd = layout.initramfs.ok_or("no initramfs placed")?;
    if rd.end > STUB_GPA {
        return Err("RAM too large for the harness (must end below 256 MiB)".into());
    }

    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let write =
        |name: &str, bytes: &[u8]| std::fs::write(out.join(name), bytes).map_err(|e| format!("{name}: {e}"));
    write("low.bin", &ram[..LOW_HOLE_END as usize])?;
    // The kernel's bytes as loaded (its init_size tail is scratch space, zero in QEMU RAM).
    let kernel_bytes = &ram[layout.kernel.start as usize..layout.kernel.end as usize];
    let used = kernel_bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    write("kernel.bin", &kernel_bytes[..used])?;
    write("initramfs.bin", &ram[rd.start as usize..rd.end as usize])?;

    let enter = match entry.protocol {
        BootProtocol::Linux64 => format!(
            r#"    mov %cr4, %eax
    or ${cr4:#x}, %eax
    mov %eax, %cr4
    mov ${cr3:#x}, %eax
    mov %eax, %cr3
    mov $0xc0000080, %ecx
    rdmsr
    or ${efer:#x}, %eax
    wrmsr
    mov %cr0, %eax
    or ${cr0:#x}, %eax
    mov %eax, %cr0
    ljmp ${cs:#x}, $long64
.code64
long64:
    mov ${ds:#x}, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov ${rsp:#x}, %rsp
    mov ${rsi:#x}, %rsi
    xor %ebp, %ebp
    xor %edi, %edi
    xor %ebx, %ebx
    mov ${rip:#x}, %rax
    jmp *%rax
"#,
            cr4 = entry.cr4,
            cr3 = entry.cr3,
            efer = entry.efer & 0xFFFF_FFFF & !(1 << 10), // LMA is set by the CPU itself
            cr0 = entry.cr0,
            cs = entry.cs.selector,
            ds = entry.data.selector,
            rsp = entry.rsp,
            rsi = entry.rsi,
            rip = entry.rip,
        ),
        BootProtocol::Pvh => format!(
            r#"    ljmp ${cs:#x}, $pvh32
pvh32:
    mov ${ds:#x}, %ax
    mov %ax, %ds
    mov %ax, %es
    mov %ax, %ss
    mov %ax, %fs
    mov %ax, %gs
    mov ${rsp:#x}, %esp
    mov ${rbx:#x}, %ebx
    xor %esi, %esi
    xor %edi, %edi
    xor %ebp, %ebp
    mov ${rip:#x}, %eax
    jmp *%eax
"#,
            cs = entry.cs.selector,
            ds = entry.data.selector,
            rsp = entry.rsp,
            rbx = entry.rbx,
            rip = entry.rip,
        ),
    };
    let mut asm = String::new();
    let _ = write!(
        asm,
        r#"# Generated by legacy-linux/examples/qemu_harness.rs
.section .stub, "ax"
.code32
.globl _start32
_start32:
    cli
    # Mask both 8259s: the partition has no PIC (hardware-reduced ACPI), and SeaBIOS left
    # the PIT routed through it to vector 8. The hypervisor keeps the real PIC masked too.
    mov $0xff, %al
    out %al, $0x21
    out %al, $0xa1
    # q35 host bridge PAM0..PAM6 (config 0x90-0x96) = 0x33: 0xC0000-0xFFFFF is read/write RAM.
    mov $0x80000090, %eax
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0x33333333, %eax
    mov $0xcfc, %dx
    out %eax, %dx
    mov $0x80000094, %eax
    mov $0xcf8, %dx
    out %eax, %dx
    mov $0x33, %al
    mov $0xcfc, %dx
    out %al, %dx
    inc %dx
    out %al, %dx
    inc %dx
    out %al, %dx
    # Low memory as prepare() left it, from 0x1000 (page 0 stays the BIOS's).
    cld
    mov $(low_image + 0x1000), %esi
    mov $0x1000, %edi
    mov ${low_len}, %ecx
    rep movsb
    lgdt gdtr
{enter}.align 8
gdtr:
    .word {gdt_limit:#x}
    .long {gdt_base:#x}
.align 16
low_image:
    .incbin "low.bin"

.section .kernel, "a"
    .incbin "kernel.bin"
.section .initramfs, "a"
    .incbin "initramfs.bin"

.section .note.Xen, "a"
.align 4
    .long 4, 4, 18
    .asciz "Xen"
.align 4
    .long _start32
"#,
        low_len = LOW_HOLE_END - 0x1000,
        gdt_limit = entry.gdtr_limit,
        gdt_base = entry.gdtr_base,
    );
    write("harness.S", asm.as_bytes())?;
    let linker_script = format!(
        "PHDRS {{ kernel PT_LOAD; initramfs PT_LOAD; stub PT_LOAD; note PT_NOTE; }}\n\
         ENTRY(_start32)\n\
         SECTIONS {{\n\
         . = {kernel:#x}; .kernel : {{ *(.kernel) }} :kernel\n\
         . = {rd:#x}; .initramfs : {{ *(.initramfs) }} :initramfs\n\
         . = {stub:#x}; .stub : {{ *(.stub) }} :stub\n\
         .note.Xen : {{ *(.note.Xen) }} :stub :note\n\
         /DISCARD/ : {{ *(.data) *(.bss) *(.text) }}\n\
         }}\n",
        kernel = layout.kernel.start,
        rd = rd.start,
        stub = STUB_GPA,
    );
    write("harness.ld", linker_script.as_bytes())?;
    println!(
        "format={:?} kernel={:#x}..{:#x} entry={:#x} initramfs={:#x}+{:#x} rsdp={:#x} e820_entries={} cpus={}",
        layout.format,
        layout.kernel.start,
        layout.kernel.end,
        entry.rip,
        rd.start,
        rd.len(),
        layout.acpi.rsdp,
        layout.e820.len(),
        apic_ids.len()
    );
    Ok(())
}
