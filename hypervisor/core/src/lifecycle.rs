//! A partition's life cycle: its states, and which event may move it where. Every place
//! that changes a partition's state (boot, the run loop, the health monitor, restart
//! requests, the Linux glue, later the management interface) goes through [`next`], so
//! the rules live here once and are tested here.
//!
//! ```text
//!            Started                 Sleep
//!  Booting ──────────▶ Running ◀────────────▶ Waiting
//!     │                 │  ▲  ╲ Fault           │
//!     │ Halt            │  │   ╲                │ Fault / Restart / Halt
//!     ▼                 │  │    ▼               ▼
//!  Halted ◀──── Halt ───┘  │   Faulted ── Resume ──▶ Running
//!     │  ▲                 │    │ Restart / Halt
//!     │  └──── Halt ──── Restarting ◀── Restart (Running, Waiting, Faulted)
//!     └── Restart by another partition or the operator ──▶ Restarting
//! ```
//!
//! ```
//! use hallows_core::lifecycle::{next, Cause, Event, State};
//! let s = next(State::Booting, Event::Started).unwrap();
//! let s = next(s, Event::Fault).unwrap();
//! let s = next(s, Event::Restart(Cause::HealthMonitor)).unwrap();
//! assert_eq!(next(s, Event::RestartDone), Ok(State::Running));
//! // A halted partition does not restart itself.
//! assert!(next(State::Halted, Event::Restart(Cause::Itself)).is_err());
//! ```

use core::fmt;
use core::sync::atomic::{AtomicU8, Ordering};

use hallows_abi::hypercall::PartitionState;

/// Where a partition is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum State {
    /// Loaded, its vCPUs not yet entered.
    Booting = 0,
    /// Its vCPUs run (or are ready to, in their windows).
    Running = 1,
    /// It asked to sleep (`Yield(until)`) and has not woken yet.
    Waiting = 2,
    /// The health monitor is deciding about one of its faults.
    Faulted = 3,
    /// Being scrubbed and reloaded; not entered until done.
    Restarting = 4,
    /// Stopped for good, until another partition or the operator restarts it.
    Halted = 5,
}

impl State {
    pub const ALL: [State; 6] =
        [State::Booting, State::Running, State::Waiting, State::Faulted, State::Restarting, State::Halted];

    pub const fn from_u8(v: u8) -> Option<State> {
        Some(match v {
            0 => State::Booting,
            1 => State::Running,
            2 => State::Waiting,
            3 => State::Faulted,
            4 => State::Restarting,
            5 => State::Halted,
            _ => return None,
        })
    }

    /// The state as the `PartitionState` hypercall reports it.
    pub const fn reported(self) -> PartitionState {
        match self {
            State::Booting => PartitionState::Ready,
            State::Running | State::Waiting | State::Faulted => PartitionState::Running,
            State::Restarting => PartitionState::Restarting,
            State::Halted => PartitionState::Halted,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            State::Booting => "booting",
            State::Running => "running",
            State::Waiting => "waiting",
            State::Faulted => "faulted",
            State::Restarting => "restarting",
            State::Halted => "halted",
        }
    }
}

/// Who asked for a restart or a halt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// The partition itself (its `Halt` or `RestartPartition` hypercall).
    Itself,
    /// The health monitor, acting on a fault.
    HealthMonitor,
    /// Another partition, with the `restart` privilege.
    OtherPartition,
    /// The machine's operator (management interface).
    Operator,
    /// The hypervisor itself: a partition it cannot prepare or set up.
    Hypervisor,
}

/// How much of a partition's memory a restart starts afresh. RAM always; the persistent
/// region (`persistent SIZE` in the table) only for a clean restart.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartScope {
    /// The health monitor's restarts (a fault, the partition's own request, another
    /// partition's request): the persistent region keeps its bytes, so the partition can
    /// recover what it wrote there.
    KeepPersistent,
    /// An operator's clean restart (halt, then start with `--clean`): nothing of the
    /// previous runs survives.
    Clean,
}

