//! The per-core counters the hypervisor keeps for the operator (VM exits, window switches
//! and the TSC ticks they took) and the once-a-second lines an idle core prints from them
//! (`scripts/bench` reads them: a core dedicated to a computing partition should show 0
//! exits). Writing into any `fmt::Write`, so the binary formats without the heap.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// The machine's counters, one entry per core, shared by all cores.
#[derive(Debug, Default)]
pub struct CoreCounters {
    /// VM exits taken (for the exits-per-second measurement).
    exits: Vec<AtomicU64>,
    /// Window switches, and the TSC ticks they took in all (from the preemption-timer
    /// exit to the next partition's VM entry).
    switches: Vec<AtomicU64>,
    switch_ticks: Vec<AtomicU64>,
}

impl CoreCounters {
    /// Zeroed counters for `cores` cores.
    pub fn new(cores: usize) -> Self {
        let zeros = || (0..cores).map(|_| AtomicU64::new(0)).collect();
        CoreCounters { exits: zeros(), switches: zeros(), switch_ticks: zeros() }
    }

    /// Counts one VM exit on `core` (nothing for a core beyond the counters).
    #[inline]
    pub fn count_exit(&self, core: usize) {
        if let Some(c) = self.exits.get(core) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts one window switch on `core` that took `ticks`.
    #[inline]
    pub fn count_switch(&self, core: usize, ticks: u64) {
        if let (Some(n), Some(t)) = (self.switches.get(core), self.switch_ticks.get(core)) {
            n.fetch_add(1, Ordering::Relaxed);
            t.fetch_add(ticks, Ordering::Relaxed);
        }
    }
}

/// The counters at the last report, to print what happened since.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rates {
    exits: Vec<u64>,
    switches: Vec<u64>,
    switch_ticks: Vec<u64>,
}

fn load(counters: &[AtomicU64]) -> Vec<u64> {
    counters.iter().map(|c| c.load(Ordering::Relaxed)).collect()
}

impl Rates {
    /// Starts counting from the counters' values now.
    pub fn start(c: &CoreCounters) -> Self {
        Rates { exits: load(&c.exits), switches: load(&c.switches), switch_ticks: load(&c.switch_ticks) }
    }

    /// Writes what happened since the last call: every core's VM exits into `exits`
    /// (` core0=12 core1=0`), and into `switches` the window switches and their average
    /// cost of the cores that switched (` core2=1000 (avg 477 ticks)`; nothing when none
    /// did).
    pub fn advance(
        &mut self,
        c: &CoreCounters,
        exits: &mut impl Write,
        switches: &mut impl Write,
    ) -> fmt::Result {
        for (i, (counter, before)) in c.exits.iter().zip(self.exits.iter_mut()).enumerate() {
            let now = counter.load(Ordering::Relaxed);
            write!(exits, " core{i}={}", now.wrapping_sub(*before))?;
            *before = now;
        }
        let last = self.switches.iter_mut().zip(self.switch_ticks.iter_mut());
        for (i, ((n, t), (last_n, last_t))) in c.switches.iter().zip(&c.switch_ticks).zip(last).enumerate() {
            let (n, t) = (n.load(Ordering::Relaxed), t.load(Ordering::Relaxed));
            let (dn, dt) = (n.wrapping_sub(*last_n), t.wrapping_sub(*last_t));
            if let Some(avg) = dt.checked_div(dn) {
                write!(switches, " core{i}={dn} (avg {avg} ticks)")?;
            }
            (*last_n, *last_t) = (n, t);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::string::String;

    #[test]
    fn each_line_counts_since_the_last() {
        let c = CoreCounters::new(3);
        (0..5).for_each(|_| c.count_exit(0));
        c.count_exit(2);
        c.count_switch(2, 4_000);
        let mut rates = Rates::start(&c);
        (0..3).for_each(|_| c.count_exit(0));
        (0..1000).for_each(|_| c.count_switch(2, 477));
        c.count_exit(3);
        c.count_switch(7, 1);
        let (mut e, mut s) = (String::new(), String::new());
        rates.advance(&c, &mut e, &mut s).unwrap();
        assert_eq!(e, " core0=3 core1=0 core2=0", "cores beyond the counters count nothing");
        assert_eq!(s, " core2=1000 (avg 477 ticks)");
        let (mut e, mut s) = (String::new(), String::new());
        rates.advance(&c, &mut e, &mut s).unwrap();
        assert_eq!(e, " core0=0 core1=0 core2=0", "since the last line only");
        assert_eq!(s, "", "no switches, no line");
    }
}
