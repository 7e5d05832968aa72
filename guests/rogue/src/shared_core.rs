//! `plant`, `snoop` and `selfrestart`: partitions that share a core through a schedule and
//! try to pass register state to each other, or to spend other partitions' time on their
//! restarts.

use rogue::state::{
    inspect, markers, plan_window, reset_values, Features, Finding, Owner, Snapshot, WindowPlan,
};
use rt_partition::hypercall::{restart_partition, yield_until};
use rt_partition::{println, time, BootInfo};

use crate::arch;

/// A gap this long between two consecutive clock reads means the partition was not
/// running: its window ended and this is the next one. (Consecutive reads in a loop are
/// well under a microsecond apart; the other windows of a schedule last milliseconds.)
const PREEMPTED_GAP_NS: u64 = 200_000;
/// How long a partition spins waiting for the timer before giving up (on a dedicated
/// core no timer ends its time).
const SPIN_LIMIT_NS: u64 = 100_000_000;
/// Status lines every this many windows (each window's outcome is checked, only the
/// summary is printed, so the console does not dominate the schedule).
const REPORT_EVERY: u64 = 10;
/// Windows whose findings are printed item by item; later ones are only counted in the
/// summaries (a leak repeats in every window and would flood the console).
const DETAILED_WINDOWS: u64 = 3;

/// Enables what `features` needs; a CR4 that does not read back as written is reported.
fn enable(who: &str, features: Features) {
    if let Err(e) = arch::enable(features) {
        println!("{who}: CR4 reads {:#x} after writing {:#x}", e.read, e.wrote);
    }
}

/// Computes until the window ends. Returns false when it did not end within the limit.
fn spin_until_preempted() -> bool {
    let give_up = time::now_ns().saturating_add(SPIN_LIMIT_NS);
    let mut last = time::now_ns();
    loop {
        let now = time::now_ns();
        if now.saturating_sub(last) > PREEMPTED_GAP_NS {
            return true;
        }
        if now > give_up {
            return false;
        }
        last = now;
    }
}

/// Plants its markers in every window, checking at the start of each that its own values
/// survived and that none of the snoop's arrived; restarts itself now and then and checks
/// that nothing of its state survives the restart.
pub fn plant(bi: &BootInfo) -> ! {
    let features = arch::features();
    enable("plant", features);
    let mine = markers(Owner::Planter, features);
    let theirs = markers(Owner::Snoop, features);
    if bi.restart_count > 0 {
        // Nothing may survive a restart: neither a marker of the previous incarnation nor
        // any other value that is not the architectural reset value.
        let seen = arch::capture(features);
        let mut leaks = 0;
        let checks = inspect(&seen, &mine, Some(&reset_values(features)), |f| {
            leaks += 1;
            match f {
                Finding::Leak { item, value } => println!("plant: LEAK after restart {item}={value:#x}"),
                Finding::Lost { item, value, expected } => {
                    println!("plant: LEAK after restart {item}={value:#x} (reset value {expected:#x})")
                }
            }
        });
        if leaks == 0 {
            println!("plant: clean after restart ({checks} checks)");
        }
    }
    println!(
        "plant: planting {} items per window (fsgsbase {}, avx {}, avx512 {})",
        mine.item_count(),
        features.fsgsbase,
        features.avx,
        features.avx512
    );
    let mut window: u64 = 0;
    let mut timer_ends: u64 = 0;
    let mut detailed: u64 = 0;
    let mut own: Option<&Snapshot> = None;
    loop {
        window += 1;
        let seen = arch::capture(features);
        let mut found = 0;
        inspect(&seen, &theirs, own, |f| {
            found += 1;
            if detailed < DETAILED_WINDOWS {
                println!("plant: {f} (window {window})");
            }
        });
        if found > 0 {
            detailed += 1;
        }
        let age = time::now_ns().saturating_sub(bi.boot_time_ns);
        let plan = plan_window(window, age, bi.restart_count > 0);
        if plan == WindowPlan::RestartSelf {
            println!("plant: restarting myself after {window} windows");
            let result = restart_partition(bi.partition_id);
            println!("plant: restart of myself returned {result:?}");
        }
        arch::plant(&mine);
        if own.is_none() {
            // The first planting of an incarnation: does every item take its marker?
            let back = arch::capture(features);
            inspect(&back, &theirs, Some(&mine), |f| println!("plant: cannot plant: {f}"));
        }
        own = Some(&mine);
        if window.is_multiple_of(REPORT_EVERY) {
            println!("plant: planted (window {window}, {timer_ends} ended by the timer)");
        }
        if plan == WindowPlan::SpinUntilPreempted {
            if spin_until_preempted() {
                timer_ends += 1;
            } else {
                println!("plant: the timer did not end window {window}");
            }
        } else {
            let _ = yield_until(0);
        }
    }
}

/// At the start of every activation reads all the state before writing any of it, looking
/// for the planter's markers (and, from the second activation on, for its own); then
/// plants its own markers and gives up the window.
pub fn snoop(_bi: &BootInfo) -> ! {
    let features = arch::features();
    enable("snoop", features);
    let mine = markers(Owner::Snoop, features);
    let theirs = markers(Owner::Planter, features);
    println!(
        "snoop: checking {} items per activation (fsgsbase {}, avx {}, avx512 {})",
        mine.item_count(),
        features.fsgsbase,
        features.avx,
        features.avx512
    );
    let mut activation: u64 = 0;
    let mut with_findings: u64 = 0;
    let mut detailed: u64 = 0;
    let mut own: Option<&Snapshot> = None;
    loop {
        activation += 1;
        let seen = arch::capture(features);
        let mut found = 0;
        let checks = inspect(&seen, &theirs, own, |f| {
            found += 1;
            if detailed < DETAILED_WINDOWS {
                println!("snoop: {f} (activation {activation})");
            }
        });
        if found > 0 {
            with_findings += 1;
            detailed += 1;
        }
        arch::plant(&mine);
        own = Some(&mine);
        if activation.is_multiple_of(REPORT_EVERY) {
            let first = activation - REPORT_EVERY + 1;
            if with_findings == 0 {
                println!("snoop: clean ({checks} checks) in activations {first}-{activation}");
            } else {
                println!("snoop: findings in {with_findings} of activations {first}-{activation} ({checks} checks)");
            }
            with_findings = 0;
        }
        let _ = yield_until(0);
    }
}

/// Restarts itself through the hypercall in every incarnation: the health monitor must
/// count these restarts like any other and halt the partition at the table's threshold.
pub fn restart_self(bi: &BootInfo) {
    println!("rogue: about to restart myself (incarnation {})", bi.restart_count);
    let result = restart_partition(bi.partition_id);
    println!("rogue: restart of myself returned {result:?}");
}
