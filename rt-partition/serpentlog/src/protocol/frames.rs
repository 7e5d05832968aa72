//! The frames: request and response values (borrowed views), their decoders and encoders.
//! The layout is documented in the module above.

use super::cursor::{Reader, Writer};
use crate::engine::{Appended, FetchedRecord, Placement, Producer};
use crate::ErrorCode;

pub const MAGIC: [u8; 2] = *b"SL";
/// The protocol version this crate speaks.
pub const VERSION: u8 = 1;
pub const REQUEST_HEADER_BYTES: usize = 8;
pub const RESPONSE_HEADER_BYTES: usize = 10;
/// A response's kind is its request's kind with this bit set.
pub const RESPONSE_BIT: u8 = 0x80;
/// Longest topic or group name.
pub const MAX_NAME_BYTES: usize = 255;
/// Largest frame (every length in a frame fits a `u16`).
pub const MAX_FRAME_BYTES: usize = u16::MAX as usize;
/// Bytes a fetched record takes in a fetch response besides its value.
pub const FETCH_RECORD_OVERHEAD: usize = 10;
/// Bytes a produced record takes in a produce request besides its value.
pub const PRODUCE_RECORD_OVERHEAD: usize = 2;
/// A fetch response's body before its records.
pub const FETCH_BODY_HEADER_BYTES: usize = 34;

/// Request kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Kind {
    Topics = 1,
    Produce = 2,
    Fetch = 3,
    Commit = 4,
    Committed = 5,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Topics, Kind::Produce, Kind::Fetch, Kind::Commit, Kind::Committed];

    pub fn from_byte(byte: u8) -> Option<Kind> {
        Self::ALL.into_iter().find(|k| *k as u8 == byte)
    }

    /// The kind byte of this kind's responses.
    pub fn response_byte(self) -> u8 {
        self as u8 | RESPONSE_BIT
    }
}

/// A request that could not be decoded: the answer's correlation id (0 when the header
/// itself was unreadable), the raw kind byte (0 likewise) and the error to answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub correlation: u32,
    pub kind: u8,
    pub error: ErrorCode,
}

/// The values of a produce request, validated at decode time (iterating cannot fail).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Records<'a> {
    count: u16,
    bytes: &'a [u8],
}

impl<'a> Records<'a> {
    /// Checks that `bytes` holds exactly `count` `bytes16` values.
    fn validate(count: u16, bytes: &'a [u8]) -> Result<Self, ErrorCode> {
        let mut r = Reader::new(bytes);
        for _ in 0..count {
            r.bytes16()?;
        }
        r.end()?;
        Ok(Self { count, bytes })
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> RecordsIter<'a> {
        RecordsIter { reader: Reader::new(self.bytes), left: self.count }
    }
}

/// The values of a produce request, in order.
#[derive(Clone, Debug)]
pub struct RecordsIter<'a> {
    reader: Reader<'a>,
    left: u16,
}

impl<'a> Iterator for RecordsIter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.left = self.left.checked_sub(1)?;
        self.reader.bytes16().ok()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (usize::from(self.left), Some(usize::from(self.left)))
    }
}

/// A produce request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProduceRequest<'a> {
    pub topic: &'a str,
    pub placement: Placement<'a>,
    pub producer: Option<Producer>,
    pub records: Records<'a>,
}

/// A decoded request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Request<'a> {
    Topics { first: u16 },
    Produce(ProduceRequest<'a>),
    Fetch { topic: &'a str, partition: u32, offset: u64, max_bytes: u32 },
    Commit { group: &'a str, topic: &'a str, partition: u32, offset: u64 },
    Committed { group: &'a str, topic: &'a str, partition: u32 },
}

impl Request<'_> {
    pub fn kind(&self) -> Kind {
        match self {
            Request::Topics { .. } => Kind::Topics,
            Request::Produce(_) => Kind::Produce,
            Request::Fetch { .. } => Kind::Fetch,
            Request::Commit { .. } => Kind::Commit,
            Request::Committed { .. } => Kind::Committed,
        }
    }
}

