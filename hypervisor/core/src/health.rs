//! Health-monitor policy: which [`Action`] a partition's fault leads to, with restart
//! escalation, and the console message that announces it.
//!
//! The action comes from the partition's `hm_actions` table entry (an invalid code falls
//! back to the class's default). A restart loop is cut short: when a partition would be
//! restarted a further time although it has already been restarted
//! [`RestartPolicy::max_restarts`] times within the last [`RestartPolicy::window_ns`], the
//! action escalates to [`Action::HaltPartition`]. Each partition's policy comes from its
//! table entry ([`RestartPolicy::for_partition`]; Parseltongue's `restarts 3 per 10 s`);
//! the default allows 3 restarts per 10 seconds. Actions other than restart never escalate.
//!
//! ```
//! use hallows_abi::health::{Action, EventClass};
//! use hallows_core::health::{HealthMonitor, RestartPolicy};
//! let actions = [Action::RestartPartition as u8; 8];
//! let mut hm = HealthMonitor::new(RestartPolicy { max_restarts: 1, window_ns: 1_000 });
//! let first = hm.decide(&actions, EventClass::Panic, 0);
//! assert_eq!(first.action, Action::RestartPartition);
//! let second = hm.decide(&actions, EventClass::Panic, 10);
//! assert_eq!(second.action, Action::HaltPartition);
//! assert!(second.escalated);
//! let line = format!("{}", second.report("hello", "panicked at main.rs:3"));
//! assert_eq!(line, "partition hello: panic: panicked at main.rs:3 -> halt (escalated: 1 restart within 0.000001 s)");
//! ```

use core::fmt;
use hallows_abi::health::{Action, EventClass};
use hallows_abi::table::{RestartBudget, Table};

/// Most restarts a policy can count within its window: the most a table may allow.
pub const MAX_TRACKED_RESTARTS: usize = hallows_abi::table::MAX_RESTART_LIMIT as usize;

/// When restarts escalate to a halt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// Restarts allowed within `window_ns` (clamped to [`MAX_TRACKED_RESTARTS`]).
    pub max_restarts: u32,
    pub window_ns: u64,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy::from_budget(RestartBudget::default())
    }
}

impl RestartPolicy {
    /// The policy a table's restart budget asks for (its zero fields are the defaults:
    /// 3 restarts per 10 s).
    pub fn from_budget(budget: RestartBudget) -> Self {
        RestartPolicy {
            max_restarts: budget.effective_limit(),
            window_ns: u64::from(budget.effective_window_ms()) * 1_000_000,
        }
    }

    /// The policy of partition `index` of `table` (the defaults for a version 1.0 table).
    pub fn for_partition(table: &Table<'_>, index: usize) -> Self {
        Self::from_budget(table.restart_budget(index))
    }
}

/// The table's action for `class` (the class default when the code is invalid).
pub fn action_for(hm_actions: &[u8; EventClass::COUNT], class: EventClass) -> Action {
    Action::from_u8(hm_actions[class as usize]).unwrap_or(class.default_action())
}

/// What the health monitor decided about one event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decision {
    pub class: EventClass,
    pub action: Action,
    /// The table said restart, but the restart budget was spent: halt instead.
    pub escalated: bool,
    /// Restarts counted within the policy window, including this one when it restarts.
    pub recent_restarts: u32,
    pub window_ns: u64,
}

/// Per-partition health-monitor state.
#[derive(Clone, Debug)]
pub struct HealthMonitor {
    policy: RestartPolicy,
    restarts_at: [u64; MAX_TRACKED_RESTARTS],
    tracked: usize,
    next: usize,
    total_restarts: u32,
}

impl HealthMonitor {
    pub const fn new(policy: RestartPolicy) -> Self {
        HealthMonitor {
            policy,
            restarts_at: [0; MAX_TRACKED_RESTARTS],
            tracked: 0,
            next: 0,
            total_restarts: 0,
        }
    }

    /// Restarts since boot (for `BootInfo::restart_count`).
    pub fn total_restarts(&self) -> u32 {
        self.total_restarts
    }

