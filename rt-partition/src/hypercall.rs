//! Safe wrappers around the hypercalls of [`hallows_abi::hypercall`].
//!
//! Every call is one `VMCALL` with the number in `rax`, arguments in `rdi`, `rsi`, `rdx`,
//! `r10`, the status back in `rax` and a second result in `rdx`. Outside VMX non-root
//! operation `VMCALL` raises #UD, so these functions are only meaningful inside a
//! partition; host tests never call them.

use hallows_abi::health::EventClass;
use hallows_abi::hypercall::{
    Hypercall, PartitionState, Status, CONSOLE_WRITE_MAX, CONSOLE_WRITE_MAX_LINES, FAULT_MESSAGE_MAX,
    RESTART_CLEAN,
};

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

/// Writes bytes to the partition's console, in pieces of at most [`CONSOLE_WRITE_MAX`]
/// bytes and [`CONSOLE_WRITE_MAX_LINES`] newlines. The hypervisor prefixes each line with
/// the partition name. While the partition's console queue is full (the hypervisor
/// answers [`Status::Busy`]), this waits on the partition's own time with
/// [`yield_until`] and tries again, so a chatty partition slows only itself.
pub fn console_write(bytes: &[u8]) -> Result<()> {
    write_console_with(
        bytes,
        |piece| {
            check(raw(Hypercall::ConsoleWrite, piece.as_ptr() as u64, piece.len() as u64, 0, 0)).map(|_| ())
        },
        |wait_ns| {
            let _ = yield_until(crate::time::now_ns().saturating_add(wait_ns));
        },
    )
}

/// Nanoseconds the hypervisor's UART (115200 baud, 10 bits a byte) needs per byte.
const UART_NS_PER_BYTE: u64 = 86_806;
/// Bounds of the wait before a write refused with `Busy` is tried again.
pub const BUSY_WAIT_MIN_NS: u64 = 1_000_000;
pub const BUSY_WAIT_MAX_NS: u64 = 20_000_000;

/// How long to wait before retrying a refused write of `bytes` bytes: about the time the
/// UART needs to send them (room for them cannot appear sooner), within
/// [`BUSY_WAIT_MIN_NS`]..=[`BUSY_WAIT_MAX_NS`].
pub fn busy_wait_ns(bytes: usize) -> u64 {
    (bytes as u64).saturating_mul(UART_NS_PER_BYTE).clamp(BUSY_WAIT_MIN_NS, BUSY_WAIT_MAX_NS)
}

/// Length of the next piece of `bytes` one `ConsoleWrite` may carry: at most
/// [`CONSOLE_WRITE_MAX`] bytes and [`CONSOLE_WRITE_MAX_LINES`] newlines.
pub fn console_piece_len(bytes: &[u8]) -> usize {
    let max = bytes.len().min(CONSOLE_WRITE_MAX as usize);
    let mut newlines = 0;
    for (i, &b) in bytes[..max].iter().enumerate() {
        if b == b'\n' {
            newlines += 1;
            if newlines == CONSOLE_WRITE_MAX_LINES {
                return i + 1;
            }
        }
    }
    max
}

/// [`console_write`] over any `send` (one `ConsoleWrite`) and `wait` (nanoseconds to
/// give up): splits `bytes` into pieces the ABI allows and retries a piece refused with
/// `Busy` after `wait`; any other error ends the write.
pub fn write_console_with(
    bytes: &[u8],
    mut send: impl FnMut(&[u8]) -> Result<()>,
    mut wait: impl FnMut(u64),
) -> Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let (piece, tail) = rest.split_at(console_piece_len(rest));
        loop {
            match send(piece) {
                Ok(()) => break,
                Err(HypercallError::Status(Status::Busy)) => wait(busy_wait_ns(piece.len())),
                Err(e) => return Err(e),
            }
        }
        rest = tail;
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