/// Reads the common header: (version, kind byte, correlation), after checking the magic.
fn header(r: &mut Reader<'_>) -> Result<(u8, u8, u32), ErrorCode> {
    if r.take(2)? != MAGIC {
        return Err(ErrorCode::BadRequest);
    }
    Ok((r.u8()?, r.u8()?, r.u32()?))
}

/// Decodes one request frame (the whole message).
pub fn decode_request(frame: &[u8]) -> Result<(u32, Request<'_>), Refusal> {
    let mut r = Reader::new(frame);
    let unreadable = Refusal { correlation: 0, kind: 0, error: ErrorCode::BadRequest };
    let (version, kind_byte, correlation) = header(&mut r).map_err(|_| unreadable)?;
    let refuse = |error| Refusal { correlation, kind: kind_byte, error };
    if version != VERSION {
        return Err(refuse(ErrorCode::UnsupportedVersion));
    }
    let kind = Kind::from_byte(kind_byte).ok_or(refuse(ErrorCode::BadRequest))?;
    let request = request_body(kind, &mut r).map_err(refuse)?;
    r.end().map_err(refuse)?;
    Ok((correlation, request))
}

fn request_body<'a>(kind: Kind, r: &mut Reader<'a>) -> Result<Request<'a>, ErrorCode> {
    Ok(match kind {
        Kind::Topics => Request::Topics { first: r.u16()? },
        Kind::Produce => {
            let topic = r.name()?;
            let placement = match r.u8()? {
                0 => Placement::Key(r.bytes16()?),
                1 => Placement::Partition(r.u32()?),
                _ => return Err(ErrorCode::BadRequest),
            };
            let producer = if r.flag()? { Some(Producer { id: r.u64()?, sequence: r.u32()? }) } else { None };
            let count = r.u16()?;
            if count == 0 {
                return Err(ErrorCode::BadRequest);
            }
            let records = Records::validate(count, r.take(r.rest().len())?)?;
            Request::Produce(ProduceRequest { topic, placement, producer, records })
        }
        Kind::Fetch => {
            Request::Fetch { topic: r.name()?, partition: r.u32()?, offset: r.u64()?, max_bytes: r.u32()? }
        }
        Kind::Commit => {
            Request::Commit { group: r.name()?, topic: r.name()?, partition: r.u32()?, offset: r.u64()? }
        }
        Kind::Committed => Request::Committed { group: r.name()?, topic: r.name()?, partition: r.u32()? },
    })
}

fn request_header(w: &mut Writer<'_>, kind: Kind, correlation: u32) -> Result<(), ErrorCode> {
    w.put(&MAGIC)?;
    w.u8(VERSION)?;
    w.u8(kind as u8)?;
    w.u32(correlation)
}

/// Encodes a request other than produce (see [`ProduceBuilder`]) into `buf`; returns the
/// frame's length. A request that does not fit is [`ErrorCode::RecordTooLarge`], a bad
/// name [`ErrorCode::BadRequest`].
pub fn encode_request(buf: &mut [u8], correlation: u32, request: &Request<'_>) -> Result<usize, ErrorCode> {
    if let Request::Produce(p) = request {
        let mut b = ProduceBuilder::new(buf, correlation, p.topic, p.placement, p.producer)?;
        for record in p.records.iter() {
            b.push(record)?;
        }
        return b.finish();
    }
    let mut w = Writer::new(buf);
    request_header(&mut w, request.kind(), correlation)?;
    match *request {
        Request::Topics { first } => w.u16(first)?,
        Request::Produce(_) => {}
        Request::Fetch { topic, partition, offset, max_bytes } => {
            w.name(topic)?;
            w.u32(partition)?;
            w.u64(offset)?;
            w.u32(max_bytes)?;
        }
        Request::Commit { group, topic, partition, offset } => {
            w.name(group)?;
            w.name(topic)?;
            w.u32(partition)?;
            w.u64(offset)?;
        }
        Request::Committed { group, topic, partition } => {
            w.name(group)?;
            w.name(topic)?;
            w.u32(partition)?;
        }
    }
    Ok(w.len())
}

