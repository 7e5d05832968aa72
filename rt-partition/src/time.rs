//! Time: nanoseconds since the hypervisor started.
//!
//! Two clocks agree on the same base:
//! - [`now_ns`] reads the TSC and scales it with `BootInfo::tsc_hz`. It costs no VM exit,
//!   so periodic tasks and jitter measurements use it. At start-up the SDK reads the
//!   hypervisor's clock once ([`crate::hypercall::time_now`]) together with the TSC, so the
//!   two differ only by the error of `tsc_hz`.
//! - The `TimeNow` hypercall is the authority (the hypervisor's own clock); `Yield(until)`
//!   deadlines are in its time. When `tsc_hz` is 0 (unknown), [`now_ns`] falls back to it.
//!
//! Under Bochs the TSC counts executed instructions, so TSC time is instruction time.

use core::sync::atomic::{AtomicU64, Ordering};

/// Converts TSC ticks to nanoseconds with a 32.32 fixed-point multiplier (no division on
/// the fast path; never more than 1 ns plus 1 ns per 2^32 ticks below the exact value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TscScale {
    /// Nanoseconds per tick, times 2^32.
    mult: u64,
}

impl TscScale {
    /// The scale for a TSC of `tsc_hz` ticks per second, or `None` when `tsc_hz` is 0.
    pub const fn new(tsc_hz: u64) -> Option<Self> {
        if tsc_hz == 0 {
            return None;
        }
        let mult = ((1_000_000_000u128 << 32) / tsc_hz as u128) as u64;
        // Frequencies below 1 Hz are not realistic; the saturation keeps the maths total.
        Some(Self { mult: if mult == 0 { 1 } else { mult } })
    }

    /// `ticks` in nanoseconds (saturating).
    pub const fn ticks_to_ns(self, ticks: u64) -> u64 {
        let ns = (ticks as u128 * self.mult as u128) >> 32;
        if ns > u64::MAX as u128 {
            u64::MAX
        } else {
            ns as u64
        }
    }
}

/// The TSC-to-hypervisor-time anchor set at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Clock {
    scale: TscScale,
    /// TSC value at the anchor.
    tsc0: u64,
    /// Hypervisor time at the anchor.
    ns0: u64,
}

impl Clock {
    /// A clock reading `ns0` when the TSC read `tsc0`.
    pub const fn new(scale: TscScale, tsc0: u64, ns0: u64) -> Self {
        Self { scale, tsc0, ns0 }
    }

    /// Time at TSC value `tsc` (a TSC that went backwards reads as the anchor time).
    pub const fn ns_at(&self, tsc: u64) -> u64 {
        self.ns0.saturating_add(self.scale.ticks_to_ns(tsc.saturating_sub(self.tsc0)))
    }
}

static TSC_MULT: AtomicU64 = AtomicU64::new(0);
static TSC0: AtomicU64 = AtomicU64::new(0);
static NS0: AtomicU64 = AtomicU64::new(0);

/// Reads the time-stamp counter.
#[inline]
pub fn rdtsc() -> u64 {
    // SAFETY: RDTSC has no memory effects; CR4.TSD is not set by the hypervisor (and if it
    // were, the fault would be the partition's own problem, reported as a triple fault).
    unsafe { core::arch::x86_64::_rdtsc() }
}

/// Anchors the TSC clock; called once by the start-up code on vCPU 0.
#[cfg_attr(not(target_os = "none"), allow(dead_code))]
pub(crate) fn init(tsc_hz: u64, boot_time_ns: u64) {
    let Some(scale) = TscScale::new(tsc_hz) else { return };
    let before = rdtsc();
    let ns0 = crate::hypercall::time_now().unwrap_or(boot_time_ns);
    let after = rdtsc();
    // The hypervisor read its clock somewhere between the two TSC reads.
    let tsc0 = before + (after - before) / 2;
    TSC0.store(tsc0, Ordering::Relaxed);
    NS0.store(ns0, Ordering::Relaxed);
    TSC_MULT.store(scale.mult, Ordering::Release);
}

fn clock() -> Option<Clock> {
    let mult = TSC_MULT.load(Ordering::Acquire);
    if mult == 0 {
        return None;
    }
    Some(Clock::new(TscScale { mult }, TSC0.load(Ordering::Relaxed), NS0.load(Ordering::Relaxed)))
}

/// Nanoseconds since the hypervisor started: TSC-based when `tsc_hz` is known, otherwise
/// the `TimeNow` hypercall (and 0 if even that fails).
pub fn now_ns() -> u64 {
    match clock() {
        Some(c) => c.ns_at(rdtsc()),
        None => crate::hypercall::time_now().unwrap_or(0),
    }
}

/// Waits until `deadline_ns` (hypervisor time), yielding the processor meanwhile; returns
/// the time at wake-up.
pub fn sleep_until(deadline_ns: u64) -> u64 {
    loop {
        let now = now_ns();
        if now >= deadline_ns {
            return now;
        }
        let _ = crate::hypercall::yield_until(deadline_ns);
    }
}

/// Waits `duration_ns`, yielding the processor meanwhile; returns the time at wake-up.
pub fn sleep_ns(duration_ns: u64) -> u64 {
    sleep_until(now_ns().saturating_add(duration_ns))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn zero_frequency_has_no_scale() {
        assert_eq!(TscScale::new(0), None);
    }

    #[test]
    fn one_gigahertz_is_one_ns_per_tick() {
        let s = TscScale::new(1_000_000_000).unwrap();
        assert_eq!(s.ticks_to_ns(12345), 12345);
    }

    #[test]
    fn hundred_megahertz_is_ten_ns_per_tick() {
        let s = TscScale::new(100_000_000).unwrap();
        assert_eq!(s.ticks_to_ns(100_000_000), 1_000_000_000);
    }

    #[test]
    fn clock_is_anchored_and_monotonic() {
        let c = Clock::new(TscScale::new(2_000_000_000).unwrap(), 1000, 5_000);
        assert_eq!(c.ns_at(1000), 5_000);
        assert_eq!(c.ns_at(3000), 6_000);
        assert_eq!(c.ns_at(10), 5_000);
    }

    proptest! {
        /// The fixed-point conversion is at most 1 ns + 1 ns per 2^32 ticks below the exact one.
        #[test]
        fn scaling_matches_exact_division(hz in 1_000u64..10_000_000_000, ticks in 0u64..(1 << 50)) {
            let exact = (ticks as u128 * 1_000_000_000 / hz as u128) as u64;
            let got = TscScale::new(hz).unwrap().ticks_to_ns(ticks);
            prop_assert!(got <= exact);
            prop_assert!(exact - got <= 1 + (ticks >> 32), "exact {} got {}", exact, got);
        }

        #[test]
        fn clock_never_goes_backwards(a in any::<u64>(), b in any::<u64>(), hz in 1u64..u64::MAX) {
            let c = Clock::new(TscScale::new(hz).unwrap(), 1 << 20, 77);
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            prop_assert!(c.ns_at(lo) <= c.ns_at(hi));
        }
    }
}
