//! Safe wrappers around the hypercalls of [`hallows_abi::hypercall`].
//!
//! Every call is one `VMCALL` with the number in `rax`, arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, the status back in `rax` and a second result in `rdx`. Outside VMX non-root
//! operation `VMCALL` raises #UD, so these functions are only meaningful inside a
//! partition; host tests never call them.

use hallows_abi::health::EventClass;
use hallows_abi::hypercall::{Hypercall, PartitionState, Status, CONSOLE_WRITE_MAX, FAULT_MESSAGE_MAX};

/// A hypercall that did not return [`Status::Ok`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HypercallError {
    /// The hypervisor returned this status.
    Status(Status),
    /// The hypervisor returned a status this SDK does not know.
    UnknownStatus(u64),
    /// The hypervisor returned a value this SDK cannot interpret.
    BadResult(u64),
}

/// Result of a hypercall.
pub type Result<T> = core::result::Result<T, HypercallError>;

/// The raw register pair a hypercall returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawReturn {
    /// `rax`: the status.
    pub status: u64,
    /// `rdx`: the second result.
    pub value: u64,
}

/// Issues a hypercall with four arguments and returns `rax` and `rdx` unchecked.
#[cfg(target_arch = "x86_64")]
#[inline]
pub fn raw(call: Hypercall, a0: u64, a1: u64, a2: u64, a3: u64) -> RawReturn {
    let status: u64;
    let value: u64;
    // SAFETY: VMCALL transfers control to the hypervisor, which by the ABI preserves every
    // register except rax and rdx and touches only memory the arguments point to (which
    // callers pass as valid, readable or writable buffers). It does not use our stack.
    unsafe {
        core::arch::asm!(
            "vmcall",
            inlateout("rax") call as u64 => status,
            in("rdi") a0,
            in("rsi") a1,
            inlateout("rdx") a2 => value,
            in("r10") a3,
            options(nostack),
        );
    }
    RawReturn { status, value }
}

fn check(ret: RawReturn) -> Result<u64> {
    match Status::from_u64(ret.status) {
        Some(Status::Ok) => Ok(ret.value),
        Some(other) => Err(HypercallError::Status(other)),
        None => Err(HypercallError::UnknownStatus(ret.status)),
    }
}

/// Does nothing in the hypervisor: measures the round trip.
pub fn null() -> Result<()> {
    check(raw(Hypercall::Null, 0, 0, 0, 0)).map(|_| ())
}

/// The hypervisor's hypercall interface version (see [`hallows_abi::hypercall::VERSION`]).
pub fn version() -> Result<u64> {
    check(raw(Hypercall::Version, 0, 0, 0, 0))
}

/// Writes bytes to the partition's console, in chunks of at most
/// [`CONSOLE_WRITE_MAX`] bytes. The hypervisor prefixes each line with the partition name.
pub fn console_write(bytes: &[u8]) -> Result<()> {
    for chunk in bytes.chunks(CONSOLE_WRITE_MAX as usize) {
        check(raw(Hypercall::ConsoleWrite, chunk.as_ptr() as u64, chunk.len() as u64, 0, 0))?;
    }
    Ok(())
}

/// Gives up the processor until `until_ns` (nanoseconds since boot, hypervisor time) on a
/// dedicated core, or until the partition's next window on a shared core; 0 just yields.
/// It may return before `until_ns`: callers that need the time loop on [`crate::time`].
pub fn yield_until(until_ns: u64) -> Result<()> {
    check(raw(Hypercall::Yield, until_ns, 0, 0, 0)).map(|_| ())
}

/// The hypervisor's time: nanoseconds since it started.
pub fn time_now() -> Result<u64> {
    check(raw(Hypercall::TimeNow, 0, 0, 0, 0))
}

/// The life-cycle state of partition `partition` (another partition needs `query`).
pub fn partition_state(partition: u32) -> Result<PartitionState> {
    let v = check(raw(Hypercall::PartitionState, partition as u64, 0, 0, 0))?;
    PartitionState::from_u64(v).ok_or(HypercallError::BadResult(v))
}

/// Reports a fault to the health monitor. The message is cut to
/// [`FAULT_MESSAGE_MAX`] bytes. Returns only when the table's action lets the partition go on.
pub fn report_fault(class: EventClass, message: &[u8]) -> Result<()> {
    let len = message.len().min(FAULT_MESSAGE_MAX as usize);
    check(raw(Hypercall::ReportFault, class as u64, message.as_ptr() as u64, len as u64, 0)).map(|_| ())
}

/// Restarts partition `partition` (another partition needs the `restart` privilege).
pub fn restart_partition(partition: u32) -> Result<()> {
    check(raw(Hypercall::RestartPartition, partition as u64, 0, 0, 0)).map(|_| ())
}

/// Stops the calling partition for good; `code` is logged. Never returns: should the
/// hypervisor ever come back, the vCPU spins on `yield`.
pub fn halt(code: u64) -> ! {
    loop {
        let _ = raw(Hypercall::Halt, code, 0, 0, 0);
        let _ = raw(Hypercall::Yield, 0, 0, 0, 0);
        core::hint::spin_loop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ok_status_yields_the_value() {
        assert_eq!(check(RawReturn { status: 0, value: 42 }), Ok(42));
    }

    #[test]
    fn error_statuses_are_mapped() {
        assert_eq!(
            check(RawReturn { status: Status::BadAddress as u64, value: 0 }),
            Err(HypercallError::Status(Status::BadAddress))
        );
        assert_eq!(check(RawReturn { status: 99, value: 0 }), Err(HypercallError::UnknownStatus(99)));
    }
}
