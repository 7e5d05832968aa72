//! Targeted rule semantics beyond the one-example-per-code tests: what is allowed at the
//! edges, and what the compiler writes.

use hallows_abi::health::{Action, EventClass};
use hallows_abi::layout::PAGE_SIZE;
use hallows_abi::table::*;
use parseltongue::compile::compile_source;
use parseltongue::diagnostics::Code;

const A: &str = "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB }\n";

fn codes(src: &str) -> Vec<Code> {
    compile_source(src).diagnostics.iter().map(|d| d.code).collect()
}

fn model(src: &str) -> TableModel {
    let c = compile_source(src);
    assert!(c.diagnostics.is_empty(), "{:?}", c.diagnostics);
    let m = c.model.unwrap();
    Table::load(&m.to_bytes()).expect("loads");
    m
}

#[test]
fn adjacent_windows_and_ranges_are_fine() {
    let src = format!(
        "{A}partition b {{ kind rt; image \"b.elf\"; cores 0; memory 4 MiB at 0x4060_0000; io 0x300-0x307; mmio 0xfe001000 size 4 KiB }}
partition c {{ kind rt; image \"c.elf\"; cores 1; memory 2 MiB at 0x4040_0000; io 0x308; mmio 0xfe000000 size 4 KiB }}
schedule cores 0 {{ major_frame 10 ms; window a 0..5 ms; window b 5..10 ms }}
"
    );
    assert_eq!(codes(&src), vec![]);
}

#[test]
fn windows_out_of_order_compile_sorted() {
    let src = format!("{A}partition b {{ kind rt; image \"b.elf\"; cores 0; memory 4 MiB }}\nschedule cores 0 {{ major_frame 10 ms; window b 6..9 ms; window a 1..5 ms }}\n");
    let m = model(&src);
    let offsets: Vec<u64> = m.schedules[0].windows.iter().map(|w| w.offset_ns).collect();
    assert_eq!(offsets, [1_000_000, 6_000_000]);
    assert_eq!(m.schedules[0].windows[0].partition, 0);
}

#[test]
fn windows_with_the_same_start_overlap() {
    let src = format!("{A}schedule cores 0 {{ major_frame 10 ms; window a 0..2 ms; window a 0..1 ms }}\n");
    assert_eq!(codes(&src), vec![Code::WindowOverlap]);
}

#[test]
fn a_third_owner_of_a_core_is_reported_too() {
    let src = format!(
        "{A}partition b {{ kind rt; image \"b.elf\"; cores 0; memory 4 MiB }}\npartition c {{ kind rt; image \"c.elf\"; cores 0; memory 4 MiB }}\n"
    );
    assert_eq!(codes(&src), vec![Code::CoreShared, Code::CoreShared]);
}

#[test]
fn ways_shared_inside_one_schedule_only() {
    let sched = "schedule cores 1-2 { major_frame 10 ms; window x 0..5 ms; window y 5..10 ms }\n";
    let x = "partition x { kind rt; image \"x.elf\"; cores 1-2; memory 2 MiB; llc_ways 0-1 }\n";
    // y on the schedule's cores only: takes turns with x, may share its ways.
    let y = "partition y { kind rt; image \"y.elf\"; cores 1; memory 2 MiB; llc_ways 1-2 }\n";
    assert_eq!(codes(&format!("{x}{y}{sched}")), vec![]);
    // y also on a dedicated core 3: it can run while x runs.
    let y3 = "partition y { kind rt; image \"y.elf\"; cores 1, 3; memory 2 MiB; llc_ways 1-2 }\n";
    assert_eq!(codes(&format!("{x}{y3}{sched}")), vec![Code::WaysOverlap]);
    // Two dedicated partitions never share.
    let p = "partition p { kind rt; image \"p.elf\"; cores 5; memory 2 MiB; llc_ways 4 }\n";
    let q = "partition q { kind rt; image \"q.elf\"; cores 6; memory 2 MiB; llc_ways 3-4 }\n";
    assert_eq!(codes(&format!("{p}{q}")), vec![Code::WaysOverlap]);
}

#[test]
fn a_partition_may_take_part_of_a_schedule() {
    let src = "partition x { kind rt; image \"x.elf\"; cores 2; memory 2 MiB }\npartition y { kind rt; image \"y.elf\"; cores 3; memory 2 MiB }\nschedule cores 2-3 { major_frame 1 ms; window x 0..500 us; window y 500..1000 us }\n";
    let m = model(src);
    assert_eq!(m.schedules[0].cores, [2, 3]);
}

#[test]
fn health_defaults_overrides_and_privileges() {
    let src = "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB; on panic halt_system; on deadline_miss halt; privileges query, halt_system }\n";
    let m = model(src);
    let p = &m.partitions[0];
    for class in EventClass::ALL {
        let want = match class {
            EventClass::Panic => Action::HaltSystem,
            EventClass::DeadlineMiss => Action::HaltPartition,
            other => other.default_action(),
        };
        assert_eq!(p.hm_actions[class as usize], want as u8, "{}", class.name());
    }
    assert_eq!(p.privileges, PRIV_QUERY | PRIV_HALT_SYSTEM);
}

#[test]
fn manage_reaches_the_table_and_its_reader() {
    // `model` also loads the bytes with the hypervisor's reader and re-validator.
    let m = model("partition op { kind rt; image \"op.elf\"; cores 0; memory 4 MiB; privileges manage }\n");
    assert_eq!(m.partitions[0].privileges, PRIV_MANAGE);
    let m = model(
        "partition l { kind linux; kernel \"vmlinux\"; cores 0; memory 64 MiB; privileges manage, query, restart, halt_system }\n",
    );
    assert_eq!(m.partitions[0].privileges, PRIV_ALL);
}

#[test]
fn every_operator_after_the_first_is_warned_about() {
    let operator = |name: &str, core: u32, privileges: &str| {
        format!("partition {name} {{ kind rt; image \"{name}.elf\"; cores {core}; memory 4 MiB; privileges {privileges} }}\n")
    };
    // One operator, even one that writes the word twice, is what the warning asks for.
    let one = format!("{}{}", operator("a", 0, "manage, query, manage"), operator("b", 1, "query, restart"));
    assert_eq!(codes(&one), vec![]);
    // Linux beside one RT operator is the hybrid shape: no warning.
    let hybrid = one.clone()
        + "partition l { kind linux; kernel \"vmlinux\"; cores 2; memory 64 MiB; privileges manage }\n";
    assert_eq!(codes(&hybrid), vec![]);
    let three = format!(
        "{}{}{}",
        operator("a", 0, "query"),
        operator("b", 1, "manage"),
        operator("c", 2, "restart, manage")
    ) + &operator("d", 3, "manage");
    let c = compile_source(&three);
    assert!(c.model.is_some(), "a warning, not an error");
    let warned: Vec<(&str, &str)> = c
        .diagnostics
        .iter()
        .map(|d| {
            assert_eq!(d.code, Code::SeveralManagers);
            assert_eq!(&three[d.span.start..d.span.end], "manage");
            assert_eq!(&three[d.related[0].0.start..d.related[0].0.end], "manage");
            (d.message.split('`').nth(1).unwrap(), d.message.split('`').nth(5).unwrap())
        })
        .collect();
    // Each names itself and the first operator, `b`.
    assert_eq!(warned, vec![("c", "b"), ("d", "b")]);
}

#[test]
fn channels_get_ascending_page_aligned_regions_and_linux_views() {
    let src = "partition a { kind rt; image \"a.elf\"; cores 0; memory 4 MiB }
partition l { kind linux; kernel \"vmlinux\"; cores 1; memory 64 MiB }
channel big { kind queuing; from a; to l; message 1 KiB; depth 100 }
channel s { kind sampling; from l; to a; message 8 B; linux tty }
channel t { kind sampling; from a; to l; message 8 B }
";
    // `linux tty` still parses (to be reported clearly) but is no longer in the language:
    // the checker refuses it, and the re-validator refuses its table view.
    assert_eq!(codes(src), vec![Code::ChannelLinuxTty]);
    let m = parseltongue::compile::to_model(&parseltongue::parser::parse(src).file);
    assert!(matches!(
        Table::load(&m.to_bytes()),
        Err(hallows_abi::table::TableError::Invalid(hallows_abi::table::Violation::ChannelBadLinuxView {
            channel: 1
        }))
    ));
    // Without it, channels at either end of the Linux partition compile and load.
    let shm = src.replace("; linux tty", "");
    assert_eq!(codes(&shm), vec![]);
    let loaded = parseltongue::compile::to_model(&parseltongue::parser::parse(&shm).file).to_bytes();
    assert!(Table::load(&loaded).is_ok());
    let c = &m.channels;
    assert_eq!(c[0].bytes, hallows_abi::channel::region_bytes(true, 1024, 100));
    assert_eq!(c[0].window_offset, 0);
    assert_eq!(c[1].window_offset, c[0].bytes);
    assert_eq!(c[2].window_offset, c[1].window_offset + c[1].bytes);
    assert!(c.iter().all(|c| c.window_offset % PAGE_SIZE == 0 && c.bytes % PAGE_SIZE == 0));
    assert_eq!(
        (c[0].linux_view, c[1].linux_view, c[2].linux_view),
        (LINUX_VIEW_SHM, LINUX_VIEW_TTY, LINUX_VIEW_SHM)
    );
    assert_eq!((c[1].kind, c[1].depth), (CHANNEL_SAMPLING, 1));
    assert_eq!(m.partitions[1].image, "vmlinux");
}

#[test]
fn ram_budget_counts_channels_and_the_reservation() {
    // 60 MiB of partitions + 4 MiB reservation fits 64 MiB exactly; one channel page does not.
    let base = "platform { ram 64 MiB }\nhypervisor { reserve 4 MiB }\npartition a { kind rt; image \"a.elf\"; cores 0; memory 30 MiB }\npartition b { kind rt; image \"b.elf\"; cores 1; memory 30 MiB }\n";
    assert_eq!(codes(base), vec![]);
    let with_channel = format!("{base}channel c {{ kind sampling; from a; to b; message 8 B }}\n");
    assert_eq!(codes(&with_channel), vec![Code::RamExhausted]);
}

#[test]
fn platform_values_are_compiled() {
    let src = "platform { cores 8; ram 2 GiB; llc_ways 12; cat_min_ways 2; console 0x2f8; require_cat }\nhypervisor { reserve 64 MiB; log_level debug }\npartition a { kind rt; image \"a.elf\"; cores 7; memory 4 MiB; llc_ways 10-11 }\n";
    let m = model(src);
    let p = m.platform;
    assert_eq!((p.cores.get(), p.ram_bytes.get(), p.llc_ways, p.cat_min_ways), (8, 2 << 30, 12, 2));
    assert_eq!((p.console_port.get(), p.hv_reserved_bytes.get(), p.log_level), (0x2f8, 64 << 20, LOG_DEBUG));
    assert_eq!(p.flags & PLATFORM_REQUIRE_CAT, PLATFORM_REQUIRE_CAT);
    assert_eq!(m.partitions[0].llc_ways, Some((10, 2)));
}

#[test]
fn auto_platform_compiles_to_zero() {
    let m = model(A);
    let p = m.platform;
    assert_eq!((p.cores.get(), p.ram_bytes.get(), p.llc_ways, p.cat_min_ways), (0, 0, 0, 0));
    assert_eq!((p.console_port.get(), p.hv_reserved_bytes.get(), p.log_level), (0x3f8, 32 << 20, LOG_INFO));
}