impl RestartScope {
    /// The scope of one restart that serves two requests: a clean one wins, so a clean
    /// request is never lost to a plain one that arrived before or after it (or to a
    /// plain restart still under way, which would otherwise leave the region half zeroed).
    pub const fn widen(self, other: RestartScope) -> RestartScope {
        match (self, other) {
            (RestartScope::KeepPersistent, RestartScope::KeepPersistent) => RestartScope::KeepPersistent,
            _ => RestartScope::Clean,
        }
    }

    /// What the console line of a finished restart adds after its reason.
    pub const fn note(self) -> &'static str {
        match self {
            RestartScope::KeepPersistent => "",
            RestartScope::Clean => " (clean: persistent region scrubbed)",
        }
    }

    /// The word the request's console line puts before "restart".
    pub const fn adjective(self) -> &'static str {
        match self {
            RestartScope::KeepPersistent => "",
            RestartScope::Clean => "clean ",
        }
    }
}

/// A partition's pending restart request (another partition asked; the core running it has
/// not begun the restart yet) as one byte, so the binary keeps it in an `AtomicU8` that any
/// core may set. The codes are ordered so that merging two requests is their maximum (the
/// binary's `fetch_max`): [`RestartScope::widen`].
pub mod request {
    use super::RestartScope;

    /// No restart asked for.
    pub const NONE: u8 = 0;

    /// The code of a request for a restart of `scope`.
    pub const fn code(scope: RestartScope) -> u8 {
        match scope {
            RestartScope::KeepPersistent => 1,
            RestartScope::Clean => 2,
        }
    }

    /// The request a code holds (`None` for [`NONE`]). The byte is the hypervisor's own,
    /// never a guest's; should it hold anything else, the safe reading is a clean restart.
    pub const fn scope(code: u8) -> Option<RestartScope> {
        match code {
            NONE => None,
            1 => Some(RestartScope::KeepPersistent),
            _ => Some(RestartScope::Clean),
        }
    }

    /// The pending code after `pending` gets a request for `scope` (what `fetch_max`
    /// computes).
    pub const fn merge(pending: u8, scope: RestartScope) -> u8 {
        let new = code(scope);
        if pending > new {
            pending
        } else {
            new
        }
    }
}

/// Why a partition's memory is being (re)loaded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reload {
    /// The first load at boot.
    Boot,
    Restart(RestartScope),
}

/// Which of a partition's memory a (re)load rewrites: RAM becomes zeroes and the image's
/// bytes, the persistent region zeroes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scrub {
    pub ram: bool,
    pub persistent: bool,
}

/// What a (re)load scrubs. RAM every time (nothing of a previous run may survive in it);
/// the persistent region at boot (the firmware left anything there) and on a clean
/// restart, never on a restart that keeps it.
pub const fn scrub(reload: Reload) -> Scrub {
    let persistent = match reload {
        Reload::Boot | Reload::Restart(RestartScope::Clean) => true,
        Reload::Restart(RestartScope::KeepPersistent) => false,
    };
    Scrub { ram: true, persistent }
}

/// What happens to a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// A vCPU was set up and is about to be entered.
    Started,
    /// It asked to sleep until some time.
    Sleep,
    /// Its sleep ended.
    Wake,
    /// It caused a health-monitor event; the action follows.
    Fault,
    /// The health monitor's action was `log`: it goes on.
    Resume,
    /// A restart begins.
    Restart(Cause),
    /// The restart finished: fresh image, scrubbed RAM, vCPU reset.
    RestartDone,
    /// It stops.
    Halt(Cause),
}

/// A transition the rules do not allow (a bug in the caller, or a request to refuse).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    pub from: State,
    pub event: Event,
}

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} is not possible while the partition is {}", self.event, self.from.name())
    }
}

