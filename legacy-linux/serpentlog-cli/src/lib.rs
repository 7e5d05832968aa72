//! `serpentlog`: the Linux command line of SerpentLog. The commands are functions over any
//! [`Transport`] and any output, so that tests run them against an in-process broker; the
//! binary (`main.rs`) connects them to a hybrid-bridge channel pair through rhlink.
//!
//! Output is meant for scripts: `offset N: VALUE` per consumed record, `topic NAME
//! partition P start S end E` per partition, one summary line per produce or bench phase.
//! Errors say what went wrong and what to do.

#![forbid(unsafe_code)]

pub mod transport;

use std::fmt::Display;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::time::Instant;

use clap::{Parser, Subcommand};
use serpentlog::client::{Client, ClientError, Consumer, StartAt, Timing, Transport};
use serpentlog::engine::{FetchedRecord, Placement};
use serpentlog::load;
use serpentlog::protocol::PRODUCE_RECORD_OVERHEAD;
use serpentlog::ErrorCode;

#[derive(Parser, Debug)]
#[command(
    name = "serpentlog",
    version,
    about = "Produce to and consume from the SerpentLog broker partition"
)]
pub struct Cli {
    /// This client's channel pair: CLIENT_req (Linux -> broker) and CLIENT_resp.
    #[arg(long, global = true, default_value = "linux")]
    pub client: String,
    /// The PCI device directory to scan (tests use a fake one).
    #[arg(long, global = true, default_value = rhlink::SYSFS_PCI_DEVICES)]
    pub sysfs: PathBuf,
    /// How long to wait for each answer before retrying (retryable requests try 3 times).
    #[arg(long, global = true, default_value_t = 2000)]
    pub timeout_ms: u64,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Append each line of stdin as one record (or generated records with --count).
    Produce {
        topic: String,
        /// Place records by this key (same key, same partition).
        #[arg(long, conflicts_with = "partition")]
        key: Option<String>,
        /// Append to this partition (default 0). Such produces are idempotent: a batch
        /// retried after a lost answer is appended once.
        #[arg(long)]
        partition: Option<u32>,
        /// Produce this many generated records instead of reading stdin: `rec ` and the
        /// record's number (from 1) in 10 digits, padded with `.` to --size bytes.
        #[arg(long)]
        count: Option<u64>,
        /// Bytes per generated record (at least 14).
        #[arg(long, default_value_t = 16)]
        size: usize,
        /// Idempotent producer id (default: one made from the process id and the time).
        #[arg(long)]
        producer_id: Option<u64>,
    },
    /// Print a partition's records as `offset N: VALUE` (text as text, other bytes in hex).
    Consume {
        topic: String,
        #[arg(long, default_value_t = 0)]
        partition: u32,
        /// Resume from this consumer group's committed offset, and commit as records are
        /// printed.
        #[arg(long)]
        group: Option<String>,
        /// Start here (when the group has no committed offset; default: the oldest record).
        #[arg(long)]
        from: Option<u64>,
        /// Keep waiting for new records.
        #[arg(long)]
        follow: bool,
        /// Stop after this many records (waiting for them).
        #[arg(long)]
        count: Option<u64>,
        /// Records are generated ones (as `produce --count` makes them): print their
        /// numbers (`counter N`), and fail on a gap, repeat or reordering.
        #[arg(long)]
        sequence: bool,
    },
    /// List topics: `topic NAME partition P start S end E` per partition.
    Topics,
    /// Produce --count records of --size bytes to a partition, consume them back, and print
    /// records per second for each phase.
    Bench {
        topic: String,
        #[arg(long, default_value_t = 0)]
        partition: u32,
        #[arg(long, default_value_t = 10_000)]
        count: u64,
        #[arg(long, default_value_t = 100)]
        size: usize,
    },
}

/// A failed command: what went wrong and what to do, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CliError {}

/// The client's timing for a timeout: rhlink's backoff spins and yields about 2,050
/// times, then sleeps up to 2 ms a wait.
pub fn timing(timeout_ms: u64) -> Timing {
    let waits = 2_050 + 16 + timeout_ms / 2;
    Timing { waits_per_attempt: u32::try_from(waits).unwrap_or(u32::MAX), attempts: 3 }
}

