//! The SerpentLog wire protocol: one request or response per channel message.
//!
//! Channels carry fixed-size messages (a channel's message size, e.g. 1-4 KiB); every frame
//! fits one message, so nothing is ever reassembled. The codec takes the capacity as the
//! length of the caller's buffer (at most [`MAX_FRAME_BYTES`], so every length fits a `u16`).
//! Decoding borrows from the received bytes and allocates nothing; encoding writes into the
//! caller's `&mut [u8]`. Decoding is total: any byte string decodes, or is refused with
//! [`ErrorCode::BadRequest`] (or [`ErrorCode::UnsupportedVersion`]); it never panics and
//! never reads outside the frame. A frame's length is the message's length: bytes left
//! over after the last field make the frame malformed.
//!
//! All integers are little-endian, without alignment. `name` is a UTF-8 string of 1 to
//! [`MAX_NAME_BYTES`] bytes after a `u8` length. `bytes16` is a `u16` length, then that many
//! bytes.
//!
//! # Header (every frame)
//!
//! | offset | size | field | |
//! |---|---|---|---|
//! | 0 | 2 | magic | `"SL"` (`0x53 0x4C`) |
//! | 2 | 1 | version | [`VERSION`] (1); the header's layout is the same in every version |
//! | 3 | 1 | kind | request: [`Kind`] (1-5); response: the request's kind `| 0x80` |
//! | 4 | 4 | correlation | chosen by the client, echoed by the broker |
//! | 8 | 2 | error (responses only) | 0 = ok, else an [`ErrorCode`]; a response with an error has no body |
//!
//! A request's body starts at offset 8, a response's at offset 10.
//!
//! # Requests
//!
//! **Topics** (kind 1): list topics from index `first` on (as many as fit a response).
//!
//! | field | type |
//! |---|---|
//! | first | u16 |
//!
//! **Produce** (kind 2): append a batch, all or nothing.
//!
//! | field | type | |
//! |---|---|---|
//! | topic | name | |
//! | placement | u8 | 0 = by key, 1 = explicit partition |
//! | key or partition | bytes16 or u32 | |
//! | has producer | u8 | 0 or 1 |
//! | producer id, sequence | u64, u32 | only when has producer = 1 |
//! | count | u16 | records in the batch (at least 1) |
//! | records | count × bytes16 | the values |
//!
//! **Fetch** (kind 3):
//!
//! | field | type |
//! |---|---|
//! | topic | name |
//! | partition | u32 |
//! | offset | u64 |
//! | max bytes | u32 (encoded record bytes: 10 + value length each; the first record is given even when larger) |
//!
//! **Commit** (kind 4): group, topic (names), partition u32, offset u64.
//!
//! **Committed** (kind 5): group, topic (names), partition u32.
//!
//! # Response bodies (error = 0)
//!
//! **Topics**: total u16 (topics declared), first u16, count u16, then `count` entries:
//!
//! | field | type |
//! |---|---|
//! | name | name |
//! | partitions | u32 (n) |
//! | offsets | n × (start u64, end u64) |
//!
//! **Produce**: partition u32, base offset u64, duplicate u8 (1: a retried batch already
//! appended; nothing new was written).
//!
//! **Fetch**:
//!
//! | field | type | |
//! |---|---|---|
//! | next offset | u64 | where the next fetch starts |
//! | end offset | u64 | the partition's end |
//! | count | u16 | |
//! | base offset | u64 | offsets below are relative to it |
//! | base timestamp | u64 | ms; timestamps below are relative to it |
//! | records | count × (offset delta u32, timestamp delta i32, value bytes16) | |
//!
//! **Commit**: empty. **Committed**: has offset u8 (0 or 1), offset u64.

mod cursor;
mod frames;

#[cfg(test)]
mod tests;

pub use cursor::{Reader, Writer};
pub use frames::*;
