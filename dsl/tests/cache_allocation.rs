//! Cache allocation (issue 13) on every shipped table: each config in `configs/` goes
//! through the hypervisor's boot-time class-of-service plan (`hallows_core::cat::plan`)
//! on three CPUs (none, `bochs-rdt`'s 11-way L3 CAT, a server with CDP and MBA). When
//! the plan is accepted, every MSR write it makes runs through the hardware model
//! (`hallows_core::cat::hardware::RdtMsrs`, #GP on what the SDM forbids); each partition
//! with ways must then own a class whose masks are exactly its ways, the others class 0;
//! and the cores' window switches over three major frames must write IA32_PQR_ASSOC
//! exactly when the class changes. When it is refused, the reason must name a partition
//! or the CPU's limit.

mod common;

use hallows_abi::table::Table;
use hallows_core::cat::hardware::RdtMsrs;
use hallows_core::cat::plan::{plan, CachePlan, Notice, Refusal};
use hallows_core::cat::switch::ClassTracker;
use hallows_core::cat::{CatInfo, MbaInfo};
use parseltongue::compile::compile_source;

const BOCHS_RDT: CatInfo = CatInfo { ways: 11, max_cos: 15, shareable_mask: 0x600, cdp: false };
const SERVER: CatInfo = CatInfo { ways: 20, max_cos: 15, shareable_mask: 0xC0000, cdp: true };
const SERVER_MBA: MbaInfo = MbaInfo { max_delay: 90, max_cos: 15, linear: true };

fn mask(first: u8, count: u8) -> u32 {
    (((1u64 << count) - 1) << first) as u32
}

/// Checks an accepted plan on `cat`: programs it and walks every core's schedule.
fn check_plan(name: &str, table: &Table, plan: &CachePlan, cat: CatInfo, mba: Option<MbaInfo>) {
    let mut cpu = RdtMsrs::new(cat, mba);
    for w in plan.boot_writes() {
        cpu.write(w.msr, w.value).unwrap_or_else(|gp| panic!("{name}: #GP on {gp:x?}"));
    }
    let mut owned = Vec::new();
    for (i, p) in table.partitions.iter().enumerate() {
        let cos = plan.class_of(i);
        let (data, code) = cpu.masks_of(cos).unwrap();
        if p.llc_way_count == 0 {
            if table.cache_fields(i).mba_percent == 0 {
                assert_eq!(cos, 0, "{name}: partition {i} without ways is in class 0");
            }
            continue;
        }
        assert!(cos != 0 && !owned.contains(&cos), "{name}: partition {i} has a class of its own");
        owned.push(cos);
        assert_eq!(data, mask(p.llc_first_way, p.llc_way_count), "{name}: partition {i}'s data ways");
        let want_code = match table.code_ways(i) {
            Some((f, c)) if plan.cdp => mask(f, c),
            _ => data,
        };
        assert_eq!(code, want_code, "{name}: partition {i}'s code ways");
    }
    // Every scheduled core: three major frames of windows through one tracker.
    for s in table.schedules.iter() {
        let windows: Vec<usize> = table.schedule_windows(s).map(|w| w.partition.get() as usize).collect();
        let mut core = ClassTracker::default();
        let mut previous = None;
        for &p in windows.iter().cycle().take(windows.len() * 3) {
            let class = plan.class_of(p);
            let write = core.enter(Some(class));
            assert_eq!(write.is_some(), previous != Some(class), "{name}: a write exactly on a class change");
            if let Some(w) = write {
                cpu.write(w.msr, w.value).unwrap_or_else(|gp| panic!("{name}: #GP on {gp:x?}"));
            }
            assert_eq!(cpu.current_class(), class);
            previous = Some(class);
        }
    }
}

#[test]
fn every_config_plans_or_is_refused_with_a_reason() {
    let mut planned_on_bochs_rdt = 0;
    for path in common::configs() {
        let name = path.display().to_string();
        let source = std::fs::read_to_string(&path).unwrap();
        let Some(model) = compile_source(&source).model else { panic!("{name} does not compile") };
        let bytes = model.to_bytes();
        let table = Table::load(&bytes).unwrap();
        let uses_ways = table.partitions.iter().any(|p| p.llc_way_count != 0);

        // No CAT: nothing is programmed; a notice when the table has ways.
        let none = plan(&table, None, None);
        match &none {
            Ok(d) => {
                assert!(d.plan.is_none(), "{name}");
                assert_eq!(d.notices.contains(&Notice::NoCat), uses_ways, "{name}: {:?}", d.notices);
            }
            Err(r) => assert_eq!(*r, Refusal::NoCat, "{name}: only `require_cat` refuses a CPU without CAT"),
        }

        for (cat, mba) in [(BOCHS_RDT, None), (SERVER, Some(SERVER_MBA))] {
            match plan(&table, Some(cat), mba) {
                Ok(d) => {
                    if let Some(p) = &d.plan {
                        check_plan(&name, &table, p, cat, mba);
                        if cat == BOCHS_RDT {
                            planned_on_bochs_rdt += 1;
                        }
                    } else {
                        assert!(!uses_ways, "{name}: ways but no plan");
                    }
                }
                Err(r) => {
                    let text = r.to_string();
                    assert!(
                        text.contains("partition ") || text.contains("this CPU"),
                        "{name}: a refusal says who and what the CPU offers: {text}"
                    );
                }
            }
        }
    }
    assert!(planned_on_bochs_rdt >= 2, "the shipped configs exercise CAT (cat.pt, the server example)");
}

#[test]
fn the_emulator_table_gets_the_classes_its_scenario_checks() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/tests/cat.pt");
    let bytes = compile_source(&std::fs::read_to_string(path).unwrap()).model.unwrap().to_bytes();
    let table = Table::load(&bytes).unwrap();
    let d = plan(&table, Some(BOCHS_RDT), None).unwrap();
    assert!(d.notices.is_empty());
    let p = d.plan.unwrap();
    // hello, sensor, logger, rogue_pqr (tests/run `cat` greps these in the Bochs log).
    assert_eq!(p.partition_class, [1, 2, 3, 0]);
    let masks: Vec<u32> = p.classes.iter().map(|c| c.data).collect();
    assert_eq!(masks, [0x700, 0x003, 0x01C, 0x0E0]);
}

#[test]
fn the_server_example_fills_every_way() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/examples/two-socket-server.pt");
    let bytes = compile_source(&std::fs::read_to_string(path).unwrap()).model.unwrap().to_bytes();
    let table = Table::load(&bytes).unwrap();
    let outcome = plan(&table, Some(BOCHS_RDT), None);
    // Its partitions use all 11 ways; whoever has none would share class 0 with the
    // hypervisor, and none is left.
    match outcome {
        Ok(d) => assert_eq!(d.notices, [Notice::HypervisorSharesAllWays]),
        Err(r) => assert!(matches!(r, Refusal::NoWaysLeft { .. }), "{r}"),
    }
    assert_eq!(plan(&table, None, None), Err(Refusal::NoCat), "it says require_cat");
}
