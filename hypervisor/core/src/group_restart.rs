//! Restarting a partition whole, whatever its number of vCPUs. Its vCPUs run on
//! different cores, and its RAM may be rebuilt only while none of them runs, so the cores
//! agree through one [`RestartSync`] per partition:
//!
//! 1. The core whose vCPU's fault (or request) the health monitor turns into a restart
//!    **claims** it ([`RestartSync::claim`]) and becomes the owner of the rebuild. The claim
//!    is made with the partition's health monitor locked, together with its decision
//!    ([`decide_once`]), so a restart is counted once for the partition however many vCPUs
//!    fault; a fault of another vCPU while the restart is under way
//!    ([`RestartSync::busy`]) is absorbed ([`Absorbed`]).
//! 2. Every other core, the next time it looks ([`RestartSync::poll`]: after any exit,
//!    an NMI from the owner forces one; on a scheduled core at the start of the
//!    partition's own windows), **parks** its vCPU (never entered until released) and
//!    says so ([`RestartSync::ack`]).
//! 3. The owner waits for all of them ([`Owned::step`]), but not forever: past
//!    [`stop_wait_ns`] it gives up ([`RestartSync::abandon`]), the partition is halted and
//!    the vCPUs that did not answer are named ([`StopTimeout`]).
//! 4. With every vCPU parked, the owner rebuilds RAM and reloads the image (in its own
//!    windows on a scheduled core), resets its own vCPU and **releases** the others
//!    ([`RestartSync::release`]): each then starts at the entry, as at boot (the SDK's
//!    vCPU 0 runs main, the others wait for it in fresh RAM).
//!
//! A single-vCPU partition takes the same path; its owner finds every vCPU parked at once.
//!
//! ```
//! use hallows_core::group_restart::{OwnerStep, Poll, RestartSync};
//! let sync = RestartSync::new();
//! // vCPU 1 of 2 faults; its core owns the restart.
//! let gen = sync.claim(1, 2).unwrap();
//! assert_eq!(sync.owner_step(2, 10, 100), OwnerStep::Wait);
//! // vCPU 0's core notices, parks its vCPU and says so.
//! assert_eq!(sync.poll(0, 0), Poll::Park { gen });
//! sync.ack(0);
//! assert_eq!(sync.poll(0, gen), Poll::Nothing, "parked for this restart");
//! assert_eq!(sync.owner_step(2, 20, 100), OwnerStep::Rebuild);
//! sync.release(gen);
//! assert_eq!(sync.poll(0, gen), Poll::Resume);
//! ```

use core::fmt;
use core::sync::atomic::{AtomicU64, Ordering};

use crate::boot_plan::CorePlan;

/// Most vCPUs a partition may have for its cores to agree on a restart (one bit each).
pub const MAX_VCPUS: u32 = 64;

/// How long the owner waits for the others beyond two of their cores' major frames: a
/// dedicated core answers the owner's NMI within microseconds.
pub const STOP_GRACE_NS: u64 = 50_000_000;

/// Where a partition's restart is, as all its cores see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No restart since boot, or the last one released its vCPUs.
    Idle,
    /// Restart `gen` was just claimed by vCPU `owner`'s core, which is still preparing it.
    Claiming { gen: u32, owner: u32 },
    /// Restart `gen`: every vCPU but `owner` must park.
    Stopping { gen: u32, owner: u32 },
    /// Restart `gen` is done: parked vCPUs start afresh.
    Released { gen: u32 },
    /// Restart `gen` was given up (a vCPU never parked, or the rebuild failed): the
    /// partition is halted, parked vCPUs stay stopped.
    Abandoned { gen: u32 },
}

const IDLE: u64 = 0;
const CLAIMING: u64 = 1;
const STOPPING: u64 = 2;
const RELEASED: u64 = 3;
const ABANDONED: u64 = 4;

impl Phase {
    const fn encode(self) -> u64 {
        let (gen, tag, owner) = match self {
            Phase::Idle => (0, IDLE, 0),
            Phase::Claiming { gen, owner } => (gen, CLAIMING, owner),
            Phase::Stopping { gen, owner } => (gen, STOPPING, owner),
            Phase::Released { gen } => (gen, RELEASED, 0),
            Phase::Abandoned { gen } => (gen, ABANDONED, 0),
        };
        (gen as u64) << 32 | tag << 16 | owner as u64
    }

    const fn decode(word: u64) -> Phase {
        let gen = (word >> 32) as u32;
        let owner = (word & 0xFFFF) as u32;
        match (word >> 16) & 0xFFFF {
            CLAIMING => Phase::Claiming { gen, owner },
            STOPPING => Phase::Stopping { gen, owner },
            RELEASED => Phase::Released { gen },
            ABANDONED => Phase::Abandoned { gen },
            _ => Phase::Idle,
        }
    }

