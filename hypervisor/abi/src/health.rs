//! Health-monitor (ARINC 653 HM) event classes and the actions a table can bind to them.

/// A class of fault a partition can cause. The value is the index into
/// [`crate::table::PartitionEntry::hm_actions`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum EventClass {
    /// Guest access outside its memory or against the rights of a shared page (EPT violation).
    MemoryViolation = 0,
    /// Access to an I/O port the partition does not own.
    IoViolation = 1,
    /// RDMSR/WRMSR of an MSR the partition does not own.
    MsrViolation = 2,
    /// An instruction the partition may not execute (VMX instructions, HLT where forbidden, ...).
    ForbiddenInstruction = 3,
    /// The guest triple-faulted (its own exception handling failed).
    TripleFault = 4,
    /// A periodic task missed its deadline or a partition overran its window.
    DeadlineMiss = 5,
    /// The partition's own panic handler reported a panic.
    Panic = 6,
    /// Any VM exit the hypervisor does not expect, or a malformed hypercall.
    UnknownExit = 7,
}

impl EventClass {
    /// Number of classes; the length of a partition's action array.
    pub const COUNT: usize = 8;
    /// Every class, in index order.
    pub const ALL: [EventClass; Self::COUNT] = [
        Self::MemoryViolation,
        Self::IoViolation,
        Self::MsrViolation,
        Self::ForbiddenInstruction,
        Self::TripleFault,
        Self::DeadlineMiss,
        Self::Panic,
        Self::UnknownExit,
    ];

    /// The name used in Parseltongue and in console messages.
    pub const fn name(self) -> &'static str {
        match self {
            Self::MemoryViolation => "memory_violation",
            Self::IoViolation => "io_violation",
            Self::MsrViolation => "msr_violation",
            Self::ForbiddenInstruction => "forbidden_instruction",
            Self::TripleFault => "triple_fault",
            Self::DeadlineMiss => "deadline_miss",
            Self::Panic => "panic",
            Self::UnknownExit => "unknown_exit",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The action a partition gets when its table entry leaves this class at default.
    pub const fn default_action(self) -> Action {
        match self {
            Self::DeadlineMiss => Action::Log,
            _ => Action::RestartPartition,
        }
    }
}

/// What the health monitor does about an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Action {
    /// Log the event on the console and let the partition continue.
    Log = 1,
    /// Stop the partition; its cores idle (or run its schedule's other partitions).
    HaltPartition = 2,
    /// Reload the partition's image into scrubbed memory and start it again.
    RestartPartition = 3,
    /// Stop the whole machine.
    HaltSystem = 4,
}

impl Action {
    pub const fn name(self) -> &'static str {
        match self {
            Self::Log => "log",
            Self::HaltPartition => "halt",
            Self::RestartPartition => "restart",
            Self::HaltSystem => "halt_system",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Log, Self::HaltPartition, Self::RestartPartition, Self::HaltSystem]
            .into_iter()
            .find(|a| a.name() == name)
    }

    pub const fn from_u8(v: u8) -> Option<Self> {
        match v {
            1 => Some(Self::Log),
            2 => Some(Self::HaltPartition),
            3 => Some(Self::RestartPartition),
            4 => Some(Self::HaltSystem),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for (i, c) in EventClass::ALL.into_iter().enumerate() {
            assert_eq!(c as usize, i);
            assert_eq!(EventClass::from_name(c.name()), Some(c));
        }
        assert_eq!(EventClass::from_name("nope"), None);
    }

    #[test]
    fn action_codes_round_trip() {
        for a in [Action::Log, Action::HaltPartition, Action::RestartPartition, Action::HaltSystem] {
            assert_eq!(Action::from_u8(a as u8), Some(a));
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::from_u8(0), None);
        assert_eq!(Action::from_u8(5), None);
    }
}
