//! The management interface's decisions ([`hallows_abi::manage`]): one request in, one
//! response out, and at most one [`Action`] for the glue to perform. The same function
//! serves the `Manage` hypercall of an RT partition and the mailbox of Linux's management
//! PCI function, so both callers get the same answers and the same refusals.
//!
//! Rules, in the order they are checked:
//! 1. A caller without `privileges manage` is [`Status::Denied`] whatever it asks, and
//!    the glue records the refusal as a health event of the caller ([`Action::Refused`]).
//! 2. A short request, a version other than [`VERSION`], an unknown op or flag:
//!    `BadRequest` / `UnsupportedVersion`.
//! 3. A target index past the table: `UnknownPartition`.
//! 4. Halt, start and restart of the caller itself: `IsCaller` (it has its own means).
//! 5. The target's state: start only a halted partition, halt only one that is not
//!    halted, restart one that runs (or waits, or faulted); nothing while it restarts.
//!    Otherwise `WrongState`.
//! 6. A response that would not fit the caller's buffer: `TooSmall`, with the bytes the
//!    body needs.

use hallows_abi::manage::{
    name_field, put_body_u32, put_body_u64, put_header, EventRecord, Op, PartitionRecord, Request,
    StatsRecord, Status, PLACE_GPA, PLACE_HYPERCALL, PLACE_MSR, PLACE_PORT, PLACE_REPORTED, PLACE_RIP,
    PLACE_UNKNOWN, RESPONSE_HEADER_BYTES, RESTART_CLEAN, VERSION,
};
use hallows_abi::table::PRIV_MANAGE;

use crate::boot_plan::CorePlan;
use crate::counters::{Place, Snapshot};
use crate::lifecycle::{RestartScope, State};

/// What the table says about a partition, for [`Op::List`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PartitionFacts<'a> {
    pub name: &'a str,
    pub image: &'a str,
    /// `manage::KIND_RT` or `manage::KIND_LINUX`.
    pub kind: u8,
    pub vcpus: u16,
    pub privileges: u32,
    /// Bit n = core n (cores 0..63).
    pub cores: u64,
    pub memory_bytes: u64,
    pub persistent_bytes: u64,
    pub restart_limit: u32,
    pub restart_window_ms: u32,
    /// Windows per major frame of its schedule (0 on dedicated cores).
    pub windows_per_frame: u32,
    pub frame_ns: u64,
}

/// Where partition `index` runs, from the cores' plans: the cores (bit n = core n, cores
/// 0..63) and, when one of them is scheduled, its windows per major frame and the frame
/// (ns); `(0, 0)` on dedicated cores.
pub fn placement(cores: &[CorePlan], index: usize) -> (u64, u32, u64) {
    let mut mask = 0u64;
    let mut schedule = None;
    for (c, plan) in cores.iter().enumerate() {
        if !plan.vcpus.iter().any(|v| v.partition == index) {
            continue;
        }
        if c < 64 {
            mask |= 1 << c;
        }
        if !plan.windows.is_empty() && schedule.is_none() {
            let windows = plan.windows.iter().filter(|w| w.partition as usize == index).count();
            schedule = Some((windows as u32, plan.major_frame_ns));
        }
    }
    let (windows_per_frame, frame_ns) = schedule.unwrap_or((0, 0));
    (mask, windows_per_frame, frame_ns)
}

/// The running machine as the management interface reads it.
pub trait Machine {
    fn partition_count(&self) -> usize;
    /// Partition `index`'s table facts (`index < partition_count()`).
    fn facts(&self, index: usize) -> PartitionFacts<'_>;
    fn state(&self, index: usize) -> State;
    /// Partition `index`'s counters now (restarts and uptime included).
    fn snapshot(&self, index: usize) -> Snapshot;
    fn now_ns(&self) -> u64;
}