    const fn gen(self) -> u32 {
        match self {
            Phase::Idle => 0,
            Phase::Claiming { gen, .. }
            | Phase::Stopping { gen, .. }
            | Phase::Released { gen }
            | Phase::Abandoned { gen } => gen,
        }
    }
}

/// What a core does with its vCPU of a partition, after [`RestartSync::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll {
    /// Nothing changes.
    Nothing,
    /// Stop entering the vCPU (reset what it left in the core), remember it parked for
    /// restart `gen`, then [`RestartSync::ack`].
    Park { gen: u32 },
    /// The parked vCPU starts afresh at the entry (a fresh control block).
    Resume,
    /// The restart was given up: the parked vCPU stays stopped for good.
    Halt,
}

/// What the owner of a restart does next, after [`RestartSync::owner_step`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OwnerStep {
    /// Some vCPU still runs: look again later (in the owner's own time).
    Wait,
    /// Every vCPU is parked: rebuild.
    Rebuild,
    /// The wait is over and these vCPUs (bit per index) never parked: give up.
    GiveUp { missing: u64 },
}

/// One partition's restart agreement, shared by the cores that run its vCPUs.
#[derive(Debug)]
pub struct RestartSync {
    /// The encoded [`Phase`].
    phase: AtomicU64,
    /// Bit per vCPU: parked for the current restart (the owner's bit set at the claim).
    parked: AtomicU64,
}

impl Default for RestartSync {
    fn default() -> Self {
        Self::new()
    }
}

/// The bits of vCPUs `0..vcpus`.
const fn all(vcpus: u32) -> u64 {
    if vcpus >= 64 {
        u64::MAX
    } else {
        (1u64 << vcpus) - 1
    }
}

impl RestartSync {
    pub const fn new() -> Self {
        RestartSync { phase: AtomicU64::new(Phase::Idle.encode()), parked: AtomicU64::new(0) }
    }

    pub fn phase(&self) -> Phase {
        Phase::decode(self.phase.load(Ordering::SeqCst))
    }

    /// A restart is under way (claimed, its vCPUs not yet released): a fault or request
    /// now belongs to it and is not counted again.
    pub fn busy(&self) -> bool {
        matches!(self.phase(), Phase::Claiming { .. } | Phase::Stopping { .. })
    }

    /// vCPU `owner` of a partition of `vcpus` takes on a restart. Call it with the
    /// partition's health monitor locked, right after the decision to restart. Returns the
    /// restart's generation, or `None` when a restart is already under way (the caller
    /// parks its vCPU instead) or the partition has more vCPUs than this can count.
    pub fn claim(&self, owner: u32, vcpus: u32) -> Option<u32> {
        if owner >= vcpus || vcpus > MAX_VCPUS {
            return None;
        }
        let mut current = self.phase.load(Ordering::SeqCst);
        loop {
            let phase = Phase::decode(current);
            if matches!(phase, Phase::Claiming { .. } | Phase::Stopping { .. }) {
                return None;
            }
            let gen = phase.gen().wrapping_add(1).max(1);
            let claiming = Phase::Claiming { gen, owner }.encode();
            match self.phase.compare_exchange(current, claiming, Ordering::SeqCst, Ordering::SeqCst) {
                Ok(_) => {
                    // Only the claimer writes the mask, and nobody acknowledges before
                    // `Stopping` is published: no acknowledgement of this restart is lost.
                    self.parked.store(1 << owner, Ordering::SeqCst);
                    self.phase.store(Phase::Stopping { gen, owner }.encode(), Ordering::SeqCst);
                    return Some(gen);
                }
                Err(seen) => current = seen,
            }
        }
    }

    /// What the core running vCPU `vcpu` does now; `parked` is the restart it parked the
    /// vCPU for (0: not parked, running or stopped for good).
    pub fn poll(&self, vcpu: u32, parked: u32) -> Poll {
        match self.phase() {
            Phase::Stopping { gen, owner } if owner != vcpu && parked != gen => Poll::Park { gen },
            Phase::Released { .. } if parked != 0 => Poll::Resume,
            Phase::Abandoned { .. } if parked != 0 => Poll::Halt,
            _ => Poll::Nothing,
        }
    }

    /// Whether [`RestartSync::poll`] would ask something of the core now (cheap enough to
    /// ask while the core waits).
    pub fn calls(&self, vcpu: u32, parked: u32) -> bool {
        self.poll(vcpu, parked) != Poll::Nothing
    }

    /// vCPU `vcpu` is parked: it does not run until released. Repeating it is harmless.
    pub fn ack(&self, vcpu: u32) {
        if vcpu < MAX_VCPUS {
            self.parked.fetch_or(1 << vcpu, Ordering::SeqCst);
        }
    }

