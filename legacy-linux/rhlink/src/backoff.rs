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

/// One wait's progress through the phases.
#[derive(Clone, Debug)]
pub struct Backoff {
    step: u32,
    sleep: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

impl Backoff {
    pub fn new() -> Self {
        Self { step: 0, sleep: FIRST_SLEEP }
    }

    /// Whether the next wait sleeps (the cheap phases are over).
    pub fn is_sleeping(&self) -> bool {
        self.step >= SPINS + YIELDS
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
        }
        self.step = self.step.saturating_add(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
