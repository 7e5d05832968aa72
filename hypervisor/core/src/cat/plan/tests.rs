use super::*;
use crate::cat::hardware::RdtMsrs;
use crate::cat::switch::ClassTracker;
use crate::cat::IA32_PQR_ASSOC;
use hallows_abi::health::EventClass;
use hallows_abi::table::*;
use proptest::prelude::*;
use zerocopy::little_endian::{U16, U32, U64};

/// `bochs-rdt`: 11 ways, COS 0..=15, ways 9-10 shared with I/O, no CDP, no MBA.
const BOCHS_RDT: CatInfo = CatInfo { ways: 11, max_cos: 15, shareable_mask: 0x600, cdp: false };
/// A server part with CDP and linear MBA (delays 0..=90 by 10, 8 MBA classes).
const SERVER: CatInfo = CatInfo { ways: 12, max_cos: 15, shareable_mask: 0xC00, cdp: true };
const SERVER_MBA: MbaInfo = MbaInfo { max_delay: 90, max_cos: 7, linear: true };

#[derive(Clone, Copy, Debug, Default)]
struct Part {
    ways: Option<(u8, u8)>,
    code: Option<(u8, u8)>,
    mba: u8,
}

fn ways(first: u8, count: u8) -> Part {
    Part { ways: Some((first, count)), ..Default::default() }
}

