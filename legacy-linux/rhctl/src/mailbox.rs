//! The real transport: the management PCI function's mailbox (BAR0, register layout in
//! [`hallows_abi::manage::mailbox`]), found in sysfs and mapped from its `resource0`.
//!
//! An exchange, under an exclusive `flock` on `resource0` so that two rhctl processes
//! never interleave their words: read the done count, write the request with 4-byte
//! writes, write its length to the doorbell. Every access to the BAR traps, and the
//! hypervisor serves the request during the doorbell write, so the done count has moved
//! when the next read looks; rhctl still waits for it (a bounded while), which is what
//! lets the tests play the hypervisor from a thread over a plain file. Then it reads the
//! response length and the response with 4-byte reads.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hallows_abi::manage::mailbox::{
    MAGIC, MAILBOX_BYTES, PCI_CLASS, PCI_DEVICE_ID, REG_DONE, REG_DOORBELL, REG_MAGIC, REG_RESPONSE_LEN,
    REG_VERSION, REQUEST_OFFSET, RESPONSE_OFFSET,
};
use hallows_abi::manage::{REQUEST_BYTES, RESPONSE_MAX, VERSION};
use rhlink::{Mapping, Writable};

use crate::{Error, Transport};

/// The management function's vendor: the same as the channel functions'.
pub const PCI_VENDOR_ID: u16 = hallows_abi::bridge::PCI_VENDOR_ID;

/// How long an exchange waits for the done count to move. The hypervisor answers during
/// the doorbell write; this only bounds a mailbox that never answers.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// Polls of the done count before waiting between them.
const SPINS: u32 = 1000;

/// The management function's mailbox, mapped.
pub struct Mailbox {
    path: PathBuf,
    /// `resource0`, opened read-write: the lock is taken on it.
    file: File,
    /// Registers and request read-write, the response page read-only.
    mapping: Mapping,
    timeout: Duration,
}

/// The management function's sysfs directory under `sysfs` (the first in PCI address
/// order, should there be several).
pub fn find(sysfs: &Path) -> Result<PathBuf, Error> {
    let found =
        rhlink::find_functions(sysfs, PCI_VENDOR_ID, PCI_DEVICE_ID, PCI_CLASS).map_err(|e| match e {
            rhlink::Error::Io { path, error } => Error::Io { path, error },
            other => Error::Io { path: sysfs.into(), error: io::Error::other(other.to_string()) },
        })?;
    found.into_iter().next().ok_or_else(|| Error::NoManagementFunction { sysfs: sysfs.into() })
}

impl Mailbox {
    /// Finds the function under `sysfs` (normally `/sys/bus/pci/devices`), maps its
    /// mailbox and checks that it is one this rhctl speaks.
    pub fn open(sysfs: &Path) -> Result<Self, Error> {
        Self::open_function(&find(sysfs)?)
    }

    /// Maps the mailbox of the function in sysfs directory `dir`.
    pub fn open_function(dir: &Path) -> Result<Self, Error> {
        let path = dir.join("resource0");
        let opening = |error: io::Error| match error.kind() {
            io::ErrorKind::PermissionDenied => Error::NotPermitted { path: path.clone() },
            _ => Error::Io { path: path.clone(), error },
        };
        let file = OpenOptions::new().read(true).write(true).open(&path).map_err(opening)?;
        let writable = Writable::Range { start: 0, len: RESPONSE_OFFSET as usize };
        let mapping = Mapping::open(&path, MAILBOX_BYTES as usize, writable).map_err(opening)?;
        let mailbox = Mailbox { path, file, mapping, timeout: DEFAULT_TIMEOUT };
        let (magic, version) = (mailbox.read(REG_MAGIC), mailbox.read(REG_VERSION));
        if magic != MAGIC {
            return Err(mailbox.bad(format!("mailbox magic {magic:#010x} is not RHMG")));
        }
        if version != VERSION {
            return Err(mailbox.bad(format!(
                "mailbox speaks version {version} of the management interface, rhctl speaks {VERSION}"
            )));
        }
        Ok(mailbox)
    }

    /// The same mailbox with another bound on the wait for an answer.
    pub fn with_timeout(self, timeout: Duration) -> Self {
        Mailbox { timeout, ..self }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn read(&self, register: u64) -> u32 {
        self.mapping.read_u32(register as usize)
    }

    fn bad(&self, why: String) -> Error {
        Error::BadDevice { path: self.path.clone(), why }
    }

    /// The exchange itself; the caller holds the lock.
    fn exchange_locked(&mut self, request: &[u8; REQUEST_BYTES]) -> Result<Vec<u8>, Error> {
        let done = self.read(REG_DONE);
        for (n, word) in request.chunks_exact(4).enumerate() {
            let word = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            self.mapping.write_u32(REQUEST_OFFSET as usize + 4 * n, word);
        }
        self.mapping.write_u32(REG_DOORBELL as usize, REQUEST_BYTES as u32);
        self.wait_for_done(done)?;
        let len = self.read(REG_RESPONSE_LEN) as usize;
        let room = (MAILBOX_BYTES - RESPONSE_OFFSET) as usize;
        if len > RESPONSE_MAX.min(room) {
            return Err(self.bad(format!("response of {len} bytes, at most {} fit", RESPONSE_MAX.min(room))));
        }
        let mut response = Vec::with_capacity(len.next_multiple_of(4));
        for offset in (0..len).step_by(4) {
            let word = self.read(RESPONSE_OFFSET + offset as u64);
            response.extend_from_slice(&word.to_le_bytes());
        }
        response.truncate(len);
        Ok(response)
    }

    /// Waits until the done count is no longer `before`: spinning first (the hypervisor
    /// has normally answered already), then sleeping a millisecond at a time.
    fn wait_for_done(&self, before: u32) -> Result<(), Error> {
        let start = Instant::now();
        let mut polls = 0u32;
        while self.read(REG_DONE) == before {
            if start.elapsed() >= self.timeout {
                return Err(Error::NoAnswer {
                    path: self.path.clone(),
                    waited_ms: self.timeout.as_millis() as u64,
                });
            }
            polls = polls.saturating_add(1);
            if polls < SPINS {
                std::hint::spin_loop();
            } else {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    }
}

impl Transport for Mailbox {
    fn exchange(&mut self, request: &[u8; REQUEST_BYTES]) -> Result<Vec<u8>, Error> {
        let locking = |error| Error::Io { path: self.path.clone(), error };
        self.file.lock().map_err(locking)?;
        let result = self.exchange_locked(request);
        // Closing the file would release the lock too; the mailbox stays open for the next.
        let _ = self.file.unlock();
        result
    }
}
