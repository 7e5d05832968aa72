//! Bounds-checked little-endian reading and writing: every read of a hostile frame goes
//! through [`Reader`], which refuses (never panics) when the bytes run out.

use crate::ErrorCode;

/// Reads fields from the front of a byte string; running out is [`ErrorCode::BadRequest`].
#[derive(Clone, Debug)]
pub struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self { bytes }
    }

    /// The bytes not read yet.
    pub fn rest(&self) -> &'a [u8] {
        self.bytes
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], ErrorCode> {
        if n > self.bytes.len() {
            return Err(ErrorCode::BadRequest);
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ErrorCode> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub fn u8(&mut self) -> Result<u8, ErrorCode> {
        Ok(self.array::<1>()?[0])
    }

    pub fn u16(&mut self) -> Result<u16, ErrorCode> {
        self.array().map(u16::from_le_bytes)
    }

    pub fn u32(&mut self) -> Result<u32, ErrorCode> {
        self.array().map(u32::from_le_bytes)
    }

    pub fn i32(&mut self) -> Result<i32, ErrorCode> {
        self.array().map(i32::from_le_bytes)
    }

    pub fn u64(&mut self) -> Result<u64, ErrorCode> {
        self.array().map(u64::from_le_bytes)
    }

    /// A 0/1 flag; anything else is malformed.
    pub fn flag(&mut self) -> Result<bool, ErrorCode> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(ErrorCode::BadRequest),
        }
    }

    /// `bytes16`: a u16 length, then that many bytes.
    pub fn bytes16(&mut self) -> Result<&'a [u8], ErrorCode> {
        let len = self.u16()?;
        self.take(usize::from(len))
    }

    /// `name`: a u8 length (1..), then that many bytes of UTF-8.
    pub fn name(&mut self) -> Result<&'a str, ErrorCode> {
        let len = self.u8()?;
        if len == 0 {
            return Err(ErrorCode::BadRequest);
        }
        core::str::from_utf8(self.take(usize::from(len))?).map_err(|_| ErrorCode::BadRequest)
    }

    /// The frame must end here.
    pub fn end(&self) -> Result<(), ErrorCode> {
        if self.bytes.is_empty() {
            Ok(())
        } else {
            Err(ErrorCode::BadRequest)
        }
    }
}

/// Appends fields to a caller's buffer; running out of room is
/// [`ErrorCode::RecordTooLarge`] (what is to be sent does not fit one message), and the
/// writer is left as it was before the failed call.
#[derive(Debug)]
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Writer<'b> {
    pub fn new(buf: &'b mut [u8]) -> Self {
        Self { buf, len: 0 }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Room left.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.len
    }

    /// Forgets everything written from `len` on (to undo a partly written item).
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    pub fn put(&mut self, bytes: &[u8]) -> Result<(), ErrorCode> {
        let end = self.len.checked_add(bytes.len()).ok_or(ErrorCode::RecordTooLarge)?;
        let dst = self.buf.get_mut(self.len..end).ok_or(ErrorCode::RecordTooLarge)?;
        dst.copy_from_slice(bytes);
        self.len = end;
        Ok(())
    }

    pub fn u8(&mut self, v: u8) -> Result<(), ErrorCode> {
        self.put(&[v])
    }

    pub fn u16(&mut self, v: u16) -> Result<(), ErrorCode> {
        self.put(&v.to_le_bytes())
    }

    pub fn u32(&mut self, v: u32) -> Result<(), ErrorCode> {
        self.put(&v.to_le_bytes())
    }

    pub fn i32(&mut self, v: i32) -> Result<(), ErrorCode> {
        self.put(&v.to_le_bytes())
    }

    pub fn u64(&mut self, v: u64) -> Result<(), ErrorCode> {
        self.put(&v.to_le_bytes())
    }

    /// Overwrites bytes written earlier at `at` (counts known only at the end); a range
    /// past what was written is ignored.
    pub fn patch(&mut self, at: usize, bytes: &[u8]) {
        let end = at.saturating_add(bytes.len());
        if end <= self.len {
            if let Some(dst) = self.buf.get_mut(at..end) {
                dst.copy_from_slice(bytes);
            }
        }
    }

    /// `bytes16`; a value longer than `u16::MAX` is [`ErrorCode::RecordTooLarge`].
    pub fn bytes16(&mut self, bytes: &[u8]) -> Result<(), ErrorCode> {
        let len = u16::try_from(bytes.len()).map_err(|_| ErrorCode::RecordTooLarge)?;
        if self.remaining() < 2 + bytes.len() {
            return Err(ErrorCode::RecordTooLarge);
        }
        self.u16(len)?;
        self.put(bytes)
    }

    /// `name`: empty or longer than [`super::MAX_NAME_BYTES`] is [`ErrorCode::BadRequest`].
    pub fn name(&mut self, name: &str) -> Result<(), ErrorCode> {
        let len = u8::try_from(name.len()).map_err(|_| ErrorCode::BadRequest)?;
        if len == 0 {
            return Err(ErrorCode::BadRequest);
        }
        if self.remaining() < 1 + name.len() {
            return Err(ErrorCode::RecordTooLarge);
        }
        self.u8(len)?;
        self.put(name.as_bytes())
    }

    /// The written bytes.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}
