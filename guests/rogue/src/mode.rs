//! Which misbehaviour a partition name selects: the first entry of [`MODES`] whose
//! fragment the name contains. Order matters where one fragment contains another
//! (`wbinvd` contains `invd`), so longer, more specific fragments come first.

/// A control-register bit a partition tries to set; the hypervisor must refuse it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ForbiddenCr4Bit {
    /// CR4.PCE: RDPMC at any privilege level.
    Pce,
    /// CR4.TSD: changes who may read the time-stamp counter.
    Tsd,
    /// CR4.MCE: machine-check exceptions, a machine-wide facility.
    Mce,
}

impl ForbiddenCr4Bit {
    /// The bit's mask in CR4.
    pub const fn mask(self) -> u64 {
        match self {
            Self::Pce => crate::state::cr4::PCE,
            Self::Tsd => crate::state::cr4::TSD,
            Self::Mce => crate::state::cr4::MCE,
        }
    }

    pub const fn name(self) -> &'static str {
        match self {
            Self::Pce => "CR4.PCE",
            Self::Tsd => "CR4.TSD",
            Self::Mce => "CR4.MCE",
        }
    }
}

/// What a `rogue` partition does wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// WBINVD: writes back and invalidates the shared caches.
    Wbinvd,
    /// MONITOR on a page of its own, then MWAIT with a deep C-state hint.
    Mwait,
    /// MONITOR alone.
    Monitor,
    /// RDPMC of counter 0.
    Rdpmc,
    /// Sets CR0.CD and CR0.NW (uncached execution).
    Cr0CacheDisable,
    /// Sets one forbidden CR4 bit.
    Cr4(ForbiddenCr4Bit),
    /// XSETBV of an invalid XCR0 (AVX without SSE).
    Xsetbv,
    /// Floods the console with 4 KiB lines.
    Flood,
    /// Reports faults of a `log` class as fast as it can.
    HealthSpam,
    /// Restarts itself right after the grace period, in every incarnation.
    SelfRestart,
    /// Plants marker values in per-core register state every window.
    Plant,
    /// Looks for the planter's markers in its own register state.
    Snoop,
    /// Publishes corrupt sequence numbers and lengths on a queuing channel it writes.
    CorruptQueue,
    /// `out` to port 0x80.
    Port,
    /// WRMSR to IA32_FEATURE_CONTROL.
    Msr,
    /// WRMSR to IA32_PQR_ASSOC selecting class of service 15: an attempt to move its core
    /// into another partition's cache ways.
    PqrAssoc,
    /// INVD.
    Invd,
    /// Empty IDT, then `int3`.
    TripleFault,
    /// `panic!`.
    Panic,
    /// Loops without yielding.
    Spin,
    /// A periodic task that always overruns.
    Deadline,
    /// Writes a channel it only reads.
    ReadOnlyChannel,
    /// Sleeps for minutes in `Yield(until)`: a restart another partition asks for must
    /// still happen at once.
    Sleep,
    /// Counts its boots in its persistent region, prints the count and its `args`, then
    /// writes beyond its RAM (give it `persistent` and `on memory_violation restart`).
    Keeper,
    /// Two vCPUs that both print what incarnation they run in; in the first one, vCPU 1
    /// writes I/O port 0x80 (give it `cores` with two cores and `on io_violation
    /// restart`): the partition must come back whole.
    SecondVcpuFault,
    /// Asks for the hypervisor's counters table (`PrintSummary`) once a second and prints
    /// the status: the table with `privileges query`, a refusal (and a health event)
    /// without.
    Summary,
    /// Writes beyond its RAM (the default).
    OutsideRam,
}

/// Name fragment → mode, first match wins (see the module documentation).
pub const MODES: &[(&str, Mode)] = &[
    ("wbinvd", Mode::Wbinvd),
    ("mwait", Mode::Mwait),
    ("monitor", Mode::Monitor),
    ("rdpmc", Mode::Rdpmc),
    ("cr0cd", Mode::Cr0CacheDisable),
    ("cr4pce", Mode::Cr4(ForbiddenCr4Bit::Pce)),
    ("cr4tsd", Mode::Cr4(ForbiddenCr4Bit::Tsd)),
    ("cr4mce", Mode::Cr4(ForbiddenCr4Bit::Mce)),
    ("xsetbv", Mode::Xsetbv),
    ("flood", Mode::Flood),
    ("hmspam", Mode::HealthSpam),
    ("selfrestart", Mode::SelfRestart),
    ("plant", Mode::Plant),
    ("snoop", Mode::Snoop),
    ("chanseq", Mode::CorruptQueue),
    ("port", Mode::Port),
    ("msr", Mode::Msr),
    ("pqr", Mode::PqrAssoc),
    ("invd", Mode::Invd),
    ("triple", Mode::TripleFault),
    ("panic", Mode::Panic),
    ("spin", Mode::Spin),
    ("deadline", Mode::Deadline),
    ("readonly", Mode::ReadOnlyChannel),
    ("sleeper", Mode::Sleep),
    ("keeper", Mode::Keeper),
    ("twovcpu", Mode::SecondVcpuFault),
    ("summary", Mode::Summary),
];

/// The mode a partition called `name` runs.
pub fn mode_for(name: &str) -> Mode {
    MODES.iter().find(|(fragment, _)| name.contains(fragment)).map_or(Mode::OutsideRam, |&(_, mode)| mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every fragment, used as a whole name, selects its own mode: no earlier entry
    /// shadows it (the reason `wbinvd` must come before `invd`).
    #[test]
    fn no_fragment_is_shadowed_by_an_earlier_one() {
        for &(fragment, mode) in MODES {
            assert_eq!(mode_for(fragment), mode, "{fragment}");
        }
    }

    #[test]
    fn names_in_the_test_tables_select_the_intended_mode() {
        assert_eq!(mode_for("rogue_invd"), Mode::Invd);
        assert_eq!(mode_for("wbinvd"), Mode::Wbinvd);
        assert_eq!(mode_for("rogue_port"), Mode::Port);
        assert_eq!(mode_for("rogue_pqr"), Mode::PqrAssoc);
        assert_eq!(mode_for("cr4tsd"), Mode::Cr4(ForbiddenCr4Bit::Tsd));
        assert_eq!(mode_for("keeper"), Mode::Keeper);
        assert_eq!(mode_for("twovcpu"), Mode::SecondVcpuFault);
        assert_eq!(mode_for("summary"), Mode::Summary);
        assert_eq!(mode_for("nosy_summary"), Mode::Summary);
        assert_eq!(mode_for("rogue"), Mode::OutsideRam);
        assert_eq!(mode_for(""), Mode::OutsideRam);
    }

    #[test]
    fn cr4_bits_are_the_architectural_ones() {
        assert_eq!(ForbiddenCr4Bit::Tsd.mask(), 1 << 2);
        assert_eq!(ForbiddenCr4Bit::Mce.mask(), 1 << 6);
        assert_eq!(ForbiddenCr4Bit::Pce.mask(), 1 << 8);
    }
}
