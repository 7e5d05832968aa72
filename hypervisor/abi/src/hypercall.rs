//! Hypercalls: a partition executes `VMCALL` with the number in `rax` and up to four
//! arguments in `rdi`, `rsi`, `rdx`, `r10`; the status comes back in `rax` (see [`Status`])
//! and a second result, where a call has one, in `rdx`. Every other register is preserved.
//!
//! All pointers are guest-physical addresses inside the caller's own RAM (the SDK runs
//! identity-mapped, so its virtual addresses are guest-physical). The hypervisor checks
//! every pointer and length; a bad one returns [`Status::BadAddress`] and is a health
//! event of class `unknown_exit` only if the call itself is malformed.

/// Version of the hypercall interface, reported by [`Hypercall::Version`]. 2: the
/// flags of [`Hypercall::RestartPartition`] (`rsi`; version 1 ignored the register, so a
/// caller that needs [`RESTART_CLEAN`] honoured checks for 2 or later). 3:
/// [`Hypercall::Manage`].
pub const VERSION: u64 = 3;

/// The most bytes a single [`Hypercall::ConsoleWrite`] may carry.
pub const CONSOLE_WRITE_MAX: u64 = 4096;
/// The most newlines a single [`Hypercall::ConsoleWrite`] may carry. Every line costs
/// the hypervisor a `[name] ` prefix and a line end in the partition's console queue;
/// with this bound, every accepted write fits that queue when it is empty, so a write
/// refused with [`Status::Busy`] always succeeds once the queue has drained.
pub const CONSOLE_WRITE_MAX_LINES: u64 = 32;
/// The most bytes of message a [`Hypercall::ReportFault`] may carry.
pub const FAULT_MESSAGE_MAX: u64 = 512;

/// [`Hypercall::RestartPartition`] flag (`rsi` bit 0): a clean restart, which also zeroes
/// the target's persistent region (`persistent SIZE` in the table), so nothing of its
/// previous runs survives. Without it the region keeps its bytes.
pub const RESTART_CLEAN: u64 = 1 << 0;
/// Every [`Hypercall::RestartPartition`] flag this version knows; a call with any other
/// bit set is refused, so a later flag never means something else to an older hypervisor.
pub const RESTART_FLAGS_KNOWN: u64 = RESTART_CLEAN;

/// Hypercall numbers (value of `rax`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Hypercall {
    /// Does nothing and returns `Ok`: measures the round trip.
    Null = 0,
    /// Returns [`VERSION`] in `rdx`.
    Version = 1,
    /// `rdi` = pointer, `rsi` = length: bytes for the partition's console, at most
    /// [`CONSOLE_WRITE_MAX`] bytes and [`CONSOLE_WRITE_MAX_LINES`] newlines
    /// ([`Status::BadArgument`] otherwise). The hypervisor turns them into whole
    /// `[name] ...` lines in the partition's own bounded console queue, which the UART
    /// drains at its line rate, taking turns line by line with the other partitions.
    /// All or nothing: when the queue lacks room for the lines this write completes,
    /// nothing is taken and the call returns [`Status::Busy`]; the caller retries later
    /// on its own time (the SDK yields for about the UART's time for the bytes), so a
    /// chatty partition slows only itself.
    ConsoleWrite = 2,
    /// Sleeps until the absolute time in `rdi` (nanoseconds since boot). On a
    /// time-partitioned core the partition's windows before then stay idle and it resumes
    /// at that time if it falls in one of its windows, else at the start of its next
    /// window; `rdi` = 0 gives up the rest of the current window. On a dedicated core the
    /// core idles in the hypervisor until then (0: returns at once).
    Yield = 3,
    /// Returns the hypervisor's time in `rdx`, nanoseconds since boot.
    TimeNow = 4,
    /// `rdi` = partition index: returns its state ([`PartitionState`]) in `rdx`.
    /// Another partition's state needs the `query` privilege.
    PartitionState = 5,
    /// `rdi` = event class (see [`crate::health::EventClass`]), `rsi` = message pointer,
    /// `rdx` = message length: reports a fault to the health monitor, which applies the
    /// table's action. Does not return when the action stops the partition.
    ReportFault = 6,
    /// `rdi` = partition index, `rsi` = flags ([`RESTART_CLEAN`]; 0 for a plain
    /// restart): restarts that partition (needs the `restart` privilege for another
    /// partition). A plain restart keeps the target's persistent region, as the health
    /// monitor's restarts do; with [`RESTART_CLEAN`] the region is zeroed too. Any other
    /// flag bit is [`Status::BadArgument`].
    RestartPartition = 7,
    /// Stops the calling partition for good (`rdi` = exit code, logged).
    Halt = 8,
    /// Makes the hypervisor print the counters table on the console: one row per
    /// partition (state, restarts, VM exits, windows, overruns, deadline misses,
    /// health-monitor events, console bytes and drops, uptime), then each partition's
    /// exits by reason and newest health-monitor events. Needs the `query` privilege:
    /// without it the call returns [`Status::Denied`] and is a health-monitor event of
    /// class `forbidden_instruction` for the caller (logged and counted; the caller
    /// continues, whatever its table says for the class).
    PrintSummary = 9,
    /// The management interface ([`crate::manage`]): `rdi` = request pointer, `rsi` =
    /// request length (at least [`crate::manage::REQUEST_BYTES`]), `rdx` = response
    /// buffer pointer, `r10` = its length (at most [`crate::manage::RESPONSE_MAX`] is
    /// written). Returns `Ok` with the response's length in `rdx` once a response (whose
    /// own status says how the request went) is in the buffer; `BadAddress` for a buffer
    /// outside the caller's RAM. Needs the `manage` privilege: without it the call returns
    /// [`Status::Denied`] and is a health-monitor event of class `forbidden_instruction`
    /// for the caller (logged and counted; the caller continues).
    Manage = 10,
}