/// Explains a client error in terms of the command line.
pub fn explain<E: Display>(error: ClientError<E>, topic: &str, partition: Option<u32>) -> CliError {
    let partition = partition.map_or(String::new(), |p| format!(" partition {p}"));
    CliError(match error {
        ClientError::Broker(ErrorCode::UnknownTopic) => format!(
            "unknown topic `{topic}`: `serpentlog topics` lists the declared ones (topics are declared in the broker partition's args)"
        ),
        ClientError::Broker(ErrorCode::UnknownPartition) => {
            format!("topic `{topic}` has no{partition}: `serpentlog topics` shows its partitions")
        }
        ClientError::Broker(ErrorCode::OffsetOutOfRange) => format!(
            "offset out of range in `{topic}`{partition}: retention dropped it or it is not written yet; `serpentlog topics` shows each partition's start and end, --from picks another"
        ),
        ClientError::Broker(ErrorCode::RecordTooLarge) => {
            "record too large for the broker or for one channel message: send smaller records".into()
        }
        ClientError::Broker(ErrorCode::OutOfOrderSequence) => {
            "the broker saw a gap in this producer's sequence numbers: run again with a new --producer-id".into()
        }
        ClientError::Broker(e) => format!("the broker refused the request: {e}"),
        ClientError::TimedOut => "no answer from the broker: is the SerpentLog partition running, and does its table give this client its channel pair? (--timeout-ms waits longer)".into(),
        ClientError::Transport(e) => format!("channel: {e}"),
        ClientError::Invalid(ErrorCode::RecordTooLarge) => {
            "a record does not fit one channel message: send smaller records".into()
        }
        ClientError::Invalid(e) => format!("cannot send this request (a name longer than 255 bytes or empty?): {e}"),
    })
}

fn output(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        // The reader went away (`serpentlog consume ... | head`): a normal end, as for cat.
        return CliError(String::new());
    }
    CliError(format!("writing output: {e}"))
}

/// A record's value as text when it is printable UTF-8, else `0x` and hex.
pub fn render(value: &[u8]) -> String {
    match std::str::from_utf8(value) {
        Ok(text) if !text.chars().any(|c| c.is_control() && c != '\t') => text.to_string(),
        _ => {
            let mut hex = String::with_capacity(2 + 2 * value.len());
            hex.push_str("0x");
            for b in value {
                hex.push_str(&format!("{b:02x}"));
            }
            hex
        }
    }
}

/// Values collected for one produce request, in one buffer.
#[derive(Default)]
struct Batch {
    data: Vec<u8>,
    ends: Vec<usize>,
    /// Request bytes the values take.
    bytes: usize,
}

impl Batch {
    fn push(&mut self, value: &[u8]) {
        self.data.extend_from_slice(value);
        self.ends.push(self.data.len());
        self.bytes += PRODUCE_RECORD_OVERHEAD + value.len();
    }

    fn values(&self) -> Vec<&[u8]> {
        let mut start = 0;
        self.ends
            .iter()
            .map(|&end| {
                let v = &self.data[start..end];
                start = end;
                v
            })
            .collect()
    }

    fn clear(&mut self) {
        self.data.clear();
        self.ends.clear();
        self.bytes = 0;
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }
}

/// Offsets produced to one partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Produced {
    pub partition: u32,
    pub first: u64,
    pub last: u64,
    pub records: u64,
}

/// Sends what `batch` holds, noting where it went.
fn flush<T: Transport>(
    client: &mut Client<T>,
    topic: &str,
    placement: Placement<'_>,
    batch: &mut Batch,
    produced: &mut Vec<Produced>,
) -> Result<(), CliError>
where
    T::Error: Display,
{
    if batch.is_empty() {
        return Ok(());
    }
    let values = batch.values();
    let n = values.len() as u64;
    let partition = match placement {
        Placement::Partition(p) => Some(p),
        Placement::Key(_) => None,
    };
    let a = client.produce(topic, placement, &values).map_err(|e| explain(e, topic, partition))?;
    let last = a.base_offset + n - 1;
    match produced.iter_mut().find(|p| p.partition == a.partition) {
        Some(p) => {
            p.last = last;
            p.records += n;
        }
        None => produced.push(Produced { partition: a.partition, first: a.base_offset, last, records: n }),
    }
    batch.clear();
    Ok(())
}

/// Generated record number `k` (`serpentlog::load`) of `size` bytes, into `buf`.
fn counter_value(buf: &mut Vec<u8>, k: u64, size: usize) {
    buf.resize(size.max(load::NUMBERED_BYTES), 0);
    let len = load::generated(k, size, buf);
    buf.truncate(len);
}