/// What the glue does after writing the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Nothing more (a read, or a request answered with an error).
    None,
    /// The caller lacked the privilege: record a health event of class
    /// `forbidden_instruction` for it (logged and counted; it goes on).
    Refused,
    /// Stop `target` for good (the operator's halt).
    Halt { target: usize },
    /// Bring halted `target` back: reload it afresh, as an operator's restart.
    Start { target: usize },
    /// Restart `target`, keeping or zeroing its persistent region.
    Restart { target: usize, scope: RestartScope },
}

/// A served request: the response's length in the caller's buffer, and what to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Served {
    pub len: usize,
    pub action: Action,
}

/// Serves one request of partition `caller` (whose `PRIV_*` bits are `privileges`) into
/// `response` (at least [`RESPONSE_HEADER_BYTES`]; a shorter buffer gets nothing, length
/// 0). Pure: reads `machine`, writes `response`, decides.
pub fn serve(
    caller: usize,
    privileges: u32,
    request: &[u8],
    machine: &impl Machine,
    response: &mut [u8],
) -> Served {
    if response.len() < RESPONSE_HEADER_BYTES {
        let action = if privileges & PRIV_MANAGE == 0 { Action::Refused } else { Action::None };
        return Served { len: 0, action };
    }
    let (status, body, action) = decide(caller, privileges, request, machine, response);
    match status {
        Status::Ok => {
            put_header(response, Status::Ok, body as u32);
            Served { len: RESPONSE_HEADER_BYTES + body, action }
        }
        Status::TooSmall => {
            put_header(response, Status::TooSmall, body as u32);
            Served { len: RESPONSE_HEADER_BYTES, action: Action::None }
        }
        other => {
            put_header(response, other, 0);
            Served { len: RESPONSE_HEADER_BYTES, action }
        }
    }
}

/// The status, the body length (written after the header) and the action.
fn decide(
    caller: usize,
    privileges: u32,
    request: &[u8],
    machine: &impl Machine,
    response: &mut [u8],
) -> (Status, usize, Action) {
    let err = |s| (s, 0, Action::None);
    if privileges & PRIV_MANAGE == 0 {
        return (Status::Denied, 0, Action::Refused);
    }
    let Some(req) = Request::decode(request) else { return err(Status::BadRequest) };
    if req.version != VERSION {
        return err(Status::UnsupportedVersion);
    }
    let Some(op) = Op::from_u32(req.op) else { return err(Status::BadRequest) };
    let allowed_flags = if op == Op::Restart { RESTART_CLEAN } else { 0 };
    if req.flags & !allowed_flags != 0 {
        return err(Status::BadRequest);
    }
    let count = machine.partition_count();
    let target = req.target as usize;
    // List may start one past the end (an empty page).
    let in_range = if op == Op::List { target <= count } else { target < count };
    if !in_range {
        return err(Status::UnknownPartition);
    }
    let body = &mut response[RESPONSE_HEADER_BYTES..];
    match op {
        Op::List => list(target, machine, body),
        Op::Stats => stats(target, machine, body),
        Op::Events => events(target, machine, body),
        Op::Halt | Op::Start | Op::Restart => {
            if target == caller {
                return err(Status::IsCaller);
            }
            match control(op, req.flags, target, machine.state(target)) {
                Some(action) => (Status::Ok, 0, action),
                None => err(Status::WrongState),
            }
        }
    }
}

/// Whether a state allows `op`, and the action it leads to.
pub fn control(op: Op, flags: u32, target: usize, state: State) -> Option<Action> {
    use State as S;
    let live = matches!(state, S::Booting | S::Running | S::Waiting | S::Faulted);
    match op {
        Op::Halt if live => Some(Action::Halt { target }),
        Op::Start if state == S::Halted => Some(Action::Start { target }),
        Op::Restart if live => {
            let scope =
                if flags & RESTART_CLEAN != 0 { RestartScope::Clean } else { RestartScope::KeepPersistent };
            Some(Action::Restart { target, scope })
        }
        _ => None,
    }
}

