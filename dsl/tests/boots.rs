//! Accepted ⇒ boots. Every table the checker accepts goes through the hypervisor's own
//! boot-time decisions on a machine that matches its platform block:
//! `hallows_core::boot_plan::plan` (fit to the machine, memory placement, EPT with
//! channels and MMIO, I/O bitmaps, RT stacks and guest page tables, boot-info channel
//! list and names, ESP file names, the Linux command line and CPUs) and, for Linux
//! partitions, legacy-linux's command-line placement and ACPI sizing. Sources: every
//! shipped config, a generated corpus aimed at the edges of every limit, and mutations of
//! the shipped configs. The other direction (refused at boot ⇒ refused by the checker) is
//! the same assertion read backwards: no table in these corpora is accepted and then
//! refused.
//!
//! Campaign size: `FUZZ_CASES` tables per corpus (default 400); the numbers in
//! docs/measurements.md come from `FUZZ_CASES=20000`.

mod common;

use std::path::Path;

use hallows_abi::limits;
use hallows_abi::table::{Table, KIND_LINUX};
use hallows_core::boot_plan::{plan, Machine};
use hallows_core::placement::Region;
use hallows_core::vmx::ept::FrameAllocator;
use parseltongue::compile::{compile_source, to_model};
use parseltongue::parser::parse;
use proptest::prelude::*;

/// EPT frames in a map (sparse host addresses are fine for the plan).
#[derive(Default)]
struct Frames(Vec<[u64; 512]>);

impl FrameAllocator for Frames {
    fn alloc_zeroed(&mut self) -> Option<u64> {
        self.0.push([0; 512]);
        Some(self.0.len() as u64 * 0x1000)
    }
    fn table(&self, hpa: u64) -> &[u64; 512] {
        &self.0[hpa as usize / 0x1000 - 1]
    }
    fn table_mut(&mut self, hpa: u64) -> &mut [u64; 512] {
        &mut self.0[hpa as usize / 0x1000 - 1]
    }
}

const MIB: u64 = 1 << 20;

/// A machine as the platform block describes it: its cores (or as many as the table
/// uses), its RAM (or exactly what the table needs), with every pinned range present,
/// and CAT when the table uses cache ways.
fn machine_regions(table: &Table) -> (Vec<Region>, u32, Option<(u8, u8)>) {
    let platform = table.platform();
    let cores = platform.cores.get().max(table.cores_needed()).max(1);
    let needed = table.ram_needed();
    let ram = match platform.ram_bytes.get() {
        0 => needed,
        stated => stated,
    };
    // The platform as the checker models it: RAM from 0 to `ram` (or to what the table
    // needs), plus every pinned range wherever the table pins it (placement merges what
    // overlaps).
    let mut free = vec![Region { base: 0, bytes: ram }];
    for p in table.partitions.iter().filter(|p| p.flags & hallows_abi::table::PFLAG_PINNED != 0) {
        free.push(Region { base: p.pinned_base.get(), bytes: p.ram_bytes.get() });
    }
    let ways_used = table.partitions.iter().map(|p| p.llc_first_way as u32 + p.llc_way_count as u32).max();
    let cat = match (platform.llc_ways, ways_used) {
        (0, None | Some(0)) => None,
        (0, Some(w)) => Some((w as u8, platform.cat_min_ways.max(1))),
        (ways, _) => Some((ways, platform.cat_min_ways.max(1))),
    };
    let cat = if cat.is_none() && platform.flags & hallows_abi::table::PLATFORM_REQUIRE_CAT != 0 {
        Some((platform.cat_min_ways.max(1), platform.cat_min_ways.max(1)))
    } else {
        cat
    };
    (free, cores, cat)
}