impl Hypercall {
    pub const fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Null,
            1 => Self::Version,
            2 => Self::ConsoleWrite,
            3 => Self::Yield,
            4 => Self::TimeNow,
            5 => Self::PartitionState,
            6 => Self::ReportFault,
            7 => Self::RestartPartition,
            8 => Self::Halt,
            9 => Self::PrintSummary,
            10 => Self::Manage,
            _ => return None,
        })
    }
}

/// Status returned in `rax`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum Status {
    Ok = 0,
    /// No such hypercall.
    UnknownCall = 1,
    /// A pointer or length outside the caller's RAM.
    BadAddress = 2,
    /// The caller lacks the privilege.
    Denied = 3,
    /// An argument out of range (unknown partition, event class, ...).
    BadArgument = 4,
    /// Nothing was done because a bounded resource is full now (the caller's console
    /// queue for [`Hypercall::ConsoleWrite`]); retry later.
    Busy = 5,
}

impl Status {
    pub const fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Ok,
            1 => Self::UnknownCall,
            2 => Self::BadAddress,
            3 => Self::Denied,
            4 => Self::BadArgument,
            5 => Self::Busy,
            _ => return None,
        })
    }
}

/// A partition's life-cycle state as reported by [`Hypercall::PartitionState`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u64)]
pub enum PartitionState {
    /// Loaded, not yet entered.
    Ready = 0,
    Running = 1,
    /// Stopped by the health monitor or by itself.
    Halted = 2,
    /// Being reloaded.
    Restarting = 3,
}

impl PartitionState {
    pub const fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => Self::Ready,
            1 => Self::Running,
            2 => Self::Halted,
            3 => Self::Restarting,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_round_trip() {
        for n in 0..16u64 {
            if let Some(h) = Hypercall::from_u64(n) {
                assert_eq!(h as u64, n);
            }
            if let Some(s) = Status::from_u64(n) {
                assert_eq!(s as u64, n);
            }
            if let Some(s) = PartitionState::from_u64(n) {
                assert_eq!(s as u64, n);
            }
        }
        assert_eq!(Hypercall::from_u64(9), Some(Hypercall::PrintSummary));
        assert_eq!(Hypercall::from_u64(10), Some(Hypercall::Manage));
        assert_eq!(Hypercall::from_u64(11), None);
        assert_eq!(Status::from_u64(5), Some(Status::Busy));
        assert_eq!(Status::from_u64(6), None);
        assert_eq!(Hypercall::from_u64(u64::MAX), None);
    }
}
