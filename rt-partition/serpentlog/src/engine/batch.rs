//! Record batches as stored in a segment.
//!
//! ```text
//!  0 magic "SLb1"   4 crc32 of bytes 8..length   8 length (header + records)
//! 12 base offset u64                            20 timestamp ms u64
//! 28 producer id u64     36 first sequence u32   40 record count u32
//! 44 flags u32 (bit 0: idempotent producer; other bits must be 0)
//! 48 records: count × (value length u32, value bytes)
//! ```
//! All integers little-endian. The CRC covers the length field, so a torn or damaged
//! length cannot make a batch look valid over the wrong range.

use super::bytes::{get_u32, get_u64, put};
use super::layout::{BATCH_HEADER_BYTES, RECORD_OVERHEAD_BYTES};
use super::Producer;

pub(crate) const BATCH_MAGIC: u32 = u32::from_le_bytes(*b"SLb1");
const FLAG_PRODUCER: u32 = 1;

const AT_MAGIC: usize = 0;
const AT_CRC: usize = 4;
const AT_LENGTH: usize = 8;
const AT_BASE: usize = 12;
const AT_TIMESTAMP: usize = 20;
const AT_PRODUCER: usize = 28;
const AT_SEQUENCE: usize = 36;
const AT_COUNT: usize = 40;
const AT_FLAGS: usize = 44;

/// A batch header's fields.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub length: usize,
    pub base_offset: u64,
    pub timestamp_ms: u64,
    pub producer: Option<Producer>,
    pub record_count: u32,
}

impl BatchHeader {
    /// One past the batch's last offset (`None` if it would overflow: never valid).
    pub(crate) fn end_offset(&self) -> Option<u64> {
        self.base_offset.checked_add(u64::from(self.record_count))
    }
}

/// Bytes `records` take as one batch (header included); `None` if absurdly large.
pub fn batch_bytes(records: &[&[u8]]) -> Option<usize> {
    records
        .iter()
        .try_fold(BATCH_HEADER_BYTES, |sum, r| sum.checked_add(RECORD_OVERHEAD_BYTES)?.checked_add(r.len()))
}

/// Writes a batch into `dest`, which must be exactly its [`batch_bytes`] long. The CRC is
/// written last, so a write cut anywhere before it leaves a batch that does not check.
pub(crate) fn write(dest: &mut [u8], header: &BatchHeader, records: &[&[u8]]) -> Option<()> {
    let length = u32::try_from(header.length).ok()?;
    let (producer_id, sequence, flags) = match header.producer {
        Some(p) => (p.id, p.sequence, FLAG_PRODUCER),
        None => (0, 0, 0),
    };
    let mut head = [0u8; BATCH_HEADER_BYTES];
    put(&mut head, AT_MAGIC, &BATCH_MAGIC.to_le_bytes())?;
    put(&mut head, AT_LENGTH, &length.to_le_bytes())?;
    put(&mut head, AT_BASE, &header.base_offset.to_le_bytes())?;
    put(&mut head, AT_TIMESTAMP, &header.timestamp_ms.to_le_bytes())?;
    put(&mut head, AT_PRODUCER, &producer_id.to_le_bytes())?;
    put(&mut head, AT_SEQUENCE, &sequence.to_le_bytes())?;
    put(&mut head, AT_COUNT, &header.record_count.to_le_bytes())?;
    put(&mut head, AT_FLAGS, &flags.to_le_bytes())?;
    put(dest, 0, &head)?;
    let mut at = BATCH_HEADER_BYTES;
    for record in records {
        let len = u32::try_from(record.len()).ok()?;
        put(dest, at, &len.to_le_bytes())?;
        at += RECORD_OVERHEAD_BYTES;
        put(dest, at, record)?;
        at += record.len();
    }
    if at != dest.len() {
        return None;
    }
    let crc = crc32fast::hash(dest.get(AT_LENGTH..)?);
    put(dest, AT_CRC, &crc.to_le_bytes())
}

