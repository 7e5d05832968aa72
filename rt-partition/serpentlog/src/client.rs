//! The client library, one implementation for RT partitions (no_std + alloc) and Linux
//! (std): a [`Client`] speaks the protocol over any [`Transport`] (a channel pair: one
//! frame per message), and a [`Consumer`] follows one partition.
//!
//! Waiting is the transport's business ([`Transport::wait`]: an RT partition yields to its
//! schedule, a Linux program sleeps); timeouts are counted in waits ([`Timing`]). Every
//! attempt carries a fresh correlation id, so a late answer to an earlier attempt is
//! recognised and skipped. Reads and commits are retried after a timeout (repeating them
//! is harmless); a produce is retried only for an idempotent producer (same batch, same
//! sequence: the broker acknowledges a duplicate with the original offsets), otherwise a
//! timed-out produce is reported as [`ClientError::TimedOut`] (it may or may not have
//! been appended).

use alloc::string::{String, ToString};
use alloc::vec;
use alloc::vec::Vec;

use crate::engine::{Appended, FetchedRecord, Placement, Producer};
use crate::protocol::{
    decode_response, encode_request, peek_response, FetchView, Kind, ProduceBuilder, Request, Response,
    TopicsView, MAX_FRAME_BYTES, REQUEST_HEADER_BYTES,
};
use crate::ErrorCode;

/// One channel pair to the broker: requests out, responses in, a frame per message.
pub trait Transport {
    type Error: core::fmt::Debug;

    /// The largest frame either way (the channels' message size).
    fn frame_capacity(&self) -> usize;

    /// Sends one frame if the request channel has room; `Ok(false)` when it is full.
    fn try_send(&mut self, frame: &[u8]) -> Result<bool, Self::Error>;

    /// Takes one response frame into `buf` if one is waiting; returns its length.
    fn try_recv(&mut self, buf: &mut [u8]) -> Result<Option<usize>, Self::Error>;

    /// Waits a little before the next try (yield, sleep, back off).
    fn wait(&mut self);
}

/// How long the client waits, in [`Transport::wait`] calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// Waits for an answer (and for room to send) before an attempt counts as lost.
    pub waits_per_attempt: u32,
    /// Attempts of a retryable request before [`ClientError::TimedOut`].
    pub attempts: u32,
}

impl Default for Timing {
    fn default() -> Self {
        Self { waits_per_attempt: 10_000, attempts: 5 }
    }
}

/// What a client call can fail with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientError<E> {
    /// The broker answered with an error.
    Broker(ErrorCode),
    /// The transport failed.
    Transport(E),
    /// No answer after every attempt (or after the only attempt of a plain produce).
    TimedOut,
    /// The request cannot be encoded: too large for one message, a bad name, or an
    /// idempotent produce by key (sequences are kept per partition: name the partition).
    Invalid(ErrorCode),
}

impl<E: core::fmt::Debug> core::fmt::Display for ClientError<E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            ClientError::Broker(e) => write!(f, "broker: {e}"),
            ClientError::Transport(e) => write!(f, "transport: {e:?}"),
            ClientError::TimedOut => f.write_str(
                "no answer from the broker (is it running? is this client's channel pair in its table?)",
            ),
            ClientError::Invalid(e) => write!(f, "request not sent: {e}"),
        }
    }
}

#[cfg(feature = "std")]
impl<E: core::fmt::Debug> std::error::Error for ClientError<E> {}

/// A topic as listed by [`Client::topics`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    /// `(start, end)` offsets per partition.
    pub partitions: Vec<(u64, u64)>,
}

/// An idempotent producer's next sequence in one partition.
#[derive(Clone, Debug)]
struct Sequence {
    topic: String,
    partition: u32,
    next: u32,
}

