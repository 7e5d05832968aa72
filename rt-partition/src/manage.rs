//! The management interface for a partition the table grants `privileges manage`
//! (requests and records: [`hallows_abi::manage`]): list the partitions, read their
//! counters and health events, halt, start and restart them. Linux's `rhctl` speaks the
//! same requests through its mailbox.
//!
//! A partition without the privilege gets [`ManageError::Refused`] with
//! [`Status::Denied`] for every call, and the hypervisor counts each call as a
//! `forbidden_instruction` health event of that partition (the partition goes on).
//!
//! ```ignore
//! let mut m = Manager::new(Hypervisor);
//! if let Some(sensor) = m.find("sensor")? {
//!     m.restart(sensor, false)?;
//! }
//! ```

use hallows_abi::manage::{
    body_u32, body_u64, field_text, header, EventRecord, Op, PartitionRecord, Request, StatsRecord,
    REQUEST_BYTES, RESPONSE_HEADER_BYTES, RESPONSE_MAX, RESTART_CLEAN,
};
pub use hallows_abi::manage::{Status, KIND_LINUX, KIND_RT, STATE_NAMES};

use crate::hypercall::HypercallError;

/// Why a management call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManageError {
    /// The hypercall itself failed (a buffer outside RAM, an old hypervisor).
    Hypercall(HypercallError),
    /// The hypervisor answered with this status (`Denied`: no `manage` privilege).
    Refused(Status),
    /// The answer cannot be read (a status or layout this SDK does not know).
    Malformed,
}

pub type Result<T> = core::result::Result<T, ManageError>;

/// One request/response exchange with the hypervisor.
pub trait Exchange {
    /// Sends `request`; the response lands in `response`; returns its length.
    fn exchange(&mut self, request: &[u8; REQUEST_BYTES], response: &mut [u8]) -> Result<usize>;
}

/// The `Manage` hypercall.
#[cfg(target_arch = "x86_64")]
pub struct Hypervisor;

#[cfg(target_arch = "x86_64")]
impl Exchange for Hypervisor {
    fn exchange(&mut self, request: &[u8; REQUEST_BYTES], response: &mut [u8]) -> Result<usize> {
        use hallows_abi::hypercall::Hypercall;
        // The SDK runs identity-mapped: these addresses are guest-physical.
        let ret = crate::hypercall::raw(
            Hypercall::Manage,
            request.as_ptr() as u64,
            request.len() as u64,
            response.as_mut_ptr() as u64,
            response.len() as u64,
        );
        match hallows_abi::hypercall::Status::from_u64(ret.status) {
            Some(hallows_abi::hypercall::Status::Ok) => Ok((ret.value as usize).min(response.len())),
            Some(hallows_abi::hypercall::Status::Denied) => Err(ManageError::Refused(Status::Denied)),
            Some(other) => Err(ManageError::Hypercall(HypercallError::Status(other))),
            None => Err(ManageError::Hypercall(HypercallError::UnknownStatus(ret.status))),
        }
    }
}

/// A management client with its response buffer (4 KiB: keep it in a static or on the
/// heap rather than on a small stack).
pub struct Manager<E: Exchange> {
    exchange: E,
    buf: [u8; RESPONSE_MAX],
}

impl<E: Exchange> Manager<E> {
    pub fn new(exchange: E) -> Self {
        Manager { exchange, buf: [0; RESPONSE_MAX] }
    }

    /// One request; the body of an `Ok` response.
    fn ask(&mut self, op: Op, target: u32, flags: u32) -> Result<&[u8]> {
        let request = Request::new(op, target, flags).encode();
        let len = self.exchange.exchange(&request, &mut self.buf)?;
        let response = self.buf.get(..len).ok_or(ManageError::Malformed)?;
        let (status, body_len) = header(response).ok_or(ManageError::Malformed)?;
        match Status::from_u32(status) {
            Some(Status::Ok) => response
                .get(RESPONSE_HEADER_BYTES..RESPONSE_HEADER_BYTES + body_len as usize)
                .ok_or(ManageError::Malformed),
            Some(other) => Err(ManageError::Refused(other)),
            None => Err(ManageError::Malformed),
        }
    }

    /// Calls `f` with every partition's record; returns how many partitions there are.
    pub fn for_each_partition(&mut self, mut f: impl FnMut(&PartitionRecord)) -> Result<u32> {
        let mut first = 0u32;
        loop {
            let body = self.ask(Op::List, first, 0)?;
            let (total, count, size) = match (body_u32(body, 0), body_u32(body, 4), body_u32(body, 8)) {
                (Some(t), Some(c), Some(s)) => (t, c, s as usize),
                _ => return Err(ManageError::Malformed),
            };
            if size < PartitionRecord::BYTES {
                return Err(ManageError::Malformed);
            }
            for n in 0..count as usize {
                let at = 12 + n * size;
                let record =
                    body.get(at..).and_then(PartitionRecord::decode).ok_or(ManageError::Malformed)?;
                f(&record);
            }
            first += count;
            if count == 0 || first >= total {
                return Ok(total);
            }
        }
    }