/// Reads the header at `buf[at..]` without checking the CRC: for batches already
/// validated (fetch, re-walks after recovery). Plausibility is still checked.
pub(crate) fn read_header(buf: &[u8], at: usize) -> Option<BatchHeader> {
    let field = |offset: usize| at.saturating_add(offset);
    if get_u32(buf, field(AT_MAGIC))? != BATCH_MAGIC {
        return None;
    }
    let length = get_u32(buf, field(AT_LENGTH))? as usize;
    let flags = get_u32(buf, field(AT_FLAGS))?;
    if length < BATCH_HEADER_BYTES || flags & !FLAG_PRODUCER != 0 {
        return None;
    }
    let producer = if flags & FLAG_PRODUCER != 0 {
        Some(Producer { id: get_u64(buf, field(AT_PRODUCER))?, sequence: get_u32(buf, field(AT_SEQUENCE))? })
    } else {
        None
    };
    let header = BatchHeader {
        length,
        base_offset: get_u64(buf, field(AT_BASE))?,
        timestamp_ms: get_u64(buf, field(AT_TIMESTAMP))?,
        producer,
        record_count: get_u32(buf, field(AT_COUNT))?,
    };
    header.end_offset()?;
    Some(header)
}

/// What is at `buf[at..]`, for recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A whole batch that checks and starts at the expected offset.
    Batch(BatchHeader),
    /// No batch magic: the clean end of the segment's batches.
    End,
    /// Something that starts like a batch but does not check (torn or damaged); the
    /// number is the bytes it claims, clipped to the buffer.
    Torn(usize),
}

/// Validates the batch at `buf[at..]`: magic, length inside `buf`, CRC, at least one
/// record, records that exactly fill the length, and `base_offset == expected_base`
/// (stale batches from a segment's earlier life have smaller offsets, so they never
/// match).
pub(crate) fn validate(buf: &[u8], at: usize, expected_base: u64) -> Found {
    let remaining = buf.len().saturating_sub(at);
    match get_u32(buf, at) {
        Some(BATCH_MAGIC) => {}
        _ => return Found::End,
    }
    let claimed = get_u32(buf, at.saturating_add(AT_LENGTH)).map_or(remaining, |l| l as usize);
    let torn = Found::Torn(claimed.min(remaining));
    let Some(header) = read_header(buf, at) else { return torn };
    let Some(bytes) = at.checked_add(header.length).and_then(|end| buf.get(at..end)) else { return torn };
    let crc_ok = bytes.get(AT_LENGTH..).map(crc32fast::hash) == get_u32(bytes, AT_CRC);
    if !crc_ok
        || header.base_offset != expected_base
        || header.record_count == 0
        || !records_fill(bytes, header.record_count)
    {
        return torn;
    }
    Found::Batch(header)
}

/// Whether `count` length-prefixed records exactly fill `batch` after its header.
fn records_fill(batch: &[u8], count: u32) -> bool {
    let mut records = Records::new(batch, count);
    for _ in 0..count {
        if records.next().is_none() {
            return false;
        }
    }
    records.at == batch.len()
}

/// The values of a batch (`batch` is the whole batch, header included).
pub(crate) struct Records<'b> {
    batch: &'b [u8],
    at: usize,
    left: u32,
}

impl<'b> Records<'b> {
    pub(crate) fn new(batch: &'b [u8], count: u32) -> Self {
        Records { batch, at: BATCH_HEADER_BYTES, left: count }
    }
}

impl<'b> Iterator for Records<'b> {
    type Item = &'b [u8];

    fn next(&mut self) -> Option<&'b [u8]> {
        if self.left == 0 {
            return None;
        }
        let len = get_u32(self.batch, self.at)? as usize;
        let start = self.at.checked_add(RECORD_OVERHEAD_BYTES)?;
        let end = start.checked_add(len)?;
        let value = self.batch.get(start..end)?;
        self.at = end;
        self.left -= 1;
        Some(value)
    }
}