    fn limit(&self) -> usize {
        (self.policy.max_restarts as usize).min(MAX_TRACKED_RESTARTS)
    }

    /// Restarts within the window ending at `now_ns`.
    pub fn recent_restarts(&self, now_ns: u64) -> u32 {
        self.restarts_at[..self.tracked]
            .iter()
            .filter(|&&t| now_ns.saturating_sub(t) < self.policy.window_ns)
            .count() as u32
    }

    /// Records a restart at `now_ns` (also call this for restarts requested by hypercall).
    pub fn note_restart(&mut self, now_ns: u64) {
        self.restarts_at[self.next] = now_ns;
        self.next = (self.next + 1) % MAX_TRACKED_RESTARTS;
        self.tracked = (self.tracked + 1).min(MAX_TRACKED_RESTARTS);
        self.total_restarts = self.total_restarts.saturating_add(1);
    }

    /// Decides the action for an event of `class` at `now_ns`; a restart is recorded.
    pub fn decide(
        &mut self,
        hm_actions: &[u8; EventClass::COUNT],
        class: EventClass,
        now_ns: u64,
    ) -> Decision {
        let mut action = action_for(hm_actions, class);
        let mut escalated = false;
        if action == Action::RestartPartition {
            if self.recent_restarts(now_ns) as usize >= self.limit() {
                action = Action::HaltPartition;
                escalated = true;
            } else {
                self.note_restart(now_ns);
            }
        }
        Decision {
            class,
            action,
            escalated,
            recent_restarts: self.recent_restarts(now_ns),
            window_ns: self.policy.window_ns,
        }
    }
}

/// The health monitor's answer to a restart that was asked for rather than caused by a
/// fault: the partition's own `RestartPartition` hypercall, or another partition's (with
/// the `restart` privilege). Displays as the action part of a console line: `restart`, or
/// `halt (escalated: N restarts within T s)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestedRestart {
    pub allowed: bool,
    /// Restarts counted within the policy window, including this one when allowed.
    pub recent_restarts: u32,
    pub window_ns: u64,
}

impl HealthMonitor {
    /// Decides a requested restart at `now_ns`. It counts against the same budget as
    /// restarts after faults, so no partition can restart itself (or be restarted) in a
    /// loop past the table's threshold; an allowed restart is recorded.
    pub fn decide_requested_restart(&mut self, now_ns: u64) -> RequestedRestart {
        self.decide_restart(now_ns, false)
    }

    /// Decides a restart the operator asked for (the management interface's `restart` or
    /// `start`): always allowed, because a person chose it, even past the budget that cuts
    /// fault loops (a partition the budget halted is started this way); it is recorded, so
    /// later fault restarts see it in the budget's window.
    pub fn decide_operator_restart(&mut self, now_ns: u64) -> RequestedRestart {
        self.decide_restart(now_ns, true)
    }

    fn decide_restart(&mut self, now_ns: u64, operator: bool) -> RequestedRestart {
        let allowed = operator || (self.recent_restarts(now_ns) as usize) < self.limit();
        if allowed {
            self.note_restart(now_ns);
        }
        RequestedRestart {
            allowed,
            recent_restarts: self.recent_restarts(now_ns),
            window_ns: self.policy.window_ns,
        }
    }
}

impl fmt::Display for RequestedRestart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.allowed {
            return f.write_str(Action::RestartPartition.name());
        }
        write!(f, "{}", Action::HaltPartition.name())?;
        write_escalation(f, self.recent_restarts, self.window_ns)
    }
}

/// ` (escalated: N restart(s) within T s)`, T in seconds without trailing zeros.
fn write_escalation(f: &mut fmt::Formatter<'_>, recent_restarts: u32, window_ns: u64) -> fmt::Result {
    let plural = if recent_restarts == 1 { "" } else { "s" };
    let (secs, frac) = (window_ns / 1_000_000_000, window_ns % 1_000_000_000);
    write!(f, " (escalated: {recent_restarts} restart{plural} within {secs}")?;
    if frac != 0 {
        let mut digits = [0u8; 9];
        let mut v = frac;
        for slot in digits.iter_mut().rev() {
            *slot = b'0' + (v % 10) as u8;
            v /= 10;
        }
        let end = 9 - digits.iter().rev().take_while(|&&c| c == b'0').count();
        f.write_str(".")?;
        f.write_str(core::str::from_utf8(&digits[..end]).unwrap_or(""))?;
    }
    f.write_str(" s)")
}