/// Builds a produce request record by record, straight into the send buffer (one copy
/// per value).
#[derive(Debug)]
pub struct ProduceBuilder<'b> {
    w: Writer<'b>,
    count_at: usize,
    count: u16,
}

impl<'b> ProduceBuilder<'b> {
    pub fn new(
        buf: &'b mut [u8],
        correlation: u32,
        topic: &str,
        placement: Placement<'_>,
        producer: Option<Producer>,
    ) -> Result<Self, ErrorCode> {
        let mut w = Writer::new(buf);
        request_header(&mut w, Kind::Produce, correlation)?;
        w.name(topic)?;
        match placement {
            Placement::Key(key) => {
                w.u8(0)?;
                w.bytes16(key)?;
            }
            Placement::Partition(p) => {
                w.u8(1)?;
                w.u32(p)?;
            }
        }
        match producer {
            Some(p) => {
                w.u8(1)?;
                w.u64(p.id)?;
                w.u32(p.sequence)?;
            }
            None => w.u8(0)?,
        }
        let count_at = w.len();
        w.u16(0)?;
        Ok(Self { w, count_at, count: 0 })
    }

    /// Adds one value; [`ErrorCode::RecordTooLarge`] (and nothing added) when it does not
    /// fit the frame.
    pub fn push(&mut self, value: &[u8]) -> Result<(), ErrorCode> {
        let count = self.count.checked_add(1).ok_or(ErrorCode::RecordTooLarge)?;
        self.w.bytes16(value)?;
        self.count = count;
        Ok(())
    }

    /// Whether a value of `len` bytes would fit.
    pub fn fits(&self, len: usize) -> bool {
        self.count < u16::MAX && self.w.remaining() >= PRODUCE_RECORD_OVERHEAD + len
    }

    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// The frame's length; a batch without records is [`ErrorCode::BadRequest`].
    pub fn finish(mut self) -> Result<usize, ErrorCode> {
        if self.count == 0 {
            return Err(ErrorCode::BadRequest);
        }
        self.w.patch(self.count_at, &self.count.to_le_bytes());
        Ok(self.w.len())
    }
}

// ---- responses ------------------------------------------------------------------------

/// A decoded response frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponseFrame<'a> {
    pub correlation: u32,
    /// The kind byte as sent (a request kind with [`RESPONSE_BIT`], or `RESPONSE_BIT` alone
    /// when the broker could not read the request's kind).
    pub kind: u8,
    pub body: Result<Response<'a>, ErrorCode>,
}

/// A successful response's body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Response<'a> {
    Topics(TopicsView<'a>),
    Produce(Appended),
    Fetch(FetchView<'a>),
    Commit,
    Committed(Option<u64>),
}

/// A response's kind byte and correlation id from its header alone (no body check): what
/// a client needs to skip answers that are not the one it waits for, cheaply.
pub fn peek_response(frame: &[u8]) -> Option<(u8, u32)> {
    let mut r = Reader::new(frame);
    let (version, kind, correlation) = header(&mut r).ok()?;
    (version == VERSION && kind & RESPONSE_BIT != 0).then_some((kind, correlation))
}

/// Decodes one response frame. An error code the crate does not know is
/// [`ErrorCode::BadRequest`] (the frame is malformed from our point of view).
pub fn decode_response(frame: &[u8]) -> Result<ResponseFrame<'_>, ErrorCode> {
    let mut r = Reader::new(frame);
    let (version, kind_byte, correlation) = header(&mut r)?;
    if version != VERSION {
        return Err(ErrorCode::UnsupportedVersion);
    }
    if kind_byte & RESPONSE_BIT == 0 {
        return Err(ErrorCode::BadRequest);
    }
    let code = r.u16()?;
    if code != 0 {
        let error = ErrorCode::from_code(code).ok_or(ErrorCode::BadRequest)?;
        r.end()?;
        return Ok(ResponseFrame { correlation, kind: kind_byte, body: Err(error) });
    }
    let kind = Kind::from_byte(kind_byte & !RESPONSE_BIT).ok_or(ErrorCode::BadRequest)?;
    let body = match kind {
        Kind::Topics => Response::Topics(TopicsView::decode(&mut r)?),
        Kind::Produce => {
            Response::Produce(Appended { partition: r.u32()?, base_offset: r.u64()?, duplicate: r.flag()? })
        }
        Kind::Fetch => Response::Fetch(FetchView::decode(&mut r)?),
        Kind::Commit => Response::Commit,
        Kind::Committed => {
            let present = r.flag()?;
            let offset = r.u64()?;
            if !present && offset != 0 {
                return Err(ErrorCode::BadRequest);
            }
            Response::Committed(present.then_some(offset))
        }
    };
    r.end()?;
    Ok(ResponseFrame { correlation, kind: kind_byte, body: Ok(body) })
}