/// Runs every boot decision on compiled `bytes`; the error says which one refused.
fn boot(bytes: &[u8]) -> Result<(), String> {
    let table = Table::load(bytes).map_err(|e| format!("Table::load: {e}"))?;
    let (free, cores, cat) = machine_regions(&table);
    let machine = Machine { free: &free, cores, cat };
    let mut frames = Frames::default();
    plan(&table, &machine, &mut frames).map_err(|e| format!("boot plan: {e}"))?;
    for (i, p) in table.partitions.iter().enumerate().filter(|(_, p)| p.kind == KIND_LINUX) {
        // Its channel functions' BARs lie above its RAM (so its e820 map, which lists only
        // its RAM, never claims them), below 4 GiB and clear of the hypervisor's MMIO.
        let bars = hallows_core::bridge::linux_channels(&table, i).map_err(|e| format!("bridge: {e}"))?;
        for b in &bars {
            for (base, bytes) in [(b.shared_gpa, b.shared_bar_bytes), (b.registers_gpa, 0x1000)] {
                if base < p.ram_bytes.get()
                    || base + bytes > 1 << 32
                    || limits::reserved_mmio_conflict(base, bytes).is_some()
                {
                    return Err(format!("partition {i}: BAR {base:#x}+{bytes:#x} misplaced"));
                }
            }
        }
        let cmdline = hallows_core::boot_plan::linux_cmdline(&table, i).map_err(|e| e.to_string())?.concat();
        let mut page = vec![0u8; 0x1000];
        let kernel_max = legacy_linux::setup::VMLINUX_CMDLINE_SIZE.min(legacy_linux::setup::CMDLINE_MAX);
        legacy_linux::boot_params::place_cmdline(&mut page, 0, cmdline.as_bytes(), kernel_max)
            .map_err(|e| format!("partition {i}: Linux command line: {e:?}"))?;
        let ids: Vec<u32> = p.cores.iter().collect();
        let acpi = legacy_linux::acpi::AcpiConfig {
            apic_ids: &ids,
            ioapic: None,
            power: legacy_linux::acpi::PowerPorts::DEFAULT,
        };
        let end = legacy_linux::setup::ACPI_GPA as usize + legacy_linux::acpi::tables_size(&acpi);
        if end > legacy_linux::setup::LOW_HOLE_END as usize {
            return Err(format!("partition {i}: ACPI tables for {} CPUs do not fit", ids.len()));
        }
        if (p.ram_bytes.get() as usize) < legacy_linux::setup::MIN_RAM {
            return Err(format!("partition {i}: below legacy-linux's minimum RAM"));
        }
    }
    Ok(())
}

/// The checker's verdict and, when it accepts, the boot path's.
fn judge(source: &str) -> Result<bool, String> {
    let compiled = compile_source(source);
    let Some(model) = compiled.model else { return Ok(false) };
    boot(&model.to_bytes()).map(|()| true).map_err(|e| format!("accepted but unbootable: {e}\n{source}"))
}

use common::configs;

#[test]
fn every_shipped_config_boots() {
    let all = configs();
    assert!(all.len() >= 8, "{all:?}");
    for path in all {
        let source = std::fs::read_to_string(&path).unwrap();
        assert_eq!(judge(&source), Ok(true), "{}", path.display());
    }
}

#[test]
fn the_generated_benchmark_tables_boot() {
    for (partitions, per_core) in [(40, 1), (200, 5), (1000, 5)] {
        let source = parseltongue::generate::table(partitions, per_core, 3, true);
        assert_eq!(judge(&source), Ok(true), "{partitions} partitions");
    }
}

/// Every whole-system error example, compiled without the checker: when the boot path
/// would refuse it, the checker refused it first (it refuses them all) and the
/// re-validator refuses it too, so it never reaches the boot path.
#[test]
fn what_the_boot_path_refuses_the_checker_refused_first() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/errors");
    let mut refused_at_boot = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let source = std::fs::read_to_string(&path).unwrap();
        let bytes = to_model(&parse(&source).file).to_bytes();
        if boot(&bytes).is_err() {
            refused_at_boot += 1;
            assert_eq!(judge(&source), Ok(false), "{}: the checker accepted it", path.display());
        }
    }
    assert!(refused_at_boot >= 40, "{refused_at_boot}");
}

/// Sampling channels of 16 MiB messages: four slots make a region just over 64 MiB, so a
/// 128 MiB BAR in the Linux partition's 256 MiB bridge window.
const BIG_TO_LINUX: &str = "channel c0 { kind sampling; from a; to l; message 16 MiB }\n";
const BIG_FROM_LINUX: &str = "channel c1 { kind sampling; from l; to a; message 16 MiB }\n";

