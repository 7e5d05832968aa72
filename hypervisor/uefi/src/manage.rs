//! The management interface's glue: the running machine as `hallows_core::manage` reads
//! it, and the actions it decides (halt, start, restart another partition) turned into
//! requests that the cores running the target perform (`run.rs`,
//! `Core::serve_restart_request`). RT partitions arrive here through the `Manage`
//! hypercall (`hypercalls.rs`), Linux through its management function's mailbox
//! (`linux_request`).

use hallows_abi::manage::{KIND_LINUX, KIND_RT};
use hallows_core::counters::Snapshot;
use hallows_core::lifecycle::{RestartScope, State};
use hallows_core::manage::{self, Action, PartitionFacts};

use crate::machine::Machine;

/// The machine as the management interface sees it.
pub struct View<'a>(pub &'a Machine);

impl manage::Machine for View<'_> {
    fn partition_count(&self) -> usize {
        self.0.partitions.len()
    }

    fn facts(&self, index: usize) -> PartitionFacts<'_> {
        let m = self.0;
        let p = &m.partitions[index];
        let (cores, windows_per_frame, frame_ns) = manage::placement(&m.cores, index);
        PartitionFacts {
            name: &p.name,
            image: &p.image_name,
            kind: if p.is_linux { KIND_LINUX } else { KIND_RT },
            vcpus: p.vcpus.min(u16::MAX as u32) as u16,
            privileges: p.privileges,
            cores,
            memory_bytes: p.ram_bytes,
            persistent_bytes: p.persistent_bytes,
            restart_limit: p.restart_policy.max_restarts,
            restart_window_ms: (p.restart_policy.window_ns / 1_000_000).min(u32::MAX as u64) as u32,
            windows_per_frame,
            frame_ns,
        }
    }

    fn state(&self, index: usize) -> State {
        self.0.partitions[index].lifecycle()
    }

    fn snapshot(&self, index: usize) -> Snapshot {
        let p = &self.0.partitions[index];
        p.counters.snapshot(p.restarts.load(core::sync::atomic::Ordering::Relaxed), self.0.now_ns())
    }

    fn now_ns(&self) -> u64 {
        self.0.now_ns()
    }
}

/// Serves a request of Linux partition `caller` (its management function's doorbell)
/// into `response`, performs what it decided, and returns the response's length.
pub fn linux_request(caller: usize, request: &[u8], response: &mut [u8]) -> usize {
    let Some(m) = crate::machine::MACHINE.get() else { return 0 };
    let Some(p) = m.partitions.get(caller) else { return 0 };
    let served = manage::serve(caller, p.privileges, request, &View(m), response);
    match served.action {
        Action::None => {}
        Action::Refused => crate::summary::refused(m, p, hallows_abi::hypercall::Hypercall::Manage as u64),
        // A Linux partition's cores run only it (they are dedicated), so every core
        // running the target is another core.
        action => perform(m, caller, action, None),
    }
    served.len
}

/// Performs a management action of partition `caller`, on a core that is `own_core`
/// (`None`: a core that runs none of the target's vCPUs). The target's cores do the work
/// when they next look: dedicated ones are sent an NMI, scheduled ones look at the start
/// of the target's windows.
pub fn perform(m: &Machine, caller: usize, action: Action, own_core: Option<usize>) {
    let who = &m.partitions[caller];
    let (target, what) = match action {
        Action::None | Action::Refused => return,
        Action::Halt { target } => {
            m.partitions[target].halt_requested.store(true, core::sync::atomic::Ordering::SeqCst);
            (target, "a halt")
        }
        Action::Start { target } => {
            m.partitions[target].request_operator_restart(RestartScope::KeepPersistent);
            (target, "a start")
        }
        Action::Restart { target, scope } => {
            m.partitions[target].request_operator_restart(scope);
            (target, if scope == RestartScope::Clean { "a clean restart" } else { "a restart" })
        }
    };
    let t = &m.partitions[target].name;
    crate::hvlog_for!(who, "partition {}: asks for {what} of partition {t} (management)", who.name);
    kick(m, target, own_core, true);
}

/// Sends an NMI to the cores running `target` other than `own_core` (all of them, or
/// only the dedicated ones: a scheduled core looks at the start of the partition's
/// windows): such a core leaves its guest (NMI exiting) or wakes from HLT and looks at
/// its requests.
pub fn kick(m: &Machine, target: usize, own_core: Option<usize>, scheduled_too: bool) {
    let apic = crate::apic::Apic::new();
    for (c, plan) in m.cores.iter().enumerate() {
        let runs = plan.vcpus.iter().any(|v| v.partition == target);
        if Some(c) != own_core && runs && (scheduled_too || plan.windows.is_empty()) {
            apic.send_ipi(plan.apic_id, crate::apic::ICR_NMI);
        }
    }
}
