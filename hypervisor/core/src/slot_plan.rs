//! What a core's loop does around its VM entries, decided without the hardware: what an
//! entry led to ([`Next`]), what a scheduled core does with the slot that owns the time
//! now ([`slot_action`]), and how long it then leaves its window idle
//! ([`yield_resume_at`], [`sleeps`]). The binary's `run.rs` performs these.

use core::fmt::{self, Write as _};

use hallows_abi::health::EventClass;
use hallows_abi::text::FixedText;

use crate::vcpu::Exception;

/// What to do after an exit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Re-enter the same vCPU (or whoever owns the window now).
    Resume,
    /// Skip the exiting instruction, then resume.
    Skip,
    /// The instruction was emulated (an MMIO access): continue at `next_rip`.
    Emulated { next_rip: u64 },
    /// Re-enter with this exception delivered (RIP stays on the instruction).
    Inject(Exception),
    /// Give up the rest of the window (scheduled core) or wait until `until_ns`
    /// (dedicated core), after skipping the instruction.
    Yield { until_ns: u64 },
    /// The vCPU stopped.
    Stop,
    /// The hypercall would not finish before the window ends: leave the rest of the window
    /// idle without executing it; the VMCALL runs again at the partition's next window.
    Defer,
    /// A health-monitor event of this class; what happened is in the core's fault text
    /// (kept out of `Next` so that the hot path moves a small value).
    Fault(EventClass),
    /// The partition powered itself off (or asked for a reset it cannot get): stop it
    /// with this line.
    PowerOff(&'static str),
}

impl Next {
    /// A health event of `class`, its text written into `text` (without the heap).
    pub fn fault<const N: usize>(
        text: &mut FixedText<N>,
        class: EventClass,
        what: fmt::Arguments<'_>,
    ) -> Next {
        text.clear();
        let _ = text.write_fmt(what);
        Next::Fault(class)
    }
}

/// The vCPU that owns a slot, as a scheduled core sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// A restart is in progress: its work runs in the partition's windows.
    pub restarting: bool,
    /// Stopped for good.
    pub stopped: bool,
    /// Asleep (Yield) until this instant (ns since boot; 0: awake).
    pub wake_at_ns: u64,
}

/// What a scheduled core does with a slot.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SlotAction {
    /// Continue the owner's restart in this window's time, never past its end.
    Restart,
    /// Enter the owner (once its wake-up time has come, if later than now).
    Enter,
    /// Leave the slot idle to its end: an idle gap, a window of a partition this core does
    /// not run, a stopped owner, or one asleep for the whole window (not a switch worth
    /// measuring).
    Idle,
}

/// What a scheduled core does with the slot ending at `slot_end_ns`, owned by `owner`.
pub const fn slot_action(owner: Option<Owner>, slot_end_ns: u64) -> SlotAction {
    match owner {
        Some(o) if o.restarting => SlotAction::Restart,
        Some(o) if !o.stopped && o.wake_at_ns < slot_end_ns => SlotAction::Enter,
        _ => SlotAction::Idle,
    }
}

/// Where a scheduled core resumes after its vCPU yielded until `until_ns` in the slot
/// ending at `slot_end_ns`: 0 gives up the rest of the window; otherwise it sleeps until
/// then, in this window if it is still open then.
pub const fn yield_resume_at(until_ns: u64, slot_end_ns: u64) -> u64 {
    if until_ns == 0 || until_ns > slot_end_ns {
        slot_end_ns
    } else {
        until_ns
    }
}

/// Whether a partition of `vcpus` vCPUs that yielded until `until_ns` at `now_ns` is
/// asleep (life-cycle state Waiting): only a single-vCPU partition as a whole sleeps, and
/// only when the time is still to come.
pub const fn sleeps(until_ns: u64, now_ns: u64, vcpus: u32) -> bool {
    until_ns > now_ns && vcpus == 1
}

#[cfg(test)]
mod tests {
    use super::*;

    const AWAKE: Owner = Owner { restarting: false, stopped: false, wake_at_ns: 0 };

    #[test]
    fn a_slot_is_entered_only_by_an_owner_that_can_run_in_it() {
        assert_eq!(slot_action(None, 100), SlotAction::Idle, "an idle gap");
        assert_eq!(slot_action(Some(AWAKE), 100), SlotAction::Enter);
        assert_eq!(slot_action(Some(Owner { wake_at_ns: 99, ..AWAKE }), 100), SlotAction::Enter);
        assert_eq!(slot_action(Some(Owner { wake_at_ns: 100, ..AWAKE }), 100), SlotAction::Idle, "asleep");
        assert_eq!(slot_action(Some(Owner { stopped: true, ..AWAKE }), 100), SlotAction::Idle);
        let restarting = Owner { restarting: true, stopped: true, wake_at_ns: 500 };
        assert_eq!(slot_action(Some(restarting), 100), SlotAction::Restart, "a restart goes first");
    }

    #[test]
    fn yielding_sleeps_to_the_time_asked_or_the_window_end() {
        assert_eq!(yield_resume_at(0, 100), 100, "the rest of the window");
        assert_eq!(yield_resume_at(40, 100), 40);
        assert_eq!(yield_resume_at(400, 100), 100, "never past the window");
        assert!(sleeps(50, 10, 1));
        assert!(!sleeps(50, 10, 2), "one vCPU of several does not make the partition sleep");
        assert!(!sleeps(0, 10, 1) && !sleeps(10, 10, 1), "nothing to wait for");
    }

    #[test]
    fn a_fault_keeps_its_text_beside_the_small_value() {
        let mut text = FixedText::<16>::new();
        let next =
            Next::fault(&mut text, EventClass::MsrViolation, format_args!("RDMSR {:#x} refused", 0x1a0));
        assert_eq!(next, Next::Fault(EventClass::MsrViolation));
        assert_eq!(text.as_str(), "RDMSR 0x1a0 refu", "cut at the capacity");
        let _ = Next::fault(&mut text, EventClass::IoViolation, format_args!("port"));
        assert_eq!(text.as_str(), "port", "the previous text is gone");
    }
}
