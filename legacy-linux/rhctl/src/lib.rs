//! `rhctl`: the operator's command for managing RustHallows partitions from a Linux
//! partition that the table grants `privileges manage`.
//!
//! Linux reaches the hypervisor's management interface ([`hallows_abi::manage`]) through
//! a PCI function whose BAR0 is a mailbox: one 16-byte request in, one response out,
//! served while the doorbell write traps. The crate is layered so that everything above
//! the mailbox is tested on any host:
//! - [`Transport`]: one exchange of bytes. [`mailbox::Mailbox`] is the real one (sysfs
//!   discovery, `resource0` mapped, an exclusive `flock` around each exchange); tests use
//!   one that runs the hypervisor's own decisions (`hallows_core::manage::serve`).
//! - [`client::Client`]: typed requests over a transport; every response is checked
//!   before it is believed, so a malformed one is an [`Error`], never a panic.
//! - [`show`] and [`json`]: what the operator reads (tables, lines, one JSON document).
//! - [`cli`]: the commands, their messages and exit codes.

#![forbid(unsafe_code)]

pub mod cli;
pub mod client;
pub mod json;
pub mod mailbox;
pub mod show;

use std::fmt;
use std::io;
use std::path::PathBuf;

use hallows_abi::manage::{Op, Status, REQUEST_BYTES};

/// One request in, its whole response (header and body) out.
pub trait Transport {
    fn exchange(&mut self, request: &[u8; REQUEST_BYTES]) -> Result<Vec<u8>, Error>;
}

impl<T: Transport + ?Sized> Transport for &mut T {
    fn exchange(&mut self, request: &[u8; REQUEST_BYTES]) -> Result<Vec<u8>, Error> {
        (**self).exchange(request)
    }
}

/// What can go wrong; `Display` says what to do about it.
#[derive(Debug)]
pub enum Error {
    /// No PCI function with the management interface's ids under `sysfs`.
    NoManagementFunction { sysfs: PathBuf },
    /// `resource0` may not be opened by this user.
    NotPermitted { path: PathBuf },
    /// sysfs, mapping or locking failed.
    Io { path: PathBuf, error: io::Error },
    /// A function with our ids whose mailbox this rhctl does not understand.
    BadDevice { path: PathBuf, why: String },
    /// The doorbell was rung and the done count did not move.
    NoAnswer { path: PathBuf, waited_ms: u64 },
    /// A response that does not follow `hallows_abi::manage`.
    BadResponse(String),
    /// The hypervisor answered `op` with a status other than `Ok`.
    Refused { op: Op, status: Status },
    /// No partition of that name.
    UnknownName { name: String, known: Vec<String> },
    /// `op` is not possible in the partition's state.
    WrongState { name: String, state: String, op: Op },
    /// `op` names the calling partition itself.
    IsCaller { name: String, op: Op },
    /// Writing the output failed (a closed pipe, say).
    Output(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NoManagementFunction { sysfs } => write!(
                f,
                "no RustHallows management function on the PCI bus: is this Linux running as a \
                 RustHallows partition? (looked for {:04x}:{:04x}, class {:06x}, in {})",
                mailbox::PCI_VENDOR_ID,
                hallows_abi::manage::mailbox::PCI_DEVICE_ID,
                hallows_abi::manage::mailbox::PCI_CLASS,
                sysfs.display()
            ),
            Error::NotPermitted { path } => write!(
                f,
                "permission denied opening {}: managing partitions needs root (the file's \
                 permissions decide who may manage)",
                path.display()
            ),
            Error::Io { path, error } => write!(f, "{}: {error}", path.display()),
            Error::BadDevice { path, why } => write!(f, "{}: {why}", path.display()),
            Error::NoAnswer { path, waited_ms } => write!(
                f,
                "{}: the hypervisor did not serve the request within {waited_ms} ms",
                path.display()
            ),
            Error::BadResponse(why) => write!(f, "malformed response from the hypervisor: {why}"),
            Error::Refused { status: Status::Denied, .. } => f.write_str(
                "this partition lacks `privileges manage` in the partition table; the refusal \
                 was recorded as a health event",
            ),
            Error::Refused { status: Status::UnsupportedVersion, .. } => write!(
                f,
                "the hypervisor does not speak version {} of the management interface (update \
                 rhctl or the hypervisor so that they match)",
                hallows_abi::manage::VERSION
            ),
            Error::Refused { op, status } => {
                write!(f, "the hypervisor refused {}: {}", op.name(), status.name())
            }
            Error::UnknownName { name, known } => {
                write!(f, "no partition named {name:?}; the partitions are: {}", known.join(", "))
            }
            Error::IsCaller { name, op } => {
                write!(f, "{name} is this Linux partition itself: ")?;
                match op {
                    Op::Restart => f.write_str("to restart this Linux partition, reboot it"),
                    Op::Halt => f.write_str("to halt this Linux partition, power it off (`poweroff`)"),
                    _ => f.write_str("it is running already"),
                }
            }
            Error::WrongState { name, state, op } => wrong_state(f, name, state, *op),
            Error::Output(error) => write!(f, "writing the output: {error}"),
        }
    }
}

/// Says what the state allows instead of `op`.
fn wrong_state(f: &mut fmt::Formatter<'_>, name: &str, state: &str, op: Op) -> fmt::Result {
    write!(f, "{name} is {state}: ")?;
    match (op, state) {
        (_, "restarting") => write!(f, "wait until it runs again (`rhctl list` shows its state)"),
        (Op::Restart, "halted") => write!(f, "use `rhctl start {name}`"),
        (Op::Halt, "halted") => write!(f, "it is halted already; `rhctl start {name}` starts it again"),
        (Op::Start, _) => write!(f, "it is not halted; use `rhctl restart {name}` to start it afresh"),
        _ => write!(f, "`rhctl {}` is not possible now", op.name()),
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests;