impl Decision {
    /// The console message `partition NAME: CLASS: DETAIL -> ACTION[ (escalated ...)]`,
    /// to be written with [`crate::console::hv_line`].
    pub fn report<'a, D: fmt::Display>(&'a self, partition: &'a str, detail: D) -> Report<'a, D> {
        Report { decision: self, partition, detail }
    }
}

/// Display adapter returned by [`Decision::report`].
pub struct Report<'a, D> {
    decision: &'a Decision,
    partition: &'a str,
    detail: D,
}

impl<D: fmt::Display> fmt::Display for Report<'_, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.decision;
        write!(
            f,
            "partition {}: {}: {} -> {}",
            self.partition,
            d.class.name(),
            self.detail,
            d.action.name()
        )?;
        if d.escalated {
            write_escalation(f, d.recent_restarts, d.window_ns)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn table(a: Action) -> [u8; 8] {
        [a as u8; 8]
    }

    #[test]
    fn requested_restarts_share_the_fault_budget() {
        let mut hm = HealthMonitor::new(RestartPolicy { max_restarts: 2, window_ns: 10 * S });
        let first = hm.decide_requested_restart(0);
        assert!(first.allowed);
        assert_eq!(format!("{first}"), "restart");
        // A fault restart in between spends the same budget.
        assert_eq!(
            hm.decide(&table(Action::RestartPartition), EventClass::Panic, S).action,
            Action::RestartPartition
        );
        let third = hm.decide_requested_restart(2 * S);
        assert!(!third.allowed);
        assert_eq!(format!("{third}"), "halt (escalated: 2 restarts within 10 s)");
        assert_eq!(hm.total_restarts(), 2);
        // Once the window has passed, restarts are allowed again.
        assert!(hm.decide_requested_restart(12 * S).allowed);
    }

    #[test]
    fn the_operator_restarts_past_the_budget_and_is_counted() {
        let mut hm = HealthMonitor::new(RestartPolicy { max_restarts: 1, window_ns: 10 * S });
        assert!(hm.decide_requested_restart(0).allowed);
        assert!(!hm.decide_requested_restart(S).allowed, "the budget is spent");
        let operator = hm.decide_operator_restart(2 * S);
        assert!(operator.allowed);
        assert_eq!(operator.recent_restarts, 2);
        assert_eq!(hm.total_restarts(), 2);
        assert!(!hm.decide_requested_restart(3 * S).allowed, "the operator's restart counts for the budget");
    }

    #[test]
    fn policies_come_from_the_table() {
        use hallows_abi::table::{PartitionModel, TableModel, KIND_RT};
        assert_eq!(RestartPolicy::default(), RestartPolicy { max_restarts: 3, window_ns: 10 * S });
        let part = |limit, window_ms| PartitionModel {
            name: "p".into(),
            kind: KIND_RT,
            restart_limit: limit,
            restart_window_ms: window_ms,
            ..Default::default()
        };
        let model =
            TableModel { partitions: vec![part(0, 0), part(7, 250), part(16, 0)], ..Default::default() };
        let bytes = model.to_bytes();
        let parsed = Table::parse(&bytes).unwrap();
        assert_eq!(RestartPolicy::for_partition(&parsed, 0), RestartPolicy::default());
        assert_eq!(
            RestartPolicy::for_partition(&parsed, 1),
            RestartPolicy { max_restarts: 7, window_ns: S / 4 }
        );
        assert_eq!(
            RestartPolicy::for_partition(&parsed, 2),
            RestartPolicy { max_restarts: 16, window_ns: 10 * S }
        );
        // A budget of 1 per 250 ms: the second restart within 250 ms halts, a later one does not.
        let mut hm =
            HealthMonitor::new(RestartPolicy::from_budget(RestartBudget { limit: 1, window_ms: 250 }));
        let t = table(Action::RestartPartition);
        assert_eq!(hm.decide(&t, EventClass::Panic, 0).action, Action::RestartPartition);
        assert_eq!(hm.decide(&t, EventClass::Panic, S / 5).action, Action::HaltPartition);
        assert_eq!(hm.decide(&t, EventClass::Panic, S / 4).action, Action::RestartPartition);
    }

    #[test]
    fn table_actions_and_defaults() {
        let mut t = table(Action::Log);
        t[EventClass::TripleFault as usize] = Action::HaltSystem as u8;
        t[EventClass::IoViolation as usize] = 0; // invalid -> class default
        t[EventClass::DeadlineMiss as usize] = 99;
        assert_eq!(action_for(&t, EventClass::TripleFault), Action::HaltSystem);
        assert_eq!(action_for(&t, EventClass::Panic), Action::Log);
        assert_eq!(action_for(&t, EventClass::IoViolation), Action::RestartPartition);
        assert_eq!(action_for(&t, EventClass::DeadlineMiss), Action::Log);
    }

    #[test]
    fn restarts_escalate_within_the_window_only() {
        let mut hm = HealthMonitor::new(RestartPolicy::default());
        let t = table(Action::RestartPartition);
        for i in 0..3 {
            let d = hm.decide(&t, EventClass::MemoryViolation, i * S);
            assert_eq!(
                (d.action, d.escalated, d.recent_restarts),
                (Action::RestartPartition, false, i as u32 + 1)
            );
        }
        let d = hm.decide(&t, EventClass::MemoryViolation, 3 * S);
        assert_eq!((d.action, d.escalated), (Action::HaltPartition, true));
        assert_eq!(hm.total_restarts(), 3);
        // Once the first restart is older than the window, a restart is allowed again.
        let d = hm.decide(&t, EventClass::MemoryViolation, 10 * S);
        assert_eq!((d.action, d.recent_restarts), (Action::RestartPartition, 3));
        assert_eq!(hm.total_restarts(), 4);
    }

    #[test]
    fn non_restart_actions_never_escalate_or_count() {
        let mut hm = HealthMonitor::new(RestartPolicy { max_restarts: 0, window_ns: S });
        for a in [Action::Log, Action::HaltPartition, Action::HaltSystem] {
            let d = hm.decide(&table(a), EventClass::Panic, 0);
            assert_eq!((d.action, d.escalated), (a, false));
        }
        assert_eq!(hm.total_restarts(), 0);
        // A zero budget halts at the first restart.
        let d = hm.decide(&table(Action::RestartPartition), EventClass::Panic, 0);
        assert_eq!((d.action, d.escalated), (Action::HaltPartition, true));
    }

    #[test]
    fn huge_budgets_are_clamped_and_time_going_backwards_is_harmless() {
        let mut hm = HealthMonitor::new(RestartPolicy { max_restarts: u32::MAX, window_ns: u64::MAX });
        let t = table(Action::RestartPartition);
        for i in 0..MAX_TRACKED_RESTARTS as u64 {
            assert_eq!(hm.decide(&t, EventClass::Panic, 100 - i).action, Action::RestartPartition);
        }
        assert_eq!(hm.decide(&t, EventClass::Panic, 0).action, Action::HaltPartition);
    }

    #[test]
    fn report_lines() {
        let mut hm = HealthMonitor::new(RestartPolicy { max_restarts: 2, window_ns: 5 * S / 2 });
        let t = table(Action::RestartPartition);
        let d = hm.decide(&t, EventClass::IoViolation, 0);
        assert_eq!(
            format!("{}", d.report("net", "out to port 0x80")),
            "partition net: io_violation: out to port 0x80 -> restart"
        );
        hm.decide(&t, EventClass::IoViolation, 1);
        let d = hm.decide(&t, EventClass::IoViolation, 2);
        assert_eq!(
            format!("{}", d.report("net", "again")),
            "partition net: io_violation: again -> halt (escalated: 2 restarts within 2.5 s)"
        );
    }
}