/// Tables at the edges of every limit the issue lists: the checker's verdict and the
/// boot path's agree on each.
#[test]
fn edge_cases_are_refused_by_the_checker_or_boot() {
    let rt =
        |extra: &str| format!("partition a {{ kind rt; image \"a.elf\"; cores 0; memory 4 MiB; {extra} }}\n");
    let two = "partition b { kind rt; image \"b.elf\"; cores 1; memory 4 MiB }\n";
    let linux = |extra: &str| {
        format!("partition l {{ kind linux; kernel \"vmlinux\"; cores 2; memory 128 MiB; {extra} }}\n")
    };
    let refused = [
        // Console UART registers other than the base, with the default console or `console 0`.
        rt("io 0x3f9"),
        rt("io 0x3ff"),
        format!("platform {{ console 0 }}\n{}", rt("io 0x3fa-0x3fb")),
        format!("platform {{ console 0x2f8 }}\n{}", rt("io 0x2fc")),
        format!("platform {{ console 0xfffc }}\n{}", rt("")),
        // The hypervisor's own devices.
        rt("io 0xcf9"),
        rt("io 0x21"),
        rt("io 0xa0-0xa1"),
        rt("io 0x8900"),
        // RAM that fits only before the channel window is rounded to 2 MiB.
        format!(
            "platform {{ ram 41 MiB }}\nhypervisor {{ reserve 32 MiB }}\n{}{}channel c {{ kind sampling; from a; to b; message 8 B }}\n",
            rt(""),
            two
        ),
        // MMIO inside the partition's RAM, its channel window, beyond 2^48.
        rt("mmio 0x300000 size 4 KiB"),
        format!(
            "{}{}channel c {{ kind sampling; from a; to b; message 8 B }}\n",
            rt("mmio 0xc0000000 size 4 KiB"),
            two
        ),
        rt("mmio 0xfffffffff000 size 8 KiB"),
        rt("mmio 0xfee00000 size 4 KiB"),
        rt("mmio 0xfe000000 size 32 MiB"),
        rt("mmio 0xfec00000 size 4 KiB"),
        // Pinned RAM past the physical address width.
        "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB at 0xffffffffffe00000 }\n".to_string(),
        "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB at 0x10000000000000 }\n".to_string(),
        // Linux RAM beyond what EPT maps.
        format!("{}{}", rt(""), linux("").replace("128 MiB", "0x1000001 GiB")),
        // Pinned memory that splits the RAM so another partition fits nowhere.
        "platform { ram 64 MiB }\nhypervisor { reserve 32 MiB }\npartition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB at 0x1000000 }\npartition b { kind rt; image \"b.elf\"; cores 1; memory 24 MiB }\n".to_string(),
        // Stacks that leave no room for the image.
        "partition a { kind rt; image \"a.elf\"; cores 0-13; memory 2 MiB }\n".to_string(),
        // Linux on a scheduled core; Linux command lines.
        format!("{}{}schedule cores 2 {{ major_frame 1 ms; window l 0..1 ms }}\n", rt(""), linux("")),
        format!("{}{}", rt(""), linux(&format!("cmdline \"{}\"", "x".repeat(limits::LINUX_CMDLINE_BUDGET + 1)))),
        format!("{}{}", rt(""), linux("cmdline \"a\tb\"")),
        // File names.
        rt("").replace("a.elf", "../a.elf"),
        rt("").replace("a.elf", "/a.elf"),
        rt("").replace("a.elf", "a:b.elf"),
        rt("").replace("a.elf", "a//b.elf"),
        rt("").replace("a.elf", "a.elf."),
        format!("{}{}", rt(""), linux("initramfs \"..\\\\x.cpio\"")),
        // Names and channel counts the boot info cannot hold.
        format!("{}{}channel {} {{ kind sampling; from a; to b; message 8 B }}\n", rt(""), two, "c".repeat(33)),
        rt("").replace("partition a", &format!("partition {}", "a".repeat(33))),
        format!(
            "{}{}{}",
            rt(""),
            two,
            (0..17)
                .map(|i| format!("channel c{i} {{ kind queuing; from a; to b; message 8 B; depth {} }}\n", i + 1))
                .collect::<String>()
        ),
        // Cache ways whose count wraps a u8.
        rt("llc_ways 0-255"),
        rt("llc_ways 200-255"),
        rt("llc_ways 255"),
        // `linux tty` (removed) and PCI functions (nothing implements them).
        format!("{}{}channel c {{ kind sampling; from a; to l; message 8 B; linux tty }}\n", rt(""), linux("")),
        rt("pci \"00:03.0\""),
        // A Linux partition whose RAM reaches its bridge window (3.5 GiB) with a channel.
        format!(
            "{}{}channel c {{ kind sampling; from a; to l; message 8 B }}\n",
            rt(""),
            linux("").replace("128 MiB", "4 GiB")
        ),
        format!(
            "{}{}channel c {{ kind sampling; from l; to a; message 8 B }}\n",
            rt(""),
            linux("").replace("128 MiB", "3586 MiB")
        ),
        // Linux channels whose BARs (64 MiB + a page -> 128 MiB BARs) overflow the window.
        format!(
            "{}{}{BIG_TO_LINUX}{BIG_FROM_LINUX}channel c2 {{ kind queuing; depth 4; from a; to l; message 16 MiB }}\n",
            rt(""),
            linux("")
        ),
        // MMIO of a Linux partition with channels inside its bridge window.
        format!(
            "{}{}channel c {{ kind sampling; from a; to l; message 8 B }}\n",
            rt(""),
            linux("mmio 0xf0000000 size 4 KiB")
        ),
        // Persistent regions and args: on Linux, sizes and text the window or boot info
        // cannot hold, MMIO over the region, RAM that fits only without the region's block.
        format!("{}{}", rt(""), linux("persistent 64 KiB")),
        format!("{}{}", rt(""), linux("args \"x\"")),
        rt("persistent 0 B"),
        rt("persistent 5000 B"),
        rt("persistent 65 MiB"),
        rt(&format!("args \"{}\"", "x".repeat(limits::ARGS_MAX + 1))),
        rt("args \"a\tb\""),
        rt("persistent 64 KiB; mmio 0xd0000000 size 4 KiB"),
        format!("platform {{ ram 37 MiB }}\nhypervisor {{ reserve 32 MiB }}\n{}", rt("persistent 4 KiB")),
    ];
    for source in &refused {
        assert_eq!(judge(source), Ok(false), "the checker accepted:\n{source}");
    }
    let accepted = [
        rt("io 0x3f0-0x3f7"),
        rt("io 0x400-0x407"),
        format!("platform {{ console 0x2f8 }}\n{}", rt("io 0x3f8-0x3ff")),
        format!("platform {{ console 0xfff8 }}\n{}", rt("")),
        format!(
            "platform {{ ram 42 MiB }}\nhypervisor {{ reserve 32 MiB }}\n{}{}channel c {{ kind sampling; from a; to b; message 8 B }}\n",
            rt(""),
            two
        ),
        "platform { ram 64 MiB }\nhypervisor { reserve 32 MiB }\npartition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB at 0x0 }\npartition b { kind rt; image \"b.elf\"; cores 1; memory 24 MiB }\n".to_string(),
        rt("mmio 0x400000 size 4 KiB"),
        rt("mmio 0xc0000000 size 4 KiB"),
        rt("mmio 0xffffffffe000 size 8 KiB"),
        "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB at 0xfffffffc00000 }\n".to_string(),
        "partition a { kind rt; image \"a.elf\"; cores 0-11; memory 2 MiB }\n".to_string(),
        format!("{}{}", rt(""), linux(&format!("cmdline \"{}\"", "x".repeat(limits::LINUX_CMDLINE_BUDGET)))),
        format!("{}{}", rt(""), linux("initramfs \"boot/initramfs.cpio\"")),
        rt("").replace("a.elf", "guests/a b.elf"),
        format!("{}{}channel {} {{ kind sampling; from a; to b; message 8 B }}\n", rt(""), two, "c".repeat(32)),
        format!(
            "{}{}{}",
            rt(""),
            two,
            (0..16)
                .map(|i| format!("channel c{i} {{ kind queuing; from a; to b; message 8 B; depth {} }}\n", i + 1))
                .collect::<String>()
        ),
        rt("llc_ways 0-254"),
        rt("llc_ways 254"),
        format!("{}{}", rt(""), linux("").replace("128 MiB", "4 GiB")),
        // Linux at either end, sampling and queuing, several channels.
        format!(
            "{}{}channel up {{ kind sampling; from a; to l; message 8 B }}\nchannel down {{ kind queuing; from l; to a; message 64 B; depth 16; linux shm }}\nchannel big {{ kind queuing; from a; to l; message 1 KiB; depth 256 }}\n",
            rt(""),
            linux("")
        ),
        format!(
            "{}{}channel c {{ kind sampling; from l; to a; message 8 B }}\n",
            rt(""),
            linux("").replace("128 MiB", "3584 MiB")
        ),
        format!("{}{}{}{}", rt(""), linux(""), BIG_TO_LINUX, BIG_FROM_LINUX),
        format!(
            "{}{}channel c {{ kind sampling; from a; to l; message 8 B }}\n",
            rt(""),
            linux("mmio 0xf0010000 size 4 KiB")
        ),
        rt("persistent 4 KiB"),
        rt("persistent 64 MiB; args \"topics=orders:4,audit:1\""),
        rt(&format!("args \"{}\"", "x".repeat(limits::ARGS_MAX))),
        rt("persistent 64 KiB; mmio 0xd0010000 size 4 KiB"),
        format!("platform {{ ram 38 MiB }}\nhypervisor {{ reserve 32 MiB }}\n{}", rt("persistent 4 KiB")),
        format!(
            "{}{}channel c {{ kind sampling; from a; to b; message 8 B }}\n",
            rt("persistent 2 MiB; mmio 0xd0200000 size 4 KiB"),
            two
        ),
    ];
    for source in &accepted {
        assert_eq!(judge(source), Ok(true), "refused:\n{source}\n{:?}", compile_source(source).diagnostics);
    }
}