/// Restarts partition `partition` (another partition needs the `restart` privilege). Its
/// RAM starts afresh; its persistent region, if it has one, keeps its bytes (as after the
/// health monitor's restarts). See [`restart_partition_clean`] for a restart that keeps
/// nothing.
pub fn restart_partition(partition: u32) -> Result<()> {
    check(raw(Hypercall::RestartPartition, partition as u64, 0, 0, 0)).map(|_| ())
}

/// Restarts partition `partition` cleanly: like [`restart_partition`] (the same privilege
/// rule), but its persistent region is zeroed too, so nothing of its previous runs
/// survives (flag [`RESTART_CLEAN`]). The partition finds a region as at boot. Needs
/// hypercall interface version 2 or later ([`version`]): version 1 ignored the flag and
/// kept the region.
pub fn restart_partition_clean(partition: u32) -> Result<()> {
    check(raw(Hypercall::RestartPartition, partition as u64, RESTART_CLEAN, 0, 0)).map(|_| ())
}

/// Asks the hypervisor to print its counters table on the console (every partition's
/// state, restarts, exits, windows, overruns, deadline misses, health events, console
/// bytes, uptime). Needs the `query` privilege: without it the hypervisor refuses
/// ([`Status::Denied`]) and counts the call as a `forbidden_instruction` health event.
pub fn print_summary() -> Result<()> {
    check(raw(Hypercall::PrintSummary, 0, 0, 0, 0)).map(|_| ())
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
    extern crate std;
    use super::*;
    use proptest::prelude::*;
    use std::vec::Vec;

    #[test]
    fn busy_writes_wait_and_retry_the_same_piece() {
        let mut sent: Vec<Vec<u8>> = Vec::new();
        let mut waits = Vec::new();
        let mut busy_left = 3;
        let result = write_console_with(
            b"hello\n",
            |piece| {
                sent.push(piece.to_vec());
                if busy_left > 0 {
                    busy_left -= 1;
                    return Err(HypercallError::Status(Status::Busy));
                }
                Ok(())
            },
            |ns| waits.push(ns),
        );
        assert_eq!(result, Ok(()));
        assert_eq!(sent, vec![b"hello\n".to_vec(); 4]);
        assert_eq!(waits, vec![BUSY_WAIT_MIN_NS; 3]);
    }

    #[test]
    fn other_errors_end_the_write() {
        let mut calls = 0;
        let result = write_console_with(
            &[b'x'; 5000],
            |_| {
                calls += 1;
                Err(HypercallError::Status(Status::BadAddress))
            },
            |_| panic!("no wait for a final error"),
        );
        assert_eq!((result, calls), (Err(HypercallError::Status(Status::BadAddress)), 1));
        assert_eq!(write_console_with(b"", |_| panic!("nothing to send"), |_| {}), Ok(()));
    }

    #[test]
    fn busy_wait_is_the_uart_time_within_bounds() {
        assert_eq!(busy_wait_ns(1), BUSY_WAIT_MIN_NS);
        assert_eq!(busy_wait_ns(80), 80 * UART_NS_PER_BYTE);
        assert_eq!(busy_wait_ns(4096), BUSY_WAIT_MAX_NS);
        assert_eq!(busy_wait_ns(usize::MAX), BUSY_WAIT_MAX_NS);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Pieces are what the ABI allows, and together they are the input, in order.
        #[test]
        fn pieces_respect_the_abi_and_cover_the_input(
            input in proptest::collection::vec(any::<u8>().prop_map(|b| if b < 64 { b'\n' } else { b }), 0..10_000),
        ) {
            let mut pieces: Vec<Vec<u8>> = Vec::new();
            write_console_with(&input, |p| { pieces.push(p.to_vec()); Ok(()) }, |_| {}).unwrap();
            for p in &pieces {
                prop_assert!(!p.is_empty() && p.len() <= CONSOLE_WRITE_MAX as usize);
                prop_assert!(p.iter().filter(|&&b| b == b'\n').count() <= CONSOLE_WRITE_MAX_LINES as usize);
            }
            prop_assert_eq!(pieces.concat(), input);
        }
    }

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