/// Produces `count` generated records, or the lines of `input`, batching as many records
/// per request as fit one message (a batch of lines is sent when no more input is
/// buffered, so that lines typed by hand go out at once).
pub fn produce<T: Transport, R: Read>(
    client: &mut Client<T>,
    topic: &str,
    placement: Placement<'_>,
    count: Option<u64>,
    size: usize,
    input: &mut BufReader<R>,
) -> Result<Vec<Produced>, CliError>
where
    T::Error: Display,
{
    let room = client.batch_room(topic, placement);
    let too_large = |len: usize| {
        CliError(format!(
            "a record of {len} bytes does not fit one channel message ({room} bytes for records): send smaller records"
        ))
    };
    let mut batch = Batch::default();
    let mut produced = Vec::new();
    let add = |client: &mut Client<T>, batch: &mut Batch, value: &[u8], produced: &mut Vec<Produced>| {
        if PRODUCE_RECORD_OVERHEAD + value.len() > room {
            return Err(too_large(value.len()));
        }
        if batch.bytes + PRODUCE_RECORD_OVERHEAD + value.len() > room
            || batch.ends.len() == usize::from(u16::MAX)
        {
            flush(client, topic, placement, batch, produced)?;
        }
        batch.push(value);
        Ok(())
    };
    match count {
        Some(n) => {
            if size < load::NUMBERED_BYTES {
                return Err(CliError(format!(
                    "--size must be at least {} (`rec ` and the record's number)",
                    load::NUMBERED_BYTES
                )));
            }
            let mut value = Vec::with_capacity(size);
            for k in 1..=n {
                counter_value(&mut value, k, size);
                add(client, &mut batch, &value, &mut produced)?;
            }
        }
        None => {
            let mut line = String::new();
            loop {
                line.clear();
                let read = input.read_line(&mut line).map_err(|e| CliError(format!("reading stdin: {e}")))?;
                if read == 0 {
                    break;
                }
                let value = line.strip_suffix('\n').unwrap_or(&line);
                let value = value.strip_suffix('\r').unwrap_or(value);
                add(client, &mut batch, value.as_bytes(), &mut produced)?;
                if input.buffer().is_empty() {
                    flush(client, topic, placement, &mut batch, &mut produced)?;
                }
            }
        }
    }
    flush(client, topic, placement, &mut batch, &mut produced)?;
    Ok(produced)
}

/// Prints the summary lines of a produce.
pub fn print_produced(out: &mut impl Write, topic: &str, produced: &[Produced]) -> io::Result<()> {
    if produced.is_empty() {
        writeln!(out, "produced 0 records to {topic}")?;
    }
    for p in produced {
        writeln!(
            out,
            "produced {} records to {topic} partition {} offsets {}..={}",
            p.records, p.partition, p.first, p.last
        )?;
    }
    Ok(())
}

/// What `consume` is asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumeArgs {
    pub topic: String,
    pub partition: u32,
    pub group: Option<String>,
    pub from: Option<u64>,
    pub follow: bool,
    pub count: Option<u64>,
    pub sequence: bool,
}

/// Prints records as `offset N: VALUE` (or `offset N: counter K` with `sequence`); returns
/// how many. `idle` is called while the consumer has caught up and waits for more.
pub fn consume<T: Transport>(
    client: &mut Client<T>,
    args: &ConsumeArgs,
    out: &mut impl Write,
    idle: &mut dyn FnMut(),
) -> Result<u64, CliError>
where
    T::Error: Display,
{
    let (topic, partition) = (args.topic.as_str(), args.partition);
    let fail = |e| explain(e, topic, Some(partition));
    let start = args.from.map_or(StartAt::Earliest, StartAt::Offset);
    let mut consumer = Consumer::new(client, topic, partition, args.group.as_deref(), start).map_err(fail)?;
    let mut printed = 0u64;
    let mut expected: Option<u64> = None;
    let mut trouble: Option<CliError> = None;
    loop {
        let mut last_printed = None;
        let wanted = args.count.map_or(u64::MAX, |c| c - printed);
        let mut taken = 0u64;
        let handed = consumer
            .poll(client, |r: FetchedRecord<'_>| {
                if taken >= wanted || trouble.is_some() {
                    return;
                }
                let line = if args.sequence {
                    match sequence_check(r, &mut expected) {
                        Ok(k) => format!("offset {}: counter {k}", r.offset),
                        Err(e) => {
                            trouble = Some(e);
                            return;
                        }
                    }
                } else {
                    format!("offset {}: {}", r.offset, render(r.value))
                };
                if let Err(e) = writeln!(out, "{line}") {
                    trouble = Some(output(e));
                    return;
                }
                taken += 1;
                last_printed = Some(r.offset);
            })
            .map_err(fail)?;
        printed += taken;
        if let Some(e) = trouble {
            return Err(e);
        }
        if taken < handed as u64 {
            // Stopped inside a fetch: the position (and the group's commit) is after the
            // last record printed, not after the last one fetched.
            if let Some(last) = last_printed {
                consumer.seek(last + 1);
            }
        }
        if taken > 0 {
            consumer.commit(client).map_err(fail)?;
        }
        if args.count.is_some_and(|c| printed >= c) {
            break;
        }
        if handed == 0 {
            if !args.follow && args.count.is_none() {
                break;
            }
            out.flush().map_err(output)?;
            idle();
        }
    }
    out.flush().map_err(output)?;
    Ok(printed)
}