/// A value that is usually `safe` and sometimes one of `edges` (each hazard alone, so a
/// good share of tables passes every rule and reaches the boot path).
fn usually<T: Clone + std::fmt::Debug + 'static>(safe: T, edges: Vec<T>) -> BoxedStrategy<T> {
    let edge_count = edges.len();
    prop_oneof![
        (8 * edge_count as u32).max(1) => Just(safe),
        1 => proptest::sample::select(edges),
    ]
    .boxed()
}

/// A random table aimed at the edges of every limit.
fn edge_table() -> impl Strategy<Value = String> {
    let console = usually(None, vec![Some(0u32), Some(0x3f8), Some(0x2f8), Some(0xfff8), Some(0xfffc)]);
    let ram = usually(None, vec![Some(41u64), Some(42), Some(44), Some(47), Some(48), Some(600)]);
    let port = proptest::sample::select(vec![
        0x1fu32, 0x20, 0x21, 0x22, 0x9f, 0xa0, 0xa1, 0x2f8, 0x3f0, 0x3f7, 0x3f8, 0x3f9, 0x3ff, 0x400, 0xcf7,
        0xcf8, 0xcf9, 0xcff, 0xd00, 0x88ff, 0x8900, 0x8901, 0xfff8,
    ]);
    let io = usually(Vec::new(), vec![vec![(0x2f8u32, 8u32)]]).prop_flat_map(move |v| {
        if v.is_empty() {
            Just(Vec::new()).boxed()
        } else {
            proptest::collection::vec((port.clone(), 1u32..9), 1..2).boxed()
        }
    });
    let mmio = usually(
        None,
        vec![
            Some(2 * MIB),
            Some(4 * MIB),
            Some(6 * MIB),
            Some(0xbfff_f000),
            Some(0xc000_0000),
            Some(0xcfff_f000),
            Some(0xd000_0000),
            Some(0xffff_ffff_e000),
            Some(0xffff_ffff_f000),
            Some(0xfe00_0000),
            Some(0xfedf_f000),
            Some(0xfeef_f000),
        ],
    );
    let image = usually("a.elf", vec!["dir/a.elf", "../a.elf", "/a.elf", "a:b.elf", "a.", "a//b", "a b.elf"]);
    let name_len = usually(2usize, vec![31, 32, 33, 34]);
    let vcpus = usually(1u32, vec![11, 12, 13, 14, 16]);
    let memory = usually(4u64, vec![2, 6, 3072, 3074]);
    let ways = usually(
        None,
        vec![Some((0u32, 2u32)), Some((250, 4)), Some((253, 1)), Some((254, 0)), Some((255, 0))],
    );
    let pinned = usually(
        None,
        vec![Some(0x40_0000_0000u64), Some(0xf_ffff_ffc0_0000), Some(0x10_0000_0000_0000), Some(0x30_0000)],
    );
    let pci = usually(false, vec![true]);
    // Persistent regions (bytes) and args (length; `None`: a tab inside).
    let persistent = usually(
        None,
        vec![
            Some(4096u64),
            Some(64 << 10),
            Some(2 * MIB),
            Some(limits::PERSISTENT_MAX_BYTES),
            Some(limits::PERSISTENT_MAX_BYTES + 4096),
            Some(5000),
            Some(0),
        ],
    );
    let args = usually(Some(0usize), vec![Some(1), Some(limits::ARGS_MAX), Some(limits::ARGS_MAX + 1), None]);
    let keep = (persistent, args);
    let rt_partition = (name_len.clone(), image, vcpus, memory, io, mmio, ways, pinned, pci, keep);
    let linux_partition = proptest::option::of((
        usually(false, vec![true]),
        usually(128u64, vec![64, 3072, 3584, 3586, 4096]),
        usually(0usize, vec![40, limits::LINUX_CMDLINE_BUDGET, limits::LINUX_CMDLINE_BUDGET + 1]),
        usually(false, vec![true]),
        usually(false, vec![true]),
    ));
    let channel = (
        0usize..3,
        0usize..4,
        usually(64u64, vec![1, 4000, 1 << 20]),
        1u64..20,
        name_len,
        usually(0u8, vec![1, 2]),
        // Linux writes (when Linux is an end), sampling.
        usually(false, vec![true]),
        usually(false, vec![true]),
    );
    let channels = usually(3usize, vec![0, 16, 17, 20])
        .prop_flat_map(move |n| proptest::collection::vec(channel.clone(), n));
    let scheduled = usually(false, vec![true]);
    (console, ram, proptest::collection::vec(rt_partition, 1..4), linux_partition, channels, scheduled).prop_map(
        |(console, ram, rts, linux, channels, scheduled)| {
            let mut s = String::from("platform {\n cores 64\n");
            if let Some(c) = console {
                s.push_str(&format!(" console {c:#x}\n"));
            }
            if let Some(r) = ram {
                s.push_str(&format!(" ram {r} MiB\n"));
            }
            s.push_str("}\nhypervisor { reserve 32 MiB }\n");
            let mut names = Vec::new();
            for (i, (len, image, vcpus, mem, io, mmio, ways, pinned, pci, (persistent, args))) in rts.iter().enumerate() {
                let name = format!("p{i}{}", "x".repeat(len.saturating_sub(2)));
                let first = 16 * i as u32;
                s.push_str(&format!(
                    "partition {name} {{\n kind rt\n image \"{image}\"\n cores {first}-{}\n memory {mem} MiB",
                    first + vcpus - 1
                ));
                if let Some(base) = pinned {
                    s.push_str(&format!(" at {:#x}", base + i as u64 * 0x4000_0000));
                }
                s.push('\n');
                for (first, count) in io {
                    s.push_str(&format!(" io {first:#x}-{:#x}\n", first + count - 1));
                }
                if let Some(base) = mmio {
                    s.push_str(&format!(" mmio {base:#x} size 8 KiB\n"));
                }
                if let Some((first, extra)) = ways {
                    s.push_str(&format!(" llc_ways {}-{}\n", first + 2 * i as u32, first + 2 * i as u32 + extra));
                }
                if *pci {
                    s.push_str(" pci \"00:03.0\"\n");
                }
                if let Some(bytes) = persistent {
                    s.push_str(&format!(" persistent {bytes} B\n"));
                }
                match args {
                    Some(0) => {}
                    Some(n) => s.push_str(&format!(" args \"{}\"\n", "t".repeat(*n))),
                    None => s.push_str(" args \"a\tb\"\n"),
                }
                s.push_str("}\n");
                names.push(name);
            }
            let rt_count = names.len();
            if let Some((on_scheduled_core, mem, cmdline, initramfs, keeps)) = linux {
                let cores = if on_scheduled_core { "0" } else { "48-49" };
                s.push_str(&format!(
                    "partition linux {{\n kind linux\n kernel \"vmlinux\"\n cores {cores}\n memory {mem} MiB\n"
                ));
                if cmdline > 0 {
                    s.push_str(&format!(" cmdline \"{}\"\n", "y".repeat(cmdline)));
                }
                if initramfs {
                    s.push_str(" initramfs \"initramfs.cpio\"\n");
                }
                if keeps {
                    s.push_str(" persistent 64 KiB\n args \"x\"\n");
                }
                s.push_str("}\n");
                names.push("linux".to_string());
            }
            for (i, (from, to, msg, depth, len, view, linux_writes, sampling)) in channels.iter().enumerate() {
                // Mostly between real-time partitions; `to` 3 picks Linux when there is one,
                // at either end.
                let mut f = &names[*from % rt_count];
                let mut t = &names[(*from + 1 + *to) % names.len()];
                if f == t {
                    continue;
                }
                if *linux_writes && t == "linux" {
                    (f, t) = (t, f);
                }
                let name = format!("c{i}{}", "x".repeat(len.saturating_sub(2)));
                let view = ["", " linux shm\n", " linux tty\n"][*view as usize];
                let kind = if *sampling { "kind sampling".to_string() } else { format!("kind queuing\n depth {depth}") };
                s.push_str(&format!(
                    "channel {name} {{\n {kind}\n from {f}\n to {t}\n message {msg} B\n{view}}}\n"
                ));
            }
            if scheduled {
                s.push_str(&format!("schedule cores 0 {{\n major_frame 10 ms\n window {} 0..4 ms\n", names[0]));
                if names.last().is_some_and(|n| n == "linux") {
                    s.push_str(" window linux 5..9 ms\n");
                }
                s.push_str("}\n");
            }
            s
        },
    )
}

