//! Typed requests over a [`Transport`]. Every response is checked against the format
//! before anything in it is used: a short, inconsistent or unknown one becomes
//! [`Error::BadResponse`].

use hallows_abi::manage::{
    body_u32, body_u64, field_text, header, EventRecord, Op, PartitionRecord, Request, StatsRecord, Status,
    RESPONSE_HEADER_BYTES, RESTART_CLEAN,
};

use crate::{Error, Transport};

/// Bytes before the records of a `List` body: partitions in the table, count, record bytes.
const LIST_HEAD: usize = 12;
/// Bytes before the records of an `Events` body: total, count, record bytes.
const EVENTS_HEAD: usize = 16;

/// One partition's newest health-monitor events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Events {
    /// Events the partition ever had (the log holds the newest of them).
    pub total: u64,
    /// The events the log holds, oldest first.
    pub records: Vec<EventRecord>,
}

/// The management interface, one request at a time.
pub struct Client<T> {
    transport: T,
}

impl<T: Transport> Client<T> {
    pub fn new(transport: T) -> Self {
        Client { transport }
    }

    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// Every partition in the table, in index order (as many `List` pages as it takes).
    pub fn list(&mut self) -> Result<Vec<PartitionRecord>, Error> {
        let mut records = Vec::new();
        loop {
            let first = records.len() as u32;
            let body = self.ask(Op::List, first, 0)?;
            let (total, page) = list_page(&body)?;
            for (k, record) in page.iter().enumerate() {
                if record.index != first + k as u32 {
                    return Err(Error::BadResponse(format!(
                        "partition {} where {} belongs in the list",
                        record.index,
                        first + k as u32
                    )));
                }
            }
            records.extend(page);
            let seen = records.len() as u64;
            // A page that brings nothing ends the list, as does having all of them; each
            // page brings at least one record, so this ends after `total` pages at most.
            if seen >= u64::from(total) || records.len() as u32 == first {
                return Ok(records);
            }
        }
    }

    /// Partition `index`'s counters.
    pub fn stats(&mut self, index: u32) -> Result<StatsRecord, Error> {
        let body = self.ask(Op::Stats, index, 0)?;
        let record =
            StatsRecord::decode(&body).ok_or_else(|| short("stats", body.len(), StatsRecord::BYTES))?;
        if record.index != index {
            return Err(Error::BadResponse(format!(
                "stats of partition {} in the answer about partition {index}",
                record.index
            )));
        }
        Ok(record)
    }

    /// Partition `index`'s newest health-monitor events.
    pub fn events(&mut self, index: u32) -> Result<Events, Error> {
        let body = self.ask(Op::Events, index, 0)?;
        let head = |at| body_u32(&body, at).ok_or_else(|| short("events", body.len(), EVENTS_HEAD));
        let (count, record_bytes) = (head(8)?, head(12)?);
        let total = body_u64(&body, 0).ok_or_else(|| short("events", body.len(), EVENTS_HEAD))?;
        let records =
            records(&body, EVENTS_HEAD, count, record_bytes, EventRecord::BYTES, EventRecord::decode)?;
        if (records.len() as u64) > total {
            return Err(Error::BadResponse(format!("{} events held of {total} in all", records.len())));
        }
        Ok(Events { total, records })
    }

    /// Stops partition `index` for good (until `start`).
    pub fn halt(&mut self, index: u32) -> Result<(), Error> {
        self.ask(Op::Halt, index, 0).map(drop)
    }

    /// Starts halted partition `index` afresh.
    pub fn start(&mut self, index: u32) -> Result<(), Error> {
        self.ask(Op::Start, index, 0).map(drop)
    }

    /// Restarts partition `index`; `clean` also zeroes its persistent region.
    pub fn restart(&mut self, index: u32, clean: bool) -> Result<(), Error> {
        self.ask(Op::Restart, index, if clean { RESTART_CLEAN } else { 0 }).map(drop)
    }

    /// One request; the body of an `Ok` response, or the status as an error.
    fn ask(&mut self, op: Op, target: u32, flags: u32) -> Result<Vec<u8>, Error> {
        let mut response = self.transport.exchange(&Request::new(op, target, flags).encode())?;
        let (status, body_bytes) = header(&response).ok_or_else(|| {
            Error::BadResponse(format!("{} bytes, shorter than the response header", response.len()))
        })?;
        let status = Status::from_u32(status)
            .ok_or_else(|| Error::BadResponse(format!("unknown status {status} to {}", op.name())))?;
        if status != Status::Ok {
            return Err(Error::Refused { op, status });
        }
        let received = response.len() - RESPONSE_HEADER_BYTES;
        if body_bytes as usize > received {
            return Err(Error::BadResponse(format!(
                "{} body of {body_bytes} bytes announced, {received} received",
                op.name()
            )));
        }
        response.truncate(RESPONSE_HEADER_BYTES + body_bytes as usize);
        response.drain(..RESPONSE_HEADER_BYTES);
        Ok(response)
    }
}

/// A `List` body: partitions in the table and this page's records.
fn list_page(body: &[u8]) -> Result<(u32, Vec<PartitionRecord>), Error> {
    let head = |at| body_u32(body, at).ok_or_else(|| short("list", body.len(), LIST_HEAD));
    let (total, count, record_bytes) = (head(0)?, head(4)?, head(8)?);
    let page =
        records(body, LIST_HEAD, count, record_bytes, PartitionRecord::BYTES, PartitionRecord::decode)?;
    Ok((total, page))
}

/// `count` records of `record_bytes` each from `at` on; a record may be longer than the
/// `known` bytes this version decodes (a newer hypervisor appends fields), never shorter.
fn records<R>(
    body: &[u8],
    at: usize,
    count: u32,
    record_bytes: u32,
    known: usize,
    decode: fn(&[u8]) -> Option<R>,
) -> Result<Vec<R>, Error> {
    let step = record_bytes as usize;
    if step < known {
        return Err(Error::BadResponse(format!("records of {step} bytes, at least {known} expected")));
    }
    let need = (count as usize).checked_mul(step).and_then(|n| n.checked_add(at));
    if need.is_none_or(|need| need > body.len()) {
        return Err(Error::BadResponse(format!(
            "{count} records of {step} bytes announced in a body of {} bytes",
            body.len()
        )));
    }
    // In bounds (checked above), so every decode has its bytes.
    let records = body[at..].chunks_exact(step).take(count as usize).filter_map(decode).collect::<Vec<_>>();
    Ok(records)
}

fn short(what: &str, len: usize, need: usize) -> Error {
    Error::BadResponse(format!("{what} body of {len} bytes, at least {need} expected"))
}

/// A partition's name as the list gives it.
pub fn name(record: &PartitionRecord) -> &str {
    field_text(&record.name)
}