/// One partition per dedicated core (so no two may share ways).
fn table_bytes(parts: &[Part], flags: u8, hv: Option<(u8, u8)>, min: u8) -> Vec<u8> {
    let (hv_first, hv_count) = hv.unwrap_or((0, 0));
    TableModel {
        platform: Platform {
            cores: U32::new(parts.len() as u32),
            console_port: U16::new(0x3f8),
            cat_min_ways: min,
            hv_reserved_bytes: U64::new(32 << 20),
            log_level: LOG_INFO,
            flags,
            hv_llc_first_way: hv_first,
            hv_llc_way_count: hv_count,
            ..Default::default()
        },
        partitions: parts
            .iter()
            .enumerate()
            .map(|(i, p)| PartitionModel {
                name: format!("p{i}"),
                kind: KIND_RT,
                hm_actions: EventClass::ALL.map(|c| c.default_action() as u8),
                cores: vec![i as u32],
                ram_bytes: 4 << 20,
                image: "p.elf".into(),
                llc_ways: p.ways,
                llc_code_ways: p.code,
                mba_percent: p.mba,
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
    .to_bytes()
}

fn decide(bytes: &[u8], cat: Option<CatInfo>, mba: Option<MbaInfo>) -> Result<Decision, Refusal> {
    let table = Table::load(bytes).expect("a valid table");
    plan(&table, cat, mba)
}

/// Programs `plan` into a model of the CPU; panics on any #GP.
fn program(plan: &CachePlan, cat: CatInfo, mba: Option<MbaInfo>) -> RdtMsrs {
    let mut m = RdtMsrs::new(cat, mba);
    for w in plan.boot_writes() {
        m.write(w.msr, w.value).unwrap_or_else(|gp| panic!("#GP on {gp:x?}"));
    }
    m
}

#[test]
fn bochs_rdt_two_partitions_and_the_rest_for_class_0() {
    let bytes = table_bytes(&[ways(0, 4), ways(4, 4), Part::default()], 0, None, 0);
    let d = decide(&bytes, Some(BOCHS_RDT), None).unwrap();
    assert!(d.notices.is_empty());
    let plan = d.plan.unwrap();
    assert_eq!(plan.partition_class, [1, 2, 0]);
    assert_eq!(plan.classes.iter().map(|c| c.data).collect::<Vec<_>>(), [0x700, 0x00F, 0x0F0]);
    assert_eq!(plan.classes[0].io_shared, 0x600, "class 0 holds the I/O-shared ways");
    assert_eq!(plan.classes[1].io_shared, 0);
    assert_eq!(
        plan.boot_writes(),
        [
            MsrWrite { msr: 0xC90, value: 0x700 },
            MsrWrite { msr: 0xC91, value: 0x00F },
            MsrWrite { msr: 0xC92, value: 0x0F0 }
        ]
    );
    let m = program(&plan, BOCHS_RDT, None);
    assert_eq!(m.masks_of(2), Some((0xF0, 0xF0)));
    assert_eq!(m.masks_of(3), Some((0x7FF, 0x7FF)), "unused classes keep their reset mask");
    assert_eq!(plan.class_of(7), 0, "unknown partition: the shared class");
    assert_eq!(format!("{}", WayRange(0x0F0)), "4-7");
    assert_eq!(format!("{}", WayRange(0x100)), "8");
}

#[test]
fn without_cat_a_notice_or_a_refusal() {
    let with_ways = table_bytes(&[ways(0, 2)], 0, None, 0);
    assert_eq!(decide(&with_ways, None, None), Ok(Decision { plan: None, notices: vec![Notice::NoCat] }));
    let without = table_bytes(&[Part::default()], 0, None, 0);
    assert_eq!(decide(&without, None, None), Ok(Decision { plan: None, notices: vec![] }));
    assert_eq!(decide(&without, Some(BOCHS_RDT), None), Ok(Decision { plan: None, notices: vec![] }));
    let required = table_bytes(&[Part::default()], PLATFORM_REQUIRE_CAT, None, 0);
    assert_eq!(decide(&required, None, None), Err(Refusal::NoCat));
    assert!(Refusal::NoCat.to_string().contains("no L3 CAT"));
}

#[test]
fn more_partitions_with_ways_than_classes() {
    let cpu = CatInfo { ways: 20, max_cos: 3, shareable_mask: 0, cdp: false };
    let bytes = table_bytes(&[ways(0, 1), ways(1, 1), ways(2, 1), ways(3, 1)], 0, None, 0);
    let refusal = decide(&bytes, Some(cpu), None).unwrap_err();
    assert_eq!(
        refusal,
        Refusal::TooManyClasses { partition: "p3".into(), needed: 4, max_cos: 3, cdp: false }
    );
    assert_eq!(
        refusal.to_string(),
        "partition p3: 4 partitions need their own class of service, this CPU offers 3 besides the hypervisor's class 0"
    );
    let three = table_bytes(&[ways(0, 1), ways(1, 1), ways(2, 1)], 0, None, 0);
    assert_eq!(decide(&three, Some(cpu), None).unwrap().plan.unwrap().classes.len(), 4);
}

#[test]
fn ways_beyond_the_cpu_or_narrower_than_the_minimum() {
    // The table says `llc_ways auto`: only the CPU can refuse ways 8-11.
    let bytes = table_bytes(&[ways(8, 4)], 0, None, 0);
    let r = decide(&bytes, Some(BOCHS_RDT), None).unwrap_err();
    assert_eq!(
        r,
        Refusal::Ways {
            partition: "p0".into(),
            code: false,
            error: CatError::OutOfRange { first: 8, count: 4, ways: 11 }
        }
    );
    assert_eq!(r.to_string(), "partition p0: LLC ways 8..12 beyond the CPU's 11");
    let hv = table_bytes(&[ways(0, 2)], 0, Some((10, 2)), 0);
    assert!(matches!(decide(&hv, Some(BOCHS_RDT), None), Err(Refusal::HypervisorWays { .. })));
}

#[test]
fn class_0_takes_the_widest_free_run_or_what_the_table_says() {
    let middle = table_bytes(&[ways(3, 3)], 0, None, 0);
    let p = decide(&middle, Some(BOCHS_RDT), None).unwrap().plan.unwrap();
    assert_eq!(p.classes[0].data, 0x7C0, "ways 6-10, not the shorter 0-2");
    let told = table_bytes(&[ways(3, 3)], 0, Some((0, 3)), 0);
    assert_eq!(decide(&told, Some(BOCHS_RDT), None).unwrap().plan.unwrap().classes[0].data, 0x7);
}

#[test]
fn no_way_left_for_class_0() {
    let all = [ways(0, 6), ways(6, 5)];
    let d = decide(&table_bytes(&all, 0, None, 0), Some(BOCHS_RDT), None).unwrap();
    assert_eq!(d.notices, [Notice::HypervisorSharesAllWays]);
    assert_eq!(d.plan.unwrap().classes[0].data, 0x7FF);
    let with_wayless = [ways(0, 6), ways(6, 5), Part::default()];
    let r = decide(&table_bytes(&with_wayless, 0, None, 0), Some(BOCHS_RDT), None).unwrap_err();
    assert_eq!(r, Refusal::NoWaysLeft { partition: "p2".into(), min: 1 });
    // One free way, but the minimum width is 2.
    let narrow = [ways(0, 6), ways(6, 4), Part::default()];
    assert!(matches!(
        decide(&table_bytes(&narrow, 0, None, 2), Some(BOCHS_RDT), None),
        Err(Refusal::NoWaysLeft { min: 2, .. })
    ));
}

#[test]
fn cdp_gives_code_and_data_masks() {
    let parts = [Part { ways: Some((0, 2)), code: Some((2, 2)), mba: 0 }, ways(4, 2)];
    let bytes = table_bytes(&parts, PLATFORM_CDP, None, 0);
    let plan = decide(&bytes, Some(SERVER), None).unwrap().plan.unwrap();
    assert!(plan.cdp);
    let writes = plan.boot_writes();
    assert_eq!(writes[0], MsrWrite { msr: IA32_L3_QOS_CFG, value: 1 }, "CDP first");
    assert_eq!(writes[3..5], [MsrWrite { msr: 0xC92, value: 0x3 }, MsrWrite { msr: 0xC93, value: 0xC }]);
    let m = program(&plan, SERVER, None);
    assert_eq!(m.masks_of(1), Some((0x3, 0xC)));
    assert_eq!(m.masks_of(2), Some((0x30, 0x30)), "no code ways: code uses the data ways");
    assert_eq!(m.masks_of(0), Some((0xFC0, 0xFC0)));
    // CDP halves the classes: 8 partitions do not fit 15 classes any more.
    let cpu = CatInfo { ways: 16, ..SERVER };
    let eight: Vec<Part> = (0..8).map(|i| ways(i * 2, 2)).collect();
    let bytes = table_bytes(&eight, PLATFORM_CDP, None, 0);
    assert!(matches!(
        decide(&bytes, Some(cpu), None),
        Err(Refusal::TooManyClasses { max_cos: 7, cdp: true, .. })
    ));
    let bytes = table_bytes(&eight, 0, None, 0);
    assert!(decide(&bytes, Some(cpu), None).is_ok(), "without CDP 15 classes");
}

#[test]
fn cdp_asked_on_a_cpu_without_it() {
    let parts = [Part { ways: Some((0, 2)), code: Some((2, 2)), mba: 0 }];
    let d = decide(&table_bytes(&parts, PLATFORM_CDP, None, 0), Some(BOCHS_RDT), None).unwrap();
    assert_eq!(d.notices, [Notice::NoCdp]);
    let plan = d.plan.unwrap();
    assert!(!plan.cdp);
    assert_eq!(plan.classes[1].code, 0x3, "code shares the data ways");
    program(&plan, BOCHS_RDT, None);
    let required = table_bytes(&parts, PLATFORM_CDP | PLATFORM_REQUIRE_CAT, None, 0);
    assert_eq!(decide(&required, Some(BOCHS_RDT), None), Err(Refusal::NoCdp));
    // CDP with a single mask register has no class to give (found by the property below).
    let one_register = CatInfo { max_cos: 0, ..SERVER };
    let wayless = table_bytes(&[Part::default()], PLATFORM_CDP, Some((0, 1)), 0);
    let d = decide(&wayless, Some(one_register), None).unwrap();
    assert_eq!(d.notices, [Notice::NoCdp]);
    program(&d.plan.unwrap(), one_register, None);
}

#[test]
fn mba_shares_become_delays() {
    let parts = [
        Part { ways: Some((0, 2)), code: None, mba: 50 },
        Part { mba: 30, ..Default::default() },
        ways(2, 2),
    ];
    let bytes = table_bytes(&parts, 0, None, 0);
    let plan = decide(&bytes, Some(SERVER), Some(SERVER_MBA)).unwrap().plan.unwrap();
    assert_eq!(plan.partition_class, [1, 2, 3], "a share alone earns a class");
    assert_eq!(
        plan.classes.iter().map(|c| c.mba_delay).collect::<Vec<_>>(),
        [Some(0), Some(50), Some(70), Some(0)]
    );
    assert_eq!(plan.classes[2].data, plan.classes[0].data, "no ways: class 0's mask");
    let m = program(&plan, SERVER, Some(SERVER_MBA));
    assert_eq!(m.mba_delay(2), Some(70));
    // 25% is between the CPU's steps.
    let odd = table_bytes(&[Part { mba: 25, ..ways(0, 2) }], 0, None, 0);
    let r = decide(&odd, Some(SERVER), Some(SERVER_MBA)).unwrap_err();
    assert_eq!(
        r.to_string(),
        "partition p0: memory bandwidth 25% is not expressible; this CPU offers 10% to 100% in steps of 10%"
    );
    // Without MBA: a notice, or a refusal under require_cat.
    let d = decide(&bytes, Some(SERVER), None).unwrap();
    assert_eq!(d.notices, [Notice::NoMba { linear_missing: false }]);
    assert_eq!(d.plan.unwrap().partition_class, [1, 0, 2], "without MBA a share alone earns nothing");
    let nonlinear = MbaInfo { linear: false, ..SERVER_MBA };
    let required = table_bytes(&parts, PLATFORM_REQUIRE_CAT, None, 0);
    assert_eq!(
        decide(&required, Some(SERVER), Some(nonlinear)),
        Err(Refusal::NoMba { partition: "p0".into(), linear_missing: true })
    );
}

#[test]
fn mba_classes_beyond_the_mba_registers() {
    let few = MbaInfo { max_cos: 1, ..SERVER_MBA };
    let parts = [ways(0, 2), Part { mba: 50, ..ways(2, 2) }];
    let r = decide(&table_bytes(&parts, 0, None, 0), Some(SERVER), Some(few)).unwrap_err();
    assert_eq!(r, Refusal::MbaClass { partition: "p1".into(), cos: 2, max_cos: 1 });
    // A class beyond MBA's registers without a share is simply not throttled.
    let parts = [Part { mba: 50, ..ways(0, 2) }, ways(2, 2)];
    let plan = decide(&table_bytes(&parts, 0, None, 0), Some(SERVER), Some(few)).unwrap().plan.unwrap();
    assert_eq!(plan.classes[2].mba_delay, None);
    program(&plan, SERVER, Some(few));
}

#[test]
fn switching_partitions_on_a_core_loads_their_classes() {
    let bytes = table_bytes(&[ways(0, 4), ways(4, 4), Part::default()], 0, None, 0);
    let plan = decide(&bytes, Some(BOCHS_RDT), None).unwrap().plan.unwrap();
    let mut cpu = program(&plan, BOCHS_RDT, None);
    let mut core = ClassTracker::default();
    let mut writes = 0;
    for p in [0, 1, 0, 1, 2, 2, 0] {
        if let Some(w) = core.enter(Some(plan.class_of(p))) {
            assert_eq!(w.msr, IA32_PQR_ASSOC);
            cpu.write(w.msr, w.value).unwrap();
            writes += 1;
        }
        assert_eq!(cpu.current_class(), plan.class_of(p));
        assert_eq!(
            cpu.masks_of(cpu.current_class()).unwrap().0,
            plan.classes[plan.class_of(p) as usize].data
        );
    }
    assert_eq!(writes, 6);
}

/// Partitions whose ways (data, then code) are laid out one after the other with small
/// gaps, so that most generated tables pass the re-validator; some have no ways.
fn arb_parts() -> impl Strategy<Value = Vec<Part>> {
    proptest::collection::vec(
        (any::<bool>(), 0u8..2, 1u8..4, proptest::option::of(1u8..3), prop_oneof![Just(0u8), 0u8..=101]),
        1..6,
    )
    .prop_map(|specs| {
        let mut next = 0u8;
        specs
            .into_iter()
            .map(|(has_ways, gap, count, code, mba)| {
                if !has_ways {
                    return Part { mba: mba.min(100), ..Default::default() };
                }
                let ways = Some((next + gap, count));
                next += gap + count;
                let code = code.map(|c| {
                    let block = (next, c);
                    next += c;
                    block
                });
                Part { ways, code, mba: mba.min(100) }
            })
            .collect()
    })
}

fn arb_cpu() -> impl Strategy<Value = (CatInfo, Option<MbaInfo>)> {
    (
        4u8..=20,
        0u16..16,
        any::<u32>(),
        any::<bool>(),
        proptest::option::of((1u16..100, 0u16..16, any::<bool>())),
    )
        .prop_map(|(ways, max_cos, share, cdp, mba)| {
            let cat = CatInfo { ways, max_cos, shareable_mask: share & ((1 << ways) - 1), cdp };
            (cat, mba.map(|(max_delay, max_cos, linear)| MbaInfo { max_delay, max_cos, linear }))
        })
}

proptest! {
    /// Any table the re-validator accepts, on any CPU: the plan is refused, or every
    /// write it makes is accepted by the hardware model, partitions with ways have
    /// classes of their own whose masks are exactly their ways, and every other partition
    /// is in class 0.
    #[test]
    fn every_plan_programs_without_a_fault(
        parts in arb_parts(),
        flags in 0u8..4,
        hv in proptest::option::of((0u8..12, 1u8..4)),
        min in 0u8..3,
        (cat, mba) in arb_cpu(),
    ) {
        // Code ways only where the table asks for CDP (else the re-validator refuses).
        let parts: Vec<Part> = parts
            .into_iter()
            .map(|p| if flags & PLATFORM_CDP == 0 { Part { code: None, ..p } } else { p })
            .collect();
        let bytes = table_bytes(&parts, flags, hv, min);
        let Ok(table) = Table::load(&bytes) else { return Ok(()) };
        let Ok(decision) = plan(&table, Some(cat), mba) else { return Ok(()) };
        let Some(plan) = decision.plan else {
            prop_assert!(parts.iter().all(|p| p.ways.is_none() && p.mba == 0) && hv.is_none());
            return Ok(());
        };
        let cpu = program(&plan, cat, mba);
        prop_assert!(plan.classes.len() <= cat.max_cos_in_mode(plan.cdp) as usize + 1);
        let mut seen = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let cos = plan.class_of(i);
            let (data, code) = cpu.masks_of(cos).unwrap();
            match p.ways {
                Some((first, count)) => {
                    prop_assert!(cos != 0 && !seen.contains(&cos));
                    seen.push(cos);
                    prop_assert_eq!(data, ((1u32 << count) - 1) << first);
                    if let (true, Some((f, c))) = (plan.cdp, p.code) {
                        prop_assert_eq!(code, ((1u32 << c) - 1) << f);
                    } else {
                        prop_assert_eq!(code, data);
                    }
                }
                None => prop_assert_eq!((data, code), cpu.masks_of(0).unwrap()),
            }
        }
    }
}

#[test]
fn the_boot_log_names_every_class_and_its_users() {
    use crate::cat::report::boot_lines;
    let bytes = table_bytes(&[ways(0, 4), ways(4, 4), Part::default()], 0, None, 0);
    let table = Table::load(&bytes).unwrap();
    let d = plan(&table, Some(BOCHS_RDT), None).unwrap();
    assert_eq!(
        boot_lines(&table, &d, Some(BOCHS_RDT), None),
        [
            "L3 CAT with 11 ways and classes 0-15; 3 classes in use",
            "hypervisor and p2: class 0, LLC ways 8-10 (mask 0x700), shared with I/O in 0x600",
            "partition p0: class 1, LLC ways 0-3 (mask 0xf)",
            "partition p1: class 2, LLC ways 4-7 (mask 0xf0)",
        ]
    );
    // CDP, MBA, and class 0 used by the hypervisor alone.
    let parts = [Part { ways: Some((0, 2)), code: Some((2, 2)), mba: 50 }];
    let bytes = table_bytes(&parts, PLATFORM_CDP, None, 0);
    let table = Table::load(&bytes).unwrap();
    let d = plan(&table, Some(SERVER), Some(SERVER_MBA)).unwrap();
    let lines = boot_lines(&table, &d, Some(SERVER), Some(SERVER_MBA));
    assert_eq!(
        lines[0],
        "L3 CAT with 12 ways and classes 0-15, CDP on, MBA delays up to 90; 2 classes in use"
    );
    assert!(lines[1].starts_with("hypervisor: class 0, LLC ways 4-11"), "{}", lines[1]);
    assert_eq!(
        lines[2],
        "partition p0: class 1, LLC ways 0-1 (mask 0x3) for data, ways 2-3 (mask 0xc) for code, memory bandwidth 50% (delay 50)"
    );
    // Nothing programmed: only the notice.
    let d = plan(&table, None, None).unwrap();
    assert_eq!(boot_lines(&table, &d, None, None), [Notice::NoCat.to_string()]);
}