/// Mutations of the shipped configs: a line dropped or duplicated, or a number replaced
/// by an edge value of the limits.
fn mutated_config() -> impl Strategy<Value = String> {
    let sources: Vec<String> = configs().iter().map(|p| std::fs::read_to_string(p).unwrap()).collect();
    let edges = [
        "0",
        "1",
        "2",
        "3",
        "7",
        "16",
        "63",
        "64",
        "254",
        "255",
        "256",
        "0x3f9",
        "0x3ff",
        "0xcf9",
        "0x8900",
        "0xc0000000",
        "0xffffffffe000",
        "0xfffffffc00000",
        "3072",
        "3074",
        "65536",
    ];
    (0..sources.len(), 0usize..200, 0usize..3, 0..edges.len()).prop_map(move |(which, at, how, edge)| {
        let source = &sources[which];
        let lines: Vec<&str> = source.lines().collect();
        let at = at % lines.len().max(1);
        let mut out: Vec<String> = lines.iter().map(|l| l.to_string()).collect();
        match how {
            0 => {
                out.remove(at);
            }
            1 => out.insert(at, lines[at].to_string()),
            _ => {
                let line = &out[at];
                if let Some(pos) = line.find(|c: char| c.is_ascii_digit()) {
                    let end = line[pos..]
                        .find(|c: char| !c.is_ascii_alphanumeric())
                        .map_or(line.len(), |e| pos + e);
                    out[at] = format!("{}{}{}", &line[..pos], edges[edge], &line[end..]);
                }
            }
        }
        out.join("\n")
    })
}