    /// The owner's next step for a partition of `vcpus`, at `now_ns`, with the wait ending
    /// at `deadline_ns`.
    pub fn owner_step(&self, vcpus: u32, now_ns: u64, deadline_ns: u64) -> OwnerStep {
        let missing = all(vcpus) & !self.parked.load(Ordering::SeqCst);
        if missing == 0 {
            OwnerStep::Rebuild
        } else if now_ns >= deadline_ns {
            OwnerStep::GiveUp { missing }
        } else {
            OwnerStep::Wait
        }
    }

    /// Restart `gen` is done: the parked vCPUs start afresh.
    pub fn release(&self, gen: u32) {
        self.finish(gen, Phase::Released { gen });
    }

    /// Restart `gen` is given up: the partition is halted and parked vCPUs stay stopped.
    pub fn abandon(&self, gen: u32) {
        self.finish(gen, Phase::Abandoned { gen });
    }

    fn finish(&self, gen: u32, to: Phase) {
        let current = self.phase.load(Ordering::SeqCst);
        if Phase::decode(current).gen() == gen {
            let _ = self.phase.compare_exchange(current, to.encode(), Ordering::SeqCst, Ordering::SeqCst);
        }
    }
}

/// The owner's side of one restart: its generation and how long it waits for the other
/// vCPUs to park.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owned {
    pub gen: u32,
    deadline_ns: u64,
    wait_ns: u64,
    all_parked: bool,
}

impl Owned {
    /// Restart `gen`, claimed at `now_ns`; the wait lasts `wait_ns` ([`stop_wait_ns`]).
    pub const fn new(gen: u32, now_ns: u64, wait_ns: u64) -> Self {
        Owned { gen, deadline_ns: now_ns.saturating_add(wait_ns), wait_ns, all_parked: false }
    }

    /// [`RestartSync::owner_step`] at `now_ns`; once every vCPU parked, it stays so.
    pub fn step(&mut self, sync: &RestartSync, vcpus: u32, now_ns: u64) -> OwnerStep {
        if !self.all_parked {
            match sync.owner_step(vcpus, now_ns, self.deadline_ns) {
                OwnerStep::Rebuild => self.all_parked = true,
                other => return other,
            }
        }
        OwnerStep::Rebuild
    }

    /// The console line when the wait ends with `missing` vCPUs still running.
    pub fn timeout(self, partition: &str, missing: u64) -> StopTimeout<'_> {
        StopTimeout { partition, missing, waited_ns: self.wait_ns }
    }
}

/// A fault or restart request of vCPU `vcpu` (of `vcpus`), decided once for the partition.
/// The caller holds the partition's health monitor `health` locked for the whole call.
/// `None` when a restart is already under way: the event belongs to it, is not counted
/// again, and the caller parks its vCPU. Otherwise `decide` runs (it says whether its
/// verdict restarts the partition) and a restart is claimed at once, before any other
/// vCPU can decide: the verdict and, when this core owns the restart, its generation.
pub fn decide_once<H, T>(
    sync: &RestartSync,
    health: &mut H,
    vcpu: u32,
    vcpus: u32,
    decide: impl FnOnce(&mut H) -> (T, bool),
) -> Option<(T, Option<u32>)> {
    if sync.busy() {
        return None;
    }
    let (verdict, restarts) = decide(health);
    Some((verdict, if restarts { sync.claim(vcpu, vcpus) } else { None }))
}

/// How long the owner of partition `partition`'s restart waits for its other vCPUs to
/// park: [`STOP_GRACE_NS`] plus two of the longest major frame among the cores that run
/// it (a vCPU on a scheduled core parks only in its partition's own window).
pub fn stop_wait_ns(cores: &[CorePlan], partition: usize) -> u64 {
    let longest = cores
        .iter()
        .filter(|c| c.vcpus.iter().any(|v| v.partition == partition))
        .map(|c| c.major_frame_ns)
        .max()
        .unwrap_or(0);
    STOP_GRACE_NS.saturating_add(longest.saturating_mul(2))
}

/// The console line for a restart given up because vCPUs did not park in time.
pub struct StopTimeout<'a> {
    pub partition: &'a str,
    pub missing: u64,
    pub waited_ns: u64,
}

impl fmt::Display for StopTimeout<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "partition {}: restart given up: vCPU", self.partition)?;
        let mut sep = " ";
        for i in (0..64).filter(|i| self.missing & (1 << i) != 0) {
            write!(f, "{sep}{i}")?;
            sep = ", ";
        }
        write!(f, " did not stop within {} ms; halted", self.waited_ns / 1_000_000)
    }
}

/// The console line for a fault of a vCPU whose partition is already being restarted:
/// it belongs to the old run, is not counted, and the vCPU is parked.
pub struct Absorbed<'a, W: fmt::Display> {
    pub partition: &'a str,
    pub vcpu: u32,
    pub what: W,
}

impl<W: fmt::Display> fmt::Display for Absorbed<'_, W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "partition {}: vCPU {}: {} while the partition restarts: not counted, vCPU parked",
            self.partition, self.vcpu, self.what
        )
    }
}

#[cfg(test)]
mod tests;
