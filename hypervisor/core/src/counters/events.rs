//! The newest health-monitor events of one partition: a fixed ring of
//! [`EVENT_LOG_LEN`] entries that any core can read while the partition's core writes.
//!
//! Each entry is guarded by a sequence number (a seqlock): the writer makes it odd,
//! writes the fields, then makes it `2 * (event number + 1)`; a reader takes an entry only
//! when it saw the same even number before and after reading the fields, which also tells
//! it which event the entry holds. Writers never wait; a reader that keeps losing the race
//! for an entry leaves it out (events are rare, so that takes a writer per few reads).

use core::fmt;
use core::sync::atomic::{fence, AtomicU64, Ordering};

use arrayvec::ArrayVec;
use hallows_abi::health::{Action, EventClass};

use crate::vcpu::Exit;

/// How many of the newest events a partition keeps.
pub const EVENT_LOG_LEN: usize = 16;

/// Times a reader tries an entry a writer is changing before leaving it out.
const READ_TRIES: usize = 4;

/// Where an event happened, as far as the event says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Place {
    /// Nothing more precise (a failure of the hypervisor's own, say).
    #[default]
    Unknown,
    /// The partition reported it itself (`ReportFault`: panics, deadline misses).
    Reported,
    /// The instruction at `rip`.
    Rip { rip: u64 },
    /// A guest-physical access.
    Gpa { gpa: u64, rip: u64 },
    /// A port access.
    Port { port: u16, rip: u64 },
    /// An MSR access.
    Msr { msr: u32, rip: u64 },
    /// A hypercall the partition may not make (the number it asked for).
    Hypercall { number: u64 },
}

impl Place {
    /// Where the exit that led to an event happened.
    pub fn of(exit: &Exit, rip: u64) -> Self {
        match exit {
            Exit::NestedPageFault(f) => Place::Gpa { gpa: f.gpa, rip },
            Exit::Io(access) => Place::Port { port: access.port, rip },
            Exit::Rdmsr { msr } | Exit::Wrmsr { msr, .. } => Place::Msr { msr: *msr, rip },
            _ => Place::Rip { rip },
        }
    }

    /// The place as three words: kind, then two values.
    fn encode(self) -> [u64; 3] {
        match self {
            Place::Unknown => [0, 0, 0],
            Place::Reported => [1, 0, 0],
            Place::Rip { rip } => [2, rip, 0],
            Place::Gpa { gpa, rip } => [3, gpa, rip],
            Place::Port { port, rip } => [4, port as u64, rip],
            Place::Msr { msr, rip } => [5, msr as u64, rip],
            Place::Hypercall { number } => [6, number, 0],
        }
    }

    fn decode([kind, a, b]: [u64; 3]) -> Self {
        match kind {
            1 => Place::Reported,
            2 => Place::Rip { rip: a },
            3 => Place::Gpa { gpa: a, rip: b },
            4 => Place::Port { port: a as u16, rip: b },
            5 => Place::Msr { msr: a as u32, rip: b },
            6 => Place::Hypercall { number: a },
            _ => Place::Unknown,
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Place::Unknown => f.write_str("-"),
            Place::Reported => f.write_str("reported"),
            Place::Rip { rip } => write!(f, "RIP {rip:#x}"),
            Place::Gpa { gpa, rip } => write!(f, "GPA {gpa:#x} at RIP {rip:#x}"),
            Place::Port { port, rip } => write!(f, "port {port:#x} at RIP {rip:#x}"),
            Place::Msr { msr, rip } => write!(f, "MSR {msr:#x} at RIP {rip:#x}"),
            Place::Hypercall { number } => write!(f, "hypercall {number}"),
        }
    }
}

/// One health-monitor event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HealthEvent {
    /// Nanoseconds since boot.
    pub time_ns: u64,
    pub class: EventClass,
    pub place: Place,
    /// What the health monitor did (after escalation and what the vCPU's kind allows).
    pub action: Action,
}

/// One entry of the ring.
#[derive(Debug)]
struct Entry {
    /// Odd while written; `2 * (n + 1)` once it holds event number `n`; 0 when empty.
    seq: AtomicU64,
    time_ns: AtomicU64,
    /// Class in bits 0-7, action in bits 8-15.
    class_action: AtomicU64,
    place: [AtomicU64; 3],
}

impl Entry {
    fn new() -> Self {
        Entry {
            seq: AtomicU64::new(0),
            time_ns: AtomicU64::new(0),
            class_action: AtomicU64::new(0),
            place: core::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// The newest [`EVENT_LOG_LEN`] events of one partition (see the module documentation).
#[derive(Debug)]
pub struct EventLog {
    /// Events pushed so far; the next one's number.
    next: AtomicU64,
    entries: [Entry; EVENT_LOG_LEN],
}

impl Default for EventLog {
    fn default() -> Self {
        Self::new()
    }
}

/// The events a reader got: oldest first, and how many were ever pushed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recent {
    pub total: u64,
    pub events: ArrayVec<HealthEvent, EVENT_LOG_LEN>,
}

impl EventLog {
    pub fn new() -> Self {
        EventLog { next: AtomicU64::new(0), entries: core::array::from_fn(|_| Entry::new()) }
    }

    /// Adds an event, overwriting the oldest when the ring is full.
    pub fn push(&self, event: HealthEvent) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let e = &self.entries[(n % EVENT_LOG_LEN as u64) as usize];
        e.seq.store(2 * n + 1, Ordering::Relaxed);
        // Readers that see any field below also see the odd number above.
        fence(Ordering::Release);
        e.time_ns.store(event.time_ns, Ordering::Relaxed);
        e.class_action.store(event.class as u64 | (event.action as u64) << 8, Ordering::Relaxed);
        for (slot, word) in e.place.iter().zip(event.place.encode()) {
            slot.store(word, Ordering::Relaxed);
        }
        e.seq.store(2 * (n + 1), Ordering::Release);
    }

    /// The events the ring holds now, oldest first.
    pub fn read(&self) -> Recent {
        let total = self.next.load(Ordering::Acquire);
        let mut found: ArrayVec<(u64, HealthEvent), EVENT_LOG_LEN> = ArrayVec::new();
        for e in &self.entries {
            if let Some(got) = Self::read_entry(e) {
                found.push(got);
            }
        }
        found.sort_unstable_by_key(|&(n, _)| n);
        Recent { total, events: found.into_iter().map(|(_, event)| event).collect() }
    }

    /// Entry `e`'s event and its number, when it holds a whole one.
    fn read_entry(e: &Entry) -> Option<(u64, HealthEvent)> {
        for _ in 0..READ_TRIES {
            let before = e.seq.load(Ordering::Acquire);
            if before == 0 {
                return None;
            }
            if before % 2 == 1 {
                continue;
            }
            let time_ns = e.time_ns.load(Ordering::Relaxed);
            let class_action = e.class_action.load(Ordering::Relaxed);
            let place = e.place.each_ref().map(|w| w.load(Ordering::Relaxed));
            fence(Ordering::Acquire);
            if e.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            let class = *EventClass::ALL.get((class_action & 0xFF) as usize)?;
            let action = Action::from_u8((class_action >> 8) as u8)?;
            let event = HealthEvent { time_ns, class, place: Place::decode(place), action };
            return Some((before / 2 - 1, event));
        }
        None
    }
}