/// Runs `cases` tables from `strategy` through the checker and, when accepted, the boot
/// path. Returns (accepted, refused by the checker); panics on an accepted table that does
/// not boot, and on a checker or boot-path panic (the test fails).
fn campaign(name: &str, strategy: impl Strategy<Value = String>, cases: usize) -> (usize, usize) {
    use proptest::strategy::ValueTree;
    let mut runner = proptest::test_runner::TestRunner::default();
    let (mut accepted, mut refused) = (0, 0);
    for _ in 0..cases {
        let source = strategy.new_tree(&mut runner).expect("strategy").current();
        match judge(&source) {
            Ok(true) => accepted += 1,
            Ok(false) => refused += 1,
            Err(e) => panic!("{name}: {e}"),
        }
    }
    eprintln!("{name}: {cases} tables, {accepted} accepted and booted, {refused} refused by the checker, 0 accepted-but-unbootable");
    (accepted, refused)
}

/// Cases per campaign: `FUZZ_CASES` (default 400).
fn cases() -> usize {
    std::env::var("FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(400)
}

#[test]
fn generated_tables_accepted_by_the_checker_boot() {
    let n = cases();
    let (accepted, refused) = campaign("edge tables", edge_table(), n);
    // The corpus must exercise both verdicts, or it proves nothing.
    assert!(accepted * 20 >= n && refused * 20 >= n, "{accepted} accepted, {refused} refused");
}

#[test]
fn mutated_configs_accepted_by_the_checker_boot() {
    let n = cases();
    let (accepted, refused) = campaign("mutated configs", mutated_config(), n);
    assert!(accepted * 20 >= n && refused * 20 >= n, "{accepted} accepted, {refused} refused");
}