/// A SerpentLog client over one channel pair.
#[derive(Debug)]
pub struct Client<T: Transport> {
    transport: T,
    timing: Timing,
    tx: Vec<u8>,
    rx: Vec<u8>,
    next_correlation: u32,
    producer_id: Option<u64>,
    sequences: Vec<Sequence>,
    /// Answers skipped because their correlation id was not the awaited one.
    pub stale_answers: u64,
    /// Attempts repeated after a timeout.
    pub retries: u64,
}

/// A client call's outcome.
pub type ClientResult<T, E> = core::result::Result<T, ClientError<E>>;

impl<T: Transport> Client<T> {
    pub fn new(transport: T) -> Self {
        let capacity = transport.frame_capacity().min(MAX_FRAME_BYTES);
        Self {
            transport,
            timing: Timing::default(),
            tx: vec![0; capacity],
            rx: vec![0; capacity],
            next_correlation: 1,
            producer_id: None,
            sequences: Vec::new(),
            stale_answers: 0,
            retries: 0,
        }
    }

    pub fn with_timing(mut self, timing: Timing) -> Self {
        self.timing = timing;
        self
    }

    /// Makes [`Client::produce`] idempotent under producer id `id` (pick one unique to
    /// this producer, e.g. from the partition's name; sequences start at 0).
    pub fn with_producer_id(mut self, id: u64) -> Self {
        self.producer_id = Some(id);
        self
    }

    pub fn transport(&mut self) -> &mut T {
        &mut self.transport
    }

    /// The largest frame this client sends or takes.
    pub fn frame_capacity(&self) -> usize {
        self.tx.len()
    }

    /// The bytes a produce request to `topic` has for its values: each value takes
    /// [`crate::protocol::PRODUCE_RECORD_OVERHEAD`] plus its length (for batching records into frames).
    pub fn batch_room(&self, topic: &str, placement: Placement<'_>) -> usize {
        let placement_bytes = match placement {
            Placement::Key(k) => 2 + k.len(),
            Placement::Partition(_) => 4,
        };
        // Header, name, placement tag and value, producer flag, id and sequence, count.
        let fixed = REQUEST_HEADER_BYTES + 1 + topic.len() + 1 + placement_bytes + 1 + 12 + 2;
        self.tx.len().saturating_sub(fixed)
    }

    /// Sends the request in `tx[..len]` and waits for its answer; returns the answer's
    /// length in `rx`. `retry`: repeat the request after a lost attempt.
    fn exchange(&mut self, len: usize, kind: Kind, retry: bool) -> ClientResult<usize, T::Error> {
        let attempts = if retry { self.timing.attempts.max(1) } else { 1 };
        for attempt in 0..attempts {
            if attempt > 0 {
                self.retries += 1;
            }
            let correlation = self.next_correlation;
            self.next_correlation = self.next_correlation.wrapping_add(1).max(1);
            // The correlation id's place is the same in every request (header offset 4).
            self.tx[4..8].copy_from_slice(&correlation.to_le_bytes());
            let mut waits = 0;
            while !self.transport.try_send(&self.tx[..len]).map_err(ClientError::Transport)? {
                waits += 1;
                if waits > self.timing.waits_per_attempt {
                    break;
                }
                self.transport.wait();
            }
            while waits <= self.timing.waits_per_attempt {
                if let Some(n) = self.transport.try_recv(&mut self.rx).map_err(ClientError::Transport)? {
                    let n = n.min(self.rx.len());
                    // Only the header here: the body is decoded once, by the caller.
                    if peek_response(&self.rx[..n]) == Some((kind.response_byte(), correlation)) {
                        return Ok(n);
                    }
                    self.stale_answers += 1;
                    continue;
                }
                waits += 1;
                self.transport.wait();
            }
        }
        Err(ClientError::TimedOut)
    }

    /// Runs a request other than produce; returns the answer's length in `rx`.
    fn call(&mut self, request: &Request<'_>, retry: bool) -> ClientResult<usize, T::Error> {
        let len = encode_request(&mut self.tx, 0, request).map_err(ClientError::Invalid)?;
        self.exchange(len, request.kind(), retry)
    }