fn response_header(w: &mut Writer<'_>, kind_byte: u8, correlation: u32, code: u16) -> Result<(), ErrorCode> {
    w.put(&MAGIC)?;
    w.u8(VERSION)?;
    w.u8(kind_byte)?;
    w.u32(correlation)?;
    w.u16(code)
}

/// Encodes an error response (`kind_byte`: the request's kind byte, 0 when unknown); 0
/// when `buf` is shorter than [`RESPONSE_HEADER_BYTES`].
pub fn encode_error(buf: &mut [u8], kind_byte: u8, correlation: u32, error: ErrorCode) -> usize {
    let mut w = Writer::new(buf);
    match response_header(&mut w, kind_byte | RESPONSE_BIT, correlation, error.code()) {
        Ok(()) => w.len(),
        Err(_) => 0,
    }
}

/// Encodes a response whose body is fixed-size (produce, commit, committed).
pub fn encode_simple_response(
    buf: &mut [u8],
    correlation: u32,
    body: SimpleBody,
) -> Result<usize, ErrorCode> {
    let mut w = Writer::new(buf);
    let kind = match body {
        SimpleBody::Produce(_) => Kind::Produce,
        SimpleBody::Commit => Kind::Commit,
        SimpleBody::Committed(_) => Kind::Committed,
    };
    response_header(&mut w, kind.response_byte(), correlation, 0)?;
    match body {
        SimpleBody::Produce(a) => {
            w.u32(a.partition)?;
            w.u64(a.base_offset)?;
            w.u8(u8::from(a.duplicate))?;
        }
        SimpleBody::Commit => {}
        SimpleBody::Committed(offset) => {
            w.u8(u8::from(offset.is_some()))?;
            w.u64(offset.unwrap_or(0))?;
        }
    }
    Ok(w.len())
}

/// The fixed-size response bodies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimpleBody {
    Produce(Appended),
    Commit,
    Committed(Option<u64>),
}

// ---- topics ---------------------------------------------------------------------------

/// A topics response's entries, validated at decode time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicsView<'a> {
    /// Topics the broker declares in all (more may follow in another request).
    pub total: u16,
    /// Index of the first entry.
    pub first: u16,
    count: u16,
    bytes: &'a [u8],
}

/// One topic of a topics response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TopicEntry<'a> {
    pub name: &'a str,
    pub partitions: u32,
    offsets: &'a [u8],
}

impl<'a> TopicEntry<'a> {
    /// `(start, end)` offsets of each partition, in partition order.
    pub fn offsets(&self) -> impl Iterator<Item = (u64, u64)> + 'a {
        self.offsets.chunks_exact(16).map(|c| {
            let mut r = Reader::new(c);
            (r.u64().unwrap_or(0), r.u64().unwrap_or(0))
        })
    }
}

fn topic_entry<'a>(r: &mut Reader<'a>) -> Result<TopicEntry<'a>, ErrorCode> {
    let name = r.name()?;
    let partitions = r.u32()?;
    let len =
        usize::try_from(partitions).ok().and_then(|p| p.checked_mul(16)).ok_or(ErrorCode::BadRequest)?;
    Ok(TopicEntry { name, partitions, offsets: r.take(len)? })
}

