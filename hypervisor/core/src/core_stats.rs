//! The per-core counters the hypervisor keeps for the operator (VM exits, window switches
//! and the TSC ticks they took) and the once-a-second lines an idle core prints from them
//! (`scripts/bench` reads them: a core dedicated to a computing partition should show 0
//! exits). Writing into any `fmt::Write`, so the binary formats without the heap.

use alloc::vec::Vec;
use core::fmt::{self, Write};
use core::sync::atomic::{AtomicU64, Ordering};

/// The machine's counters, one entry per core.
#[derive(Clone, Copy, Debug)]
pub struct CoreCounters<'a> {
    pub exits: &'a [AtomicU64],
    pub switches: &'a [AtomicU64],
    pub switch_ticks: &'a [AtomicU64],
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
    pub fn start(c: &CoreCounters<'_>) -> Self {
        Rates { exits: load(c.exits), switches: load(c.switches), switch_ticks: load(c.switch_ticks) }
    }

    /// Writes what happened since the last call: every core's VM exits into `exits`
    /// (` core0=12 core1=0`), and into `switches` the window switches and their average
    /// cost of the cores that switched (` core2=1000 (avg 477 ticks)`; nothing when none
    /// did).
    pub fn advance(
        &mut self,
        c: &CoreCounters<'_>,
        exits: &mut impl Write,
        switches: &mut impl Write,
    ) -> fmt::Result {
        for (i, (counter, before)) in c.exits.iter().zip(self.exits.iter_mut()).enumerate() {
            let now = counter.load(Ordering::Relaxed);
            write!(exits, " core{i}={}", now.wrapping_sub(*before))?;
            *before = now;
        }
        let last = self.switches.iter_mut().zip(self.switch_ticks.iter_mut());
        for (i, ((n, t), (last_n, last_t))) in c.switches.iter().zip(c.switch_ticks).zip(last).enumerate() {
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
        let exits = [AtomicU64::new(5), AtomicU64::new(0), AtomicU64::new(7)];
        let switches = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(10)];
        let ticks = [AtomicU64::new(0), AtomicU64::new(0), AtomicU64::new(4_000)];
        let c = CoreCounters { exits: &exits, switches: &switches, switch_ticks: &ticks };
        let mut rates = Rates::start(&c);
        exits[0].fetch_add(3, Ordering::Relaxed);
        switches[2].fetch_add(1000, Ordering::Relaxed);
        ticks[2].fetch_add(477_000, Ordering::Relaxed);
        let (mut e, mut s) = (String::new(), String::new());
        rates.advance(&c, &mut e, &mut s).unwrap();
        assert_eq!(e, " core0=3 core1=0 core2=0");
        assert_eq!(s, " core2=1000 (avg 477 ticks)");
        let (mut e, mut s) = (String::new(), String::new());
        rates.advance(&c, &mut e, &mut s).unwrap();
        assert_eq!(e, " core0=0 core1=0 core2=0", "since the last line only");
        assert_eq!(s, "", "no switches, no line");
    }
}