    fn answer(&self, len: usize) -> ClientResult<Response<'_>, T::Error> {
        let frame = decode_response(&self.rx[..len]).map_err(ClientError::Invalid)?;
        frame.body.map_err(ClientError::Broker)
    }

    /// One page of the topic list, from index `first`.
    pub fn topics_page(&mut self, first: u16) -> ClientResult<TopicsView<'_>, T::Error> {
        let len = self.call(&Request::Topics { first }, true)?;
        match self.answer(len)? {
            Response::Topics(view) => Ok(view),
            _ => Err(ClientError::Invalid(ErrorCode::BadRequest)),
        }
    }

    /// Every topic with its partitions' offsets (several requests when one answer cannot
    /// hold them all).
    pub fn topics(&mut self) -> ClientResult<Vec<TopicInfo>, T::Error> {
        let mut topics = Vec::new();
        loop {
            let first = u16::try_from(topics.len()).unwrap_or(u16::MAX);
            let view = self.topics_page(first)?;
            let total = usize::from(view.total);
            for entry in view.iter() {
                topics
                    .push(TopicInfo { name: entry.name.to_string(), partitions: entry.offsets().collect() });
            }
            if view.is_empty() || topics.len() >= total {
                return Ok(topics);
            }
        }
    }

    /// Appends `values` as one batch. With a producer id ([`Client::with_producer_id`]) the
    /// batch must name its partition and is retried until acknowledged (once).
    pub fn produce(
        &mut self,
        topic: &str,
        placement: Placement<'_>,
        values: &[&[u8]],
    ) -> ClientResult<Appended, T::Error> {
        let producer = match (self.producer_id, placement) {
            (None, _) => None,
            (Some(_), Placement::Key(_)) => return Err(ClientError::Invalid(ErrorCode::BadRequest)),
            (Some(id), Placement::Partition(p)) => {
                Some(Producer { id, sequence: self.sequence(topic, p).next })
            }
        };
        let mut builder =
            ProduceBuilder::new(&mut self.tx, 0, topic, placement, producer).map_err(ClientError::Invalid)?;
        for value in values {
            builder.push(value).map_err(ClientError::Invalid)?;
        }
        let len = builder.finish().map_err(ClientError::Invalid)?;
        let answer = self.exchange(len, Kind::Produce, producer.is_some())?;
        let appended = match self.answer(answer)? {
            Response::Produce(a) => a,
            _ => return Err(ClientError::Invalid(ErrorCode::BadRequest)),
        };
        if let (Some(_), Placement::Partition(p)) = (producer, placement) {
            let s = self.sequence(topic, p);
            s.next = s.next.wrapping_add(values.len() as u32);
        }
        Ok(appended)
    }

    fn sequence(&mut self, topic: &str, partition: u32) -> &mut Sequence {
        let at = match self.sequences.iter().position(|s| s.topic == topic && s.partition == partition) {
            Some(at) => at,
            None => {
                self.sequences.push(Sequence { topic: topic.to_string(), partition, next: 0 });
                self.sequences.len() - 1
            }
        };
        &mut self.sequences[at]
    }

    /// Records from `offset` on, as many as fit `max_bytes` and one message.
    pub fn fetch(
        &mut self,
        topic: &str,
        partition: u32,
        offset: u64,
        max_bytes: u32,
    ) -> ClientResult<FetchView<'_>, T::Error> {
        let len = self.call(&Request::Fetch { topic, partition, offset, max_bytes }, true)?;
        match self.answer(len)? {
            Response::Fetch(view) => Ok(view),
            _ => Err(ClientError::Invalid(ErrorCode::BadRequest)),
        }
    }

    /// Records `group`'s position (the next offset it will read).
    pub fn commit(
        &mut self,
        group: &str,
        topic: &str,
        partition: u32,
        offset: u64,
    ) -> ClientResult<(), T::Error> {
        let len = self.call(&Request::Commit { group, topic, partition, offset }, true)?;
        match self.answer(len)? {
            Response::Commit => Ok(()),
            _ => Err(ClientError::Invalid(ErrorCode::BadRequest)),
        }
    }

    /// `group`'s committed position, `None` if it never committed.
    pub fn committed(
        &mut self,
        group: &str,
        topic: &str,
        partition: u32,
    ) -> ClientResult<Option<u64>, T::Error> {
        let len = self.call(&Request::Committed { group, topic, partition }, true)?;
        match self.answer(len)? {
            Response::Committed(offset) => Ok(offset),
            _ => Err(ClientError::Invalid(ErrorCode::BadRequest)),
        }
    }
}