impl<'a> TopicsView<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ErrorCode> {
        let (total, first, count) = (r.u16()?, r.u16()?, r.u16()?);
        if u32::from(first) + u32::from(count) > u32::from(total) {
            return Err(ErrorCode::BadRequest);
        }
        let bytes = r.rest();
        for _ in 0..count {
            topic_entry(r)?;
        }
        Ok(Self { total, first, count, bytes })
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = TopicEntry<'a>> + 'a {
        let mut r = Reader::new(self.bytes);
        (0..self.count).map_while(move |_| topic_entry(&mut r).ok())
    }
}

/// Builds a topics response entry by entry.
#[derive(Debug)]
pub struct TopicsBuilder<'b> {
    w: Writer<'b>,
    count_at: usize,
    count: u16,
    room: u16,
}

impl<'b> TopicsBuilder<'b> {
    pub fn new(buf: &'b mut [u8], correlation: u32, total: u16, first: u16) -> Result<Self, ErrorCode> {
        let mut w = Writer::new(buf);
        response_header(&mut w, Kind::Topics.response_byte(), correlation, 0)?;
        w.u16(total)?;
        w.u16(first)?;
        let count_at = w.len();
        w.u16(0)?;
        Ok(Self { w, count_at, count: 0, room: total.saturating_sub(first) })
    }

    /// Adds a topic with `offsets(p)` for each partition; `false` (nothing added) when it
    /// does not fit.
    pub fn push(&mut self, name: &str, partitions: u32, mut offsets: impl FnMut(u32) -> (u64, u64)) -> bool {
        if self.count >= self.room {
            return false;
        }
        let mark = self.w.len();
        let mut write = || -> Result<(), ErrorCode> {
            self.w.name(name)?;
            self.w.u32(partitions)?;
            let need = usize::try_from(partitions).ok().and_then(|p| p.checked_mul(16));
            if need.is_none_or(|n| n > self.w.remaining()) {
                return Err(ErrorCode::RecordTooLarge);
            }
            for p in 0..partitions {
                let (start, end) = offsets(p);
                self.w.u64(start)?;
                self.w.u64(end)?;
            }
            Ok(())
        };
        if write().is_err() {
            self.w.truncate(mark);
            return false;
        }
        self.count += 1;
        true
    }

    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    pub fn finish(mut self) -> usize {
        self.w.patch(self.count_at, &self.count.to_le_bytes());
        self.w.len()
    }
}

// ---- fetch ----------------------------------------------------------------------------

/// A fetch response's records, validated at decode time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchView<'a> {
    pub next_offset: u64,
    pub end_offset: u64,
    count: u16,
    base_offset: u64,
    base_timestamp: u64,
    bytes: &'a [u8],
}

/// One record of a fetch response from its encoded fields; `None` when the deltas do not
/// add up (a malformed frame).
fn fetched_record<'a>(
    r: &mut Reader<'a>,
    base_offset: u64,
    base_timestamp: u64,
) -> Result<FetchedRecord<'a>, ErrorCode> {
    let offset_delta = r.u32()?;
    let timestamp_delta = r.i32()?;
    let value = r.bytes16()?;
    let offset = base_offset.checked_add(u64::from(offset_delta)).ok_or(ErrorCode::BadRequest)?;
    let timestamp_ms =
        base_timestamp.checked_add_signed(i64::from(timestamp_delta)).ok_or(ErrorCode::BadRequest)?;
    Ok(FetchedRecord { offset, timestamp_ms, value })
}

impl<'a> FetchView<'a> {
    fn decode(r: &mut Reader<'a>) -> Result<Self, ErrorCode> {
        let (next_offset, end_offset, count) = (r.u64()?, r.u64()?, r.u16()?);
        let (base_offset, base_timestamp) = (r.u64()?, r.u64()?);
        let bytes = r.rest();
        let mut previous: Option<u64> = None;
        for _ in 0..count {
            let record = fetched_record(r, base_offset, base_timestamp)?;
            // Offsets strictly increase within a response, and stay below next_offset.
            if previous.is_some_and(|p| record.offset <= p) || record.offset >= next_offset {
                return Err(ErrorCode::BadRequest);
            }
            previous = Some(record.offset);
        }
        Ok(Self { next_offset, end_offset, count, base_offset, base_timestamp, bytes })
    }

