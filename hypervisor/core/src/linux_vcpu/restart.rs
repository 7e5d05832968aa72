//! Restarting a Linux partition (issue 12): every vCPU leaves the guest, then the boot
//! vCPU rebuilds the partition's RAM from the kernel and initramfs kept since boot and
//! boots it again; the other vCPUs wait for its SIPI as at boot.
//!
//! The vCPUs run on their own cores, so they meet through a [`Rendezvous`] the partition
//! owns. The vCPU whose event the health monitor turned into a restart calls
//! [`Rendezvous::request`] and stops the partition (the binary's flag and NMIs); each vCPU,
//! once out of the guest, asks [`Rendezvous::step`] what to do until it answers
//! [`RestartStep::Rejoin`] (or, for the boot vCPU, [`RestartStep::Rebuild`]):
//!
//! ```
//! use hallows_core::linux_vcpu::restart::{Rendezvous, RestartStep};
//! let r = Rendezvous::default();
//! let seen = r.generation();
//! assert!(r.request()); // vCPU 1 triple-faulted
//! assert!(!r.request()); // a second event while it is under way changes nothing
//! assert_eq!(r.step(0, 2, seen), RestartStep::Wait); // vCPU 1 has not left the guest yet
//! assert_eq!(r.step(1, 2, seen), RestartStep::Wait); // ... now it has
//! assert_eq!(r.step(0, 2, seen), RestartStep::Rebuild);
//! r.finish(); // the boot vCPU rebuilt the partition
//! assert_eq!(r.step(1, 2, seen), RestartStep::Rejoin(seen + 1));
//! assert_eq!(r.step(1, 2, seen + 1), RestartStep::None);
//! ```
//!
//! Rebuilding waits until every vCPU has parked, so no vCPU still runs the old kernel
//! while RAM is rewritten. Only the boot vCPU rebuilds: its core is the one Linux boots on.

use core::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};

/// Most vCPUs a rendezvous tracks (bits of its parked mask); a Linux partition has at most
/// one vCPU per core of the machine, fewer than this.
pub const MAX_VCPUS: usize = 64;

/// The meeting point of a Linux partition's vCPUs during a restart.
#[derive(Debug, Default)]
pub struct Rendezvous {
    /// A restart was requested and is not finished.
    pending: AtomicBool,
    /// vCPUs that left the guest for the pending restart (bit per vCPU).
    parked: AtomicU64,
    /// Restarts finished (a vCPU compares it with the one it runs in).
    generation: AtomicU32,
}

/// What a vCPU out of the guest does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RestartStep {
    /// No restart concerns this vCPU: it stays stopped (a halt) or runs on.
    None,
    /// A restart is under way: wait (the boot vCPU: for the others to park; the others:
    /// for the boot vCPU to finish).
    Wait,
    /// The boot vCPU, every vCPU parked: rebuild the partition, then [`Rendezvous::finish`].
    Rebuild,
    /// The restart finished: reset this vCPU to its boot state; it now runs in this
    /// generation.
    Rejoin(u32),
}

impl Rendezvous {
    /// Asks for a restart. Returns whether this call started it (false while one is
    /// already under way: one restart covers every event until it is done).
    pub fn request(&self) -> bool {
        !self.pending.swap(true, Ordering::SeqCst)
    }

    /// Whether a restart is under way.
    pub fn pending(&self) -> bool {
        self.pending.load(Ordering::SeqCst)
    }

    /// Restarts finished so far.
    pub fn generation(&self) -> u32 {
        self.generation.load(Ordering::SeqCst)
    }

    /// What vCPU `vcpu` of `vcpus`, out of the guest and running in generation `seen`,
    /// does next. While a restart is pending, calling it parks the vCPU (idempotent).
    pub fn step(&self, vcpu: usize, vcpus: usize, seen: u32) -> RestartStep {
        let generation = self.generation();
        if generation != seen {
            return RestartStep::Rejoin(generation);
        }
        if !self.pending() {
            return RestartStep::None;
        }
        if vcpu < MAX_VCPUS {
            self.parked.fetch_or(1 << vcpu, Ordering::SeqCst);
        }
        let all = if vcpus >= MAX_VCPUS { u64::MAX } else { (1u64 << vcpus) - 1 };
        if vcpu == 0 && self.parked.load(Ordering::SeqCst) & all == all {
            RestartStep::Rebuild
        } else {
            RestartStep::Wait
        }
    }

    /// The boot vCPU rebuilt the partition: the others may rejoin, and the next restart
    /// starts afresh.
    pub fn finish(&self) {
        self.parked.store(0, Ordering::SeqCst);
        self.pending.store(false, Ordering::SeqCst);
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_vcpu_rebuilds_only_when_every_vcpu_parked() {
        let r = Rendezvous::default();
        assert_eq!(r.step(0, 3, 0), RestartStep::None, "nothing pending: a halted vCPU stays halted");
        assert!(r.request());
        assert_eq!(r.step(0, 3, 0), RestartStep::Wait);
        assert_eq!(r.step(2, 3, 0), RestartStep::Wait);
        assert_eq!(r.step(0, 3, 0), RestartStep::Wait, "vCPU 1 still runs the old kernel");
        assert_eq!(r.step(1, 3, 0), RestartStep::Wait, "only the boot vCPU rebuilds");
        assert_eq!(r.step(0, 3, 0), RestartStep::Rebuild);
        r.finish();
        assert!(!r.pending());
        for v in 0..3 {
            assert_eq!(r.step(v, 3, 0), RestartStep::Rejoin(1));
            assert_eq!(r.step(v, 3, 1), RestartStep::None);
        }
    }

    #[test]
    fn a_second_restart_parks_everyone_again() {
        let r = Rendezvous::default();
        assert!(r.request());
        r.step(1, 2, 0);
        assert_eq!(r.step(0, 2, 0), RestartStep::Rebuild);
        r.finish();
        assert!(r.request(), "a new restart after the first finished");
        assert_eq!(r.step(0, 2, 1), RestartStep::Wait, "vCPU 1's park for the first one does not count");
        assert_eq!(r.step(1, 2, 1), RestartStep::Wait);
        assert_eq!(r.step(0, 2, 1), RestartStep::Rebuild);
    }

    #[test]
    fn single_vcpu_and_out_of_range_vcpus() {
        let r = Rendezvous::default();
        assert!(r.request());
        assert_eq!(r.step(0, 1, 0), RestartStep::Rebuild);
        let wide = Rendezvous::default();
        wide.request();
        assert_eq!(wide.step(MAX_VCPUS + 3, MAX_VCPUS + 4, 0), RestartStep::Wait, "no panic past the mask");
        assert_eq!(wide.step(0, MAX_VCPUS + 4, 0), RestartStep::Wait);
    }
}
