//! The broker's side of the protocol: one request frame in, one response frame out.
//!
//! [`Server::serve`] decodes a request, asks the [`Engine`], and encodes the answer into the
//! caller's response buffer (the reply channel's message). Every request is hostile input:
//! a malformed one gets a `BadRequest` (or `UnsupportedVersion`) response carrying its
//! correlation id when the header could be read (0 otherwise); nothing panics.

use alloc::vec::Vec;

use crate::engine::Engine;
use crate::protocol::{
    decode_request, encode_error, encode_simple_response, FetchBuilder, Request, SimpleBody, TopicsBuilder,
    RESPONSE_HEADER_BYTES,
};
use crate::ErrorCode;

/// Serves requests; keeps one scratch list of record slices so that a produce allocates
/// nothing once the largest batch has been seen.
#[derive(Debug, Default)]
pub struct Server {
    scratch: Vec<&'static [u8]>,
}

/// One-off [`Server::serve`] (allocates its scratch list on every produce).
pub fn serve<E: Engine + ?Sized>(engine: &mut E, request: &[u8], now_ms: u64, response: &mut [u8]) -> usize {
    Server::new().serve(engine, request, now_ms, response)
}

impl Server {
    pub fn new() -> Self {
        Self::default()
    }

    /// Answers the request frame `request` at the broker's time `now_ms`; writes the response
    /// frame into `response` and returns its length (0 only when `response` is shorter than
    /// [`RESPONSE_HEADER_BYTES`]).
    pub fn serve<E: Engine + ?Sized>(
        &mut self,
        engine: &mut E,
        request: &[u8],
        now_ms: u64,
        response: &mut [u8],
    ) -> usize {
        if response.len() < RESPONSE_HEADER_BYTES {
            return 0;
        }
        let (correlation, request) = match decode_request(request) {
            Ok(decoded) => decoded,
            Err(refusal) => return encode_error(response, refusal.kind, refusal.correlation, refusal.error),
        };
        let kind = request.kind();
        match self.answer(engine, correlation, request, now_ms, response) {
            Ok(len) => len,
            Err(error) => encode_error(response, kind as u8, correlation, error),
        }
    }

    fn answer<E: Engine + ?Sized>(
        &mut self,
        engine: &mut E,
        correlation: u32,
        request: Request<'_>,
        now_ms: u64,
        response: &mut [u8],
    ) -> Result<usize, ErrorCode> {
        match request {
            Request::Topics { first } => topics(engine, correlation, first, response),
            Request::Produce(p) => {
                let mut records = self.take_scratch();
                records.extend(p.records.iter());
                let appended = engine.produce(p.topic, p.placement, p.producer, &records, now_ms);
                self.give_back(records);
                encode_simple_response(response, correlation, SimpleBody::Produce(appended?))
            }
            Request::Fetch { topic, partition, offset, max_bytes } => {
                let mut builder = FetchBuilder::new(response, correlation, max_bytes)?;
                let fetched = engine.fetch(topic, partition, offset, &mut |record| builder.push(record))?;
                if builder.count() == 0 && fetched.next_offset < fetched.end_offset {
                    // The next record alone does not fit this reply channel's message.
                    return Err(ErrorCode::RecordTooLarge);
                }
                Ok(builder.finish(fetched.next_offset, fetched.end_offset))
            }
            Request::Commit { group, topic, partition, offset } => {
                engine.commit(group, topic, partition, offset)?;
                encode_simple_response(response, correlation, SimpleBody::Commit)
            }
            Request::Committed { group, topic, partition } => {
                let offset = engine.committed(group, topic, partition)?;
                encode_simple_response(response, correlation, SimpleBody::Committed(offset))
            }
        }
    }

    /// The scratch list, empty, typed for this request's lifetime (the allocation is reused:
    /// collecting an emptied vector into one of a same-sized element type keeps it).
    fn take_scratch<'a>(&mut self) -> Vec<&'a [u8]> {
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.clear();
        scratch.into_iter().map(|_| -> &'a [u8] { &[] }).collect()
    }

    fn give_back(&mut self, mut records: Vec<&[u8]>) {
        records.clear();
        self.scratch = records.into_iter().map(|_| -> &'static [u8] { &[] }).collect();
    }
}

/// Topics from index `first` on, as many as fit.
fn topics<E: Engine + ?Sized>(
    engine: &E,
    correlation: u32,
    first: u16,
    response: &mut [u8],
) -> Result<usize, ErrorCode> {
    let total = u16::try_from(engine.topic_count()).unwrap_or(u16::MAX);
    if first > total {
        return Err(ErrorCode::BadRequest);
    }
    let mut builder = TopicsBuilder::new(response, correlation, total, first)?;
    for index in usize::from(first)..usize::from(total) {
        let Some(topic) = engine.topic(index) else { break };
        let offsets = |p| engine.offsets(topic.name, p).unwrap_or((0, 0));
        if !builder.push(topic.name, topic.partitions, offsets) {
            if builder.count() == 0 {
                return Err(ErrorCode::RecordTooLarge);
            }
            break;
        }
    }
    Ok(builder.finish())
}

#[cfg(test)]
mod tests;