fn list(first: usize, machine: &impl Machine, body: &mut [u8]) -> (Status, usize, Action) {
    const HEAD: usize = 12;
    let count = machine.partition_count();
    if body.len() < HEAD + PartitionRecord::BYTES.min((count - first) * PartitionRecord::BYTES) {
        return (Status::TooSmall, HEAD + PartitionRecord::BYTES, Action::None);
    }
    let fit = (body.len() - HEAD) / PartitionRecord::BYTES;
    let n = fit.min(count - first);
    for (slot, index) in (first..first + n).enumerate() {
        let f = machine.facts(index);
        let snap = machine.snapshot(index);
        let record = PartitionRecord {
            index: index as u32,
            name: name_field(f.name),
            kind: f.kind,
            state: machine.state(index) as u8,
            vcpus: f.vcpus,
            privileges: f.privileges,
            cores: f.cores,
            memory_bytes: f.memory_bytes,
            persistent_bytes: f.persistent_bytes,
            restarts: snap.restarts,
            restart_limit: f.restart_limit,
            restart_window_ms: f.restart_window_ms,
            windows_per_frame: f.windows_per_frame,
            frame_ns: f.frame_ns,
            uptime_ns: snap.uptime_ns,
            image: name_field(f.image),
        };
        let at = HEAD + slot * PartitionRecord::BYTES;
        record.encode(&mut body[at..]);
    }
    put_body_u32(body, 0, count as u32);
    put_body_u32(body, 4, n as u32);
    put_body_u32(body, 8, PartitionRecord::BYTES as u32);
    (Status::Ok, HEAD + n * PartitionRecord::BYTES, Action::None)
}

fn stats(index: usize, machine: &impl Machine, body: &mut [u8]) -> (Status, usize, Action) {
    if body.len() < StatsRecord::BYTES {
        return (Status::TooSmall, StatsRecord::BYTES, Action::None);
    }
    let s = machine.snapshot(index);
    let record = StatsRecord {
        index: index as u32,
        restarts: s.restarts,
        exits: s.exits,
        windows: s.windows,
        overruns: s.overruns,
        health: s.health,
        console_bytes: s.console_bytes,
        console_busy: s.console_busy,
        console_dropped: s.console_dropped,
        hv_lines_suppressed: s.hv_lines_suppressed,
        uptime_ns: s.uptime_ns,
        events_total: s.events.total,
        now_ns: machine.now_ns(),
        windows_since_start: s.windows_since_start,
    };
    record.encode(body);
    (Status::Ok, StatsRecord::BYTES, Action::None)
}

fn events(index: usize, machine: &impl Machine, body: &mut [u8]) -> (Status, usize, Action) {
    const HEAD: usize = 16;
    let recent = machine.snapshot(index).events;
    let need = HEAD + recent.events.len() * EventRecord::BYTES;
    if body.len() < need {
        return (Status::TooSmall, need, Action::None);
    }
    put_body_u64(body, 0, recent.total);
    put_body_u32(body, 8, recent.events.len() as u32);
    put_body_u32(body, 12, EventRecord::BYTES as u32);
    for (n, e) in recent.events.iter().enumerate() {
        let (place_kind, place_a, place_b) = place_words(e.place);
        let record = EventRecord {
            time_ns: e.time_ns,
            class: e.class as u8,
            action: e.action as u8,
            place_kind,
            place_a,
            place_b,
        };
        record.encode(&mut body[HEAD + n * EventRecord::BYTES..]);
    }
    (Status::Ok, need, Action::None)
}

fn place_words(place: Place) -> (u8, u64, u64) {
    match place {
        Place::Unknown => (PLACE_UNKNOWN, 0, 0),
        Place::Reported => (PLACE_REPORTED, 0, 0),
        Place::Rip { rip } => (PLACE_RIP, rip, 0),
        Place::Gpa { gpa, rip } => (PLACE_GPA, gpa, rip),
        Place::Port { port, rip } => (PLACE_PORT, port as u64, rip),
        Place::Msr { msr, rip } => (PLACE_MSR, msr as u64, rip),
        Place::Hypercall { number } => (PLACE_HYPERCALL, number, 0),
    }
}

#[cfg(test)]
mod tests;
