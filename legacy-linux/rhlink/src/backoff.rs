//! Waiting for the other side without a system call per message: spin first (the peer is
//! on another core and usually answers within microseconds), then yield, then sleep with
//! growing pauses up to a cap, so an idle channel costs almost no CPU.

use std::time::Duration;

/// Spins before the first yield.
const SPINS: u32 = 2_000;
/// Yields before the first sleep.
const YIELDS: u32 = 50;
/// First and longest sleep.
const FIRST_SLEEP: Duration = Duration::from_micros(20);
const MAX_SLEEP: Duration = Duration::from_millis(2);
/// Sleeps (about 20 ms in all) before the caller should look at the peer's state, and
/// sleeps between two looks after that (about 32 ms). Reading the peer's state is a read of
/// the channel's register block, which the hypervisor emulates (a VM exit): a wait
/// shorter than a real-time partition's schedule (a few ms between its windows) must not
/// cost one.
const SLEEPS_BEFORE_PEER_CHECK: u32 = 16;
const SLEEPS_BETWEEN_PEER_CHECKS: u32 = 16;

/// One wait's progress through the phases.
#[derive(Clone, Debug)]
pub struct Backoff {
    step: u32,
    sleep: Duration,
    /// Sleeps so far.
    slept: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self { step: 0, sleep: FIRST_SLEEP, slept: 0 }
    }

    /// Whether the next wait sleeps (the cheap phases are over).
    pub fn is_sleeping(&self) -> bool {
        self.step >= SPINS + YIELDS
    }

    /// Whether the caller should look at the peer's state now (a peer that stopped shows
    /// after about 20 ms of waiting; shorter waits never ask).
    pub fn time_to_check_peer(&self) -> bool {
        self.slept >= SLEEPS_BEFORE_PEER_CHECK
            && (self.slept - SLEEPS_BEFORE_PEER_CHECK).is_multiple_of(SLEEPS_BETWEEN_PEER_CHECKS)
    }

    /// The pause the next [`Backoff::wait`] sleeps, if it sleeps.
    pub fn next_sleep(&self) -> Option<Duration> {
        self.is_sleeping().then_some(self.sleep)
    }

    /// Waits a little, longer each time.
    pub fn wait(&mut self) {
        if self.step < SPINS {
            core::hint::spin_loop();
        } else if self.step < SPINS + YIELDS {
            std::thread::yield_now();
        } else {
            std::thread::sleep(self.sleep);
            self.sleep = (self.sleep * 2).min(MAX_SLEEP);
            self.slept = self.slept.saturating_add(1);
        }
        self.step = self.step.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_is_asked_only_after_a_long_wait_and_then_now_and_then() {
        let mut b = Backoff { step: SPINS + YIELDS, sleep: Duration::ZERO, slept: 0 };
        let mut asked = std::vec::Vec::new();
        for i in 0..64 {
            if b.time_to_check_peer() {
                asked.push(i);
            }
            b.slept += 1;
        }
        assert_eq!(asked, [16, 32, 48]);
    }

    #[test]
    fn spins_then_yields_then_sleeps_longer_up_to_the_cap() {
        let mut b = Backoff::new();
        for _ in 0..SPINS + YIELDS {
            assert_eq!(b.next_sleep(), None);
            b.wait();
        }
        let mut sleeps = Vec::new();
        for _ in 0..10 {
            sleeps.push(b.next_sleep().unwrap());
            b.wait();
        }
        assert_eq!(sleeps[0], FIRST_SLEEP);
        assert!(sleeps.windows(2).all(|w| w[1] >= w[0]));
        assert_eq!(*sleeps.last().unwrap(), MAX_SLEEP);
    }
}