/// Where a [`Consumer`] starts when it has no committed offset to resume from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StartAt {
    /// The oldest record kept.
    Earliest,
    /// The partition's end: only records produced from now on.
    Latest,
    Offset(u64),
}

/// Follows one partition of a topic, handing out its records in offset order.
#[derive(Clone, Debug)]
pub struct Consumer {
    topic: String,
    partition: u32,
    group: Option<String>,
    next_offset: u64,
    /// Bytes asked for per fetch.
    pub max_bytes: u32,
}

impl Consumer {
    /// A consumer at `start`; with a `group`, from the group's committed offset when it
    /// has one (and `start` otherwise).
    pub fn new<T: Transport>(
        client: &mut Client<T>,
        topic: &str,
        partition: u32,
        group: Option<&str>,
        start: StartAt,
    ) -> ClientResult<Self, T::Error> {
        let committed = match group {
            Some(g) => client.committed(g, topic, partition)?,
            None => None,
        };
        let next_offset = match (committed, start) {
            (Some(offset), _) => offset,
            (None, StartAt::Offset(offset)) => offset,
            (None, StartAt::Earliest | StartAt::Latest) => {
                let topics = client.topics()?;
                let t = topics
                    .iter()
                    .find(|t| t.name == topic)
                    .ok_or(ClientError::Broker(ErrorCode::UnknownTopic))?;
                let (first, end) = *t
                    .partitions
                    .get(partition as usize)
                    .ok_or(ClientError::Broker(ErrorCode::UnknownPartition))?;
                if start == StartAt::Earliest {
                    first
                } else {
                    end
                }
            }
        };
        Ok(Self {
            topic: topic.to_string(),
            partition,
            group: group.map(str::to_string),
            next_offset,
            max_bytes: u32::MAX,
        })
    }

    /// Moves the consumer: the next record it hands out is the one at `offset`.
    pub fn seek(&mut self, offset: u64) {
        self.next_offset = offset;
    }

    /// The offset of the next record this consumer hands out.
    pub fn position(&self) -> u64 {
        self.next_offset
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn partition(&self) -> u32 {
        self.partition
    }

    /// One fetch: hands each new record to `each`, in order; returns how many (0 when the
    /// consumer has caught up with the partition's end: wait, then poll again).
    pub fn poll<T: Transport>(
        &mut self,
        client: &mut Client<T>,
        mut each: impl FnMut(FetchedRecord<'_>),
    ) -> ClientResult<usize, T::Error> {
        let view = client.fetch(&self.topic, self.partition, self.next_offset, self.max_bytes)?;
        let mut handed = 0;
        for record in view.iter() {
            if record.offset >= self.next_offset {
                each(record);
                handed += 1;
            }
        }
        self.next_offset = self.next_offset.max(view.next_offset);
        Ok(handed)
    }

    /// Commits the consumer's position for its group (nothing without a group).
    pub fn commit<T: Transport>(&self, client: &mut Client<T>) -> ClientResult<(), T::Error> {
        match &self.group {
            Some(g) => client.commit(g, &self.topic, self.partition, self.next_offset),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