/// The state after `event` in `state`, or why not.
pub fn next(state: State, event: Event) -> Result<State, Refused> {
    use Event as E;
    use State as S;
    let refused = Err(Refused { from: state, event });
    Ok(match (state, event) {
        // A partition with several vCPUs starts each of them.
        (S::Booting | S::Running, E::Started) => S::Running,
        (S::Running, E::Sleep) => S::Waiting,
        (S::Waiting, E::Wake) => S::Running,
        // A wake-up that raced with something else changes nothing.
        (S::Running | S::Faulted | S::Restarting | S::Halted, E::Wake) => state,
        (S::Running | S::Waiting, E::Fault) => S::Faulted,
        // Another vCPU of the same partition faults while the first one is decided.
        (S::Faulted, E::Fault) => S::Faulted,
        (S::Faulted, E::Resume) => S::Running,
        (S::Running | S::Waiting | S::Faulted, E::Restart(_)) => S::Restarting,
        // A request while a restart is under way is absorbed by it.
        (S::Restarting, E::Restart(_)) => S::Restarting,
        // A halted partition is brought back only from outside.
        (S::Halted, E::Restart(Cause::OtherPartition | Cause::Operator)) => S::Restarting,
        (S::Restarting, E::RestartDone) => S::Running,
        (_, E::Halt(_)) => S::Halted,
        _ => return refused,
    })
}

/// A partition's state as the cores that run it share it. It changes only by
/// [`SharedState::apply`], a compare-and-swap over [`next`], so two cores' events never
/// lose one another.
#[derive(Debug)]
pub struct SharedState(AtomicU8);

impl SharedState {
    pub const fn new(state: State) -> Self {
        SharedState(AtomicU8::new(state as u8))
    }

    /// The current state.
    pub fn get(&self) -> State {
        State::from_u8(self.0.load(Ordering::SeqCst)).unwrap_or(State::Halted)
    }