    /// The index of the partition called `name`.
    pub fn find(&mut self, name: &str) -> Result<Option<u32>> {
        let mut found = None;
        self.for_each_partition(|r| {
            if found.is_none() && field_text(&r.name) == name {
                found = Some(r.index);
            }
        })?;
        Ok(found)
    }

    /// Partition `index`'s counters.
    pub fn stats(&mut self, index: u32) -> Result<StatsRecord> {
        let body = self.ask(Op::Stats, index, 0)?;
        StatsRecord::decode(body).ok_or(ManageError::Malformed)
    }

    /// Calls `f` with partition `index`'s newest health events, oldest first; returns how
    /// many events it ever had.
    pub fn events(&mut self, index: u32, mut f: impl FnMut(&EventRecord)) -> Result<u64> {
        let body = self.ask(Op::Events, index, 0)?;
        let (total, count, size) = match (body_u64(body, 0), body_u32(body, 8), body_u32(body, 12)) {
            (Some(t), Some(c), Some(s)) => (t, c, s as usize),
            _ => return Err(ManageError::Malformed),
        };
        for n in 0..count as usize {
            let record =
                body.get(16 + n * size..).and_then(EventRecord::decode).ok_or(ManageError::Malformed)?;
            f(&record);
        }
        Ok(total)
    }

    /// Stops partition `index` for good (until [`Manager::start`]).
    pub fn halt(&mut self, index: u32) -> Result<()> {
        self.ask(Op::Halt, index, 0).map(|_| ())
    }

    /// Starts halted partition `index` afresh.
    pub fn start(&mut self, index: u32) -> Result<()> {
        self.ask(Op::Start, index, 0).map(|_| ())
    }

    /// Restarts partition `index`; `clean` also zeroes its persistent region.
    pub fn restart(&mut self, index: u32, clean: bool) -> Result<()> {
        self.ask(Op::Restart, index, if clean { RESTART_CLEAN } else { 0 }).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use hallows_abi::manage::{name_field, put_body_u32, put_header};

    /// Answers lists of `n` partitions one record per page, stats, and refuses the rest.
    struct Fake {
        partitions: u32,
        asked: std::vec::Vec<(u32, u32, u32)>,
    }

    impl Exchange for Fake {
        fn exchange(&mut self, request: &[u8; REQUEST_BYTES], response: &mut [u8]) -> Result<usize> {
            let r = Request::decode(request).unwrap();
            self.asked.push((r.op, r.target, r.flags));
            let body = &mut response[RESPONSE_HEADER_BYTES..];
            let len = match Op::from_u32(r.op) {
                Some(Op::List) => {
                    let count = u32::from(r.target < self.partitions);
                    put_body_u32(body, 0, self.partitions);
                    put_body_u32(body, 4, count);
                    put_body_u32(body, 8, PartitionRecord::BYTES as u32);
                    let name = std::format!("p{}", r.target);
                    let rec =
                        PartitionRecord { index: r.target, name: name_field(&name), ..Default::default() };
                    rec.encode(&mut body[12..]);
                    12 + count as usize * PartitionRecord::BYTES
                }
                Some(Op::Stats) => {
                    StatsRecord { index: r.target, windows: 42, ..Default::default() }.encode(body);
                    StatsRecord::BYTES
                }
                Some(Op::Restart) => 0,
                _ => {
                    put_header(response, Status::WrongState, 0);
                    return Ok(RESPONSE_HEADER_BYTES);
                }
            };
            put_header(response, Status::Ok, len as u32);
            Ok(RESPONSE_HEADER_BYTES + len)
        }
    }

    #[test]
    fn lists_page_by_page_and_finds_names() {
        let mut m = Manager::new(Fake { partitions: 3, asked: std::vec::Vec::new() });
        let mut names = std::vec::Vec::new();
        assert_eq!(
            m.for_each_partition(|r| names.push(std::string::String::from(field_text(&r.name)))),
            Ok(3)
        );
        assert_eq!(names, ["p0", "p1", "p2"]);
        assert_eq!(m.find("p2"), Ok(Some(2)));
        assert_eq!(m.find("nope"), Ok(None));
        assert_eq!(m.stats(1).map(|s| (s.index, s.windows)), Ok((1, 42)));
        assert_eq!(m.restart(1, true), Ok(()));
        assert_eq!(m.exchange.asked.last(), Some(&(Op::Restart as u32, 1, RESTART_CLEAN)));
        assert_eq!(m.halt(1), Err(ManageError::Refused(Status::WrongState)));
    }

    #[test]
    fn a_short_or_lying_answer_is_malformed() {
        struct Liar(usize);
        impl Exchange for Liar {
            fn exchange(&mut self, _: &[u8; REQUEST_BYTES], response: &mut [u8]) -> Result<usize> {
                put_header(response, Status::Ok, 4000);
                Ok(self.0)
            }
        }
        for len in [0, 4, 8, 100, RESPONSE_MAX + 10] {
            let mut m = Manager::new(Liar(len));
            assert_eq!(m.stats(0), Err(ManageError::Malformed), "length {len}");
        }
    }
}