    pub fn len(&self) -> usize {
        usize::from(self.count)
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    pub fn iter(&self) -> impl Iterator<Item = FetchedRecord<'a>> + 'a {
        let mut r = Reader::new(self.bytes);
        let (base_offset, base_timestamp) = (self.base_offset, self.base_timestamp);
        (0..self.count).map_while(move |_| fetched_record(&mut r, base_offset, base_timestamp).ok())
    }
}

/// Builds a fetch response record by record, straight into the response buffer.
#[derive(Debug)]
pub struct FetchBuilder<'b> {
    w: Writer<'b>,
    body_at: usize,
    count: u16,
    base: Option<(u64, u64)>,
    max_bytes: usize,
    record_bytes: usize,
}

impl<'b> FetchBuilder<'b> {
    /// `max_bytes`: the request's limit on encoded record bytes (the first record is taken
    /// even when larger, so that a consumer never stalls on a large record).
    pub fn new(buf: &'b mut [u8], correlation: u32, max_bytes: u32) -> Result<Self, ErrorCode> {
        let mut w = Writer::new(buf);
        response_header(&mut w, Kind::Fetch.response_byte(), correlation, 0)?;
        let body_at = w.len();
        w.put(&[0; FETCH_BODY_HEADER_BYTES])?;
        let max_bytes = usize::try_from(max_bytes).unwrap_or(usize::MAX);
        Ok(Self { w, body_at, count: 0, base: None, max_bytes, record_bytes: 0 })
    }

    /// Adds a record; `false` (nothing added) when it does not fit the buffer or the byte
    /// limit, or its offset/timestamp is too far from the first record's for the deltas.
    pub fn push(&mut self, record: FetchedRecord<'_>) -> bool {
        let size = FETCH_RECORD_OVERHEAD + record.value.len();
        if self.count == u16::MAX || (self.count > 0 && self.record_bytes + size > self.max_bytes) {
            return false;
        }
        let (base_offset, base_timestamp) = self.base.unwrap_or((record.offset, record.timestamp_ms));
        let Some(offset_delta) = record.offset.checked_sub(base_offset).and_then(|d| u32::try_from(d).ok())
        else {
            return false;
        };
        let Ok(timestamp_delta) = i32::try_from(i128::from(record.timestamp_ms) - i128::from(base_timestamp))
        else {
            return false;
        };
        let Ok(len) = u16::try_from(record.value.len()) else {
            return false;
        };
        if self.w.remaining() < size {
            return false;
        }
        let mark = self.w.len();
        let mut write = || -> Result<(), ErrorCode> {
            self.w.u32(offset_delta)?;
            self.w.i32(timestamp_delta)?;
            self.w.u16(len)?;
            self.w.put(record.value)
        };
        if write().is_err() {
            self.w.truncate(mark);
            return false;
        }
        self.base = Some((base_offset, base_timestamp));
        self.count += 1;
        self.record_bytes += size;
        true
    }

    pub fn count(&self) -> usize {
        usize::from(self.count)
    }

    /// Completes the frame with the fetch's outcome; returns its length.
    pub fn finish(mut self, next_offset: u64, end_offset: u64) -> usize {
        let (base_offset, base_timestamp) = self.base.unwrap_or((0, 0));
        let mut body = [0u8; FETCH_BODY_HEADER_BYTES];
        let mut bw = Writer::new(&mut body);
        let _ = (
            bw.u64(next_offset),
            bw.u64(end_offset),
            bw.u16(self.count),
            bw.u64(base_offset),
            bw.u64(base_timestamp),
        );
        self.w.patch(self.body_at, &body);
        self.w.len()
    }
}