/// The generated record's number, checked to follow the previous one.
fn sequence_check(record: FetchedRecord<'_>, expected: &mut Option<u64>) -> Result<u64, CliError> {
    let Some(k) = load::number_of(record.value) else {
        return Err(CliError(format!(
            "offset {}: {}, not a generated record (`rec` and a 10-digit number)",
            record.offset,
            render(record.value)
        )));
    };
    if let Some(e) = expected.filter(|e| *e != k) {
        return Err(CliError(format!(
            "offset {}: expected counter {e}, got {k} (lost, repeated or reordered)",
            record.offset
        )));
    }
    *expected = Some(k.wrapping_add(1));
    Ok(k)
}

/// Prints `topic NAME partition P start S end E` per partition.
pub fn topics<T: Transport>(client: &mut Client<T>, out: &mut impl Write) -> Result<(), CliError>
where
    T::Error: Display,
{
    let topics = client.topics().map_err(|e| explain(e, "", None))?;
    for t in &topics {
        for (p, (start, end)) in t.partitions.iter().enumerate() {
            writeln!(out, "topic {} partition {p} start {start} end {end}", t.name).map_err(output)?;
        }
    }
    Ok(())
}

/// Throughput of one bench phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Phase {
    pub records: u64,
    pub seconds: f64,
}

impl Phase {
    pub fn per_second(&self) -> f64 {
        if self.seconds > 0.0 {
            self.records as f64 / self.seconds
        } else {
            f64::INFINITY
        }
    }
}

/// Produces `count` counter records of `size` bytes to a partition, then consumes them
/// back checking their order; prints one line per phase.
pub fn bench<T: Transport>(
    client: &mut Client<T>,
    topic: &str,
    partition: u32,
    count: u64,
    size: usize,
    out: &mut impl Write,
) -> Result<(Phase, Phase), CliError>
where
    T::Error: Display,
{
    let started = Instant::now();
    let placement = Placement::Partition(partition);
    let produced = produce(client, topic, placement, Some(count), size, &mut BufReader::new(io::empty()))?;
    let produce = Phase { records: count, seconds: started.elapsed().as_secs_f64() };
    writeln!(
        out,
        "bench produce: {count} records of {size} bytes in {:.3} s: {:.0} records/s",
        produce.seconds,
        produce.per_second()
    )
    .map_err(output)?;
    let Some(first) = produced.first().map(|p| p.first) else {
        return Ok((produce, Phase { records: 0, seconds: 0.0 }));
    };
    let started = Instant::now();
    let args = ConsumeArgs {
        topic: topic.into(),
        partition,
        group: None,
        from: Some(first),
        follow: false,
        count: Some(count),
        sequence: true,
    };
    let consumed = consume(client, &args, &mut io::sink(), &mut || {})?;
    let consume = Phase { records: consumed, seconds: started.elapsed().as_secs_f64() };
    writeln!(
        out,
        "bench consume: {consumed} records in {:.3} s: {:.0} records/s",
        consume.seconds,
        consume.per_second()
    )
    .map_err(output)?;
    Ok((produce, consume))
}

/// Runs a parsed command over `client`; stdin lines come from `input`.
pub fn run<T: Transport, R: Read>(
    command: &Command,
    client: &mut Client<T>,
    input: &mut BufReader<R>,
    out: &mut impl Write,
    idle: &mut dyn FnMut(),
) -> Result<(), CliError>
where
    T::Error: Display,
{
    match command {
        Command::Produce { topic, key, partition, count, size, .. } => {
            let placement = match key {
                Some(k) => Placement::Key(k.as_bytes()),
                None => Placement::Partition(partition.unwrap_or(0)),
            };
            let produced = produce(client, topic, placement, *count, *size, input)?;
            print_produced(out, topic, &produced).map_err(output)
        }
        Command::Consume { topic, partition, group, from, follow, count, sequence } => {
            let args = ConsumeArgs {
                topic: topic.clone(),
                partition: *partition,
                group: group.clone(),
                from: *from,
                follow: *follow,
                count: *count,
                sequence: *sequence,
            };
            consume(client, &args, out, idle).map(|_| ())
        }
        Command::Topics => topics(client, out),
        Command::Bench { topic, partition, count, size } => {
            bench(client, topic, *partition, *count, *size, out).map(|_| ())
        }
    }
}

#[cfg(test)]
mod tests;