    /// Moves the state by `event`; a transition the rules refuse changes nothing.
    pub fn apply(&self, event: Event) -> Result<State, Refused> {
        let mut current = self.0.load(Ordering::SeqCst);
        loop {
            let to = next(State::from_u8(current).unwrap_or(State::Halted), event)?;
            match self.0.compare_exchange(current, to as u8, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => return Ok(to),
                Err(seen) => current = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAUSES: [Cause; 5] =
        [Cause::Itself, Cause::HealthMonitor, Cause::OtherPartition, Cause::Operator, Cause::Hypervisor];

    fn events() -> impl Iterator<Item = Event> {
        let fixed =
            [Event::Started, Event::Sleep, Event::Wake, Event::Fault, Event::Resume, Event::RestartDone];
        fixed.into_iter().chain(CAUSES.iter().flat_map(|&c| [Event::Restart(c), Event::Halt(c)]))
    }

    #[test]
    fn the_whole_table() {
        // Every (state, event) pair: the allowed ones and their target, all others refused.
        for s in State::ALL {
            for e in events() {
                let got = next(s, e);
                let expect = match (s, e) {
                    (State::Booting | State::Running, Event::Started) => Some(State::Running),
                    (State::Running, Event::Sleep) => Some(State::Waiting),
                    (State::Waiting, Event::Wake) => Some(State::Running),
                    (State::Running | State::Faulted | State::Restarting | State::Halted, Event::Wake) => {
                        Some(s)
                    }
                    (State::Running | State::Waiting | State::Faulted, Event::Fault) => Some(State::Faulted),
                    (State::Faulted, Event::Resume) => Some(State::Running),
                    (
                        State::Running | State::Waiting | State::Faulted | State::Restarting,
                        Event::Restart(_),
                    ) => Some(State::Restarting),
                    (State::Halted, Event::Restart(Cause::OtherPartition | Cause::Operator)) => {
                        Some(State::Restarting)
                    }
                    (State::Restarting, Event::RestartDone) => Some(State::Running),
                    (_, Event::Halt(_)) => Some(State::Halted),
                    _ => None,
                };
                assert_eq!(got.ok(), expect, "{s:?} + {e:?}");
                if let Err(r) = got {
                    assert_eq!(r, Refused { from: s, event: e });
                }
            }
        }
    }

    const SCOPES: [RestartScope; 2] = [RestartScope::KeepPersistent, RestartScope::Clean];

    #[test]
    fn a_clean_request_wins_whatever_the_order() {
        use RestartScope::{Clean, KeepPersistent as Keep};
        assert_eq!(Keep.widen(Keep), Keep);
        for (a, b) in [(Keep, Clean), (Clean, Keep), (Clean, Clean)] {
            assert_eq!(a.widen(b), Clean, "{a:?} + {b:?}");
        }
        // The byte the binary keeps: any sequence of requests reads back as their widening.
        for first in SCOPES {
            for second in SCOPES {
                let pending = request::merge(request::merge(request::NONE, first), second);
                assert_eq!(request::scope(pending), Some(first.widen(second)), "{first:?}, {second:?}");
                assert_eq!(pending, request::code(first).max(request::code(second)), "fetch_max agrees");
            }
        }
        assert_eq!(request::scope(request::NONE), None);
        assert_eq!(request::scope(u8::MAX), Some(Clean), "an unknown code errs on the clean side");
        for s in SCOPES {
            assert_eq!(request::scope(request::code(s)), Some(s));
            assert_ne!(request::code(s), request::NONE);
        }
    }

    #[test]
    fn only_a_clean_restart_says_so() {
        assert_eq!(RestartScope::KeepPersistent.note(), "");
        assert_eq!(RestartScope::KeepPersistent.adjective(), "");
        assert!(RestartScope::Clean.note().contains("clean: persistent region scrubbed"));
        assert_eq!(RestartScope::Clean.adjective(), "clean ");
    }

    #[test]
    fn a_partition_cannot_bring_itself_back() {
        for c in [Cause::Itself, Cause::HealthMonitor, Cause::Hypervisor] {
            assert!(next(State::Halted, Event::Restart(c)).is_err());
        }
        assert!(next(State::Halted, Event::Started).is_err(), "a halted vCPU is never entered");
        assert!(next(State::Booting, Event::Fault).is_err(), "nothing ran yet");
    }

    #[test]
    fn only_a_restart_that_keeps_it_leaves_the_persistent_region_alone() {
        assert_eq!(scrub(Reload::Boot), Scrub { ram: true, persistent: true });
        assert_eq!(scrub(Reload::Restart(RestartScope::Clean)), Scrub { ram: true, persistent: true });
        assert_eq!(
            scrub(Reload::Restart(RestartScope::KeepPersistent)),
            Scrub { ram: true, persistent: false }
        );
    }

    #[test]
    fn reported_states_and_codes() {
        for s in State::ALL {
            assert_eq!(State::from_u8(s as u8), Some(s));
        }
        assert_eq!(State::from_u8(6), None);
        assert_eq!(State::Waiting.reported(), PartitionState::Running);
        assert_eq!(State::Booting.reported(), PartitionState::Ready);
        assert_eq!(
            format!("{}", Refused { from: State::Halted, event: Event::Sleep }),
            "Sleep is not possible while the partition is halted"
        );
    }

    #[test]
    fn the_shared_state_moves_only_as_the_rules_say() {
        let s = SharedState::new(State::Booting);
        assert_eq!(s.apply(Event::Started), Ok(State::Running));
        assert_eq!(
            s.apply(Event::RestartDone),
            Err(Refused { from: State::Running, event: Event::RestartDone })
        );
        assert_eq!(s.get(), State::Running, "a refused event changes nothing");
        assert_eq!(s.apply(Event::Halt(Cause::Hypervisor)), Ok(State::Halted));
        assert_eq!(s.get(), State::Halted);
        // Two threads racing Sleep and Fault: each event applies to what the other left.
        let s = SharedState::new(State::Running);
        std::thread::scope(|t| {
            t.spawn(|| {
                let _ = s.apply(Event::Sleep);
            });
            t.spawn(|| s.apply(Event::Fault).unwrap());
        });
        assert_eq!(s.get(), State::Faulted, "Sleep then Fault, or Fault then a refused Sleep");
    }
}
