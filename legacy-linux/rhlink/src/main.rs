//! `rhlink`: list, send to, receive from and benchmark the channels a RustHallows Linux
//! partition sees. Errors go to stderr with a non-zero exit status.

use std::io::{self, BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use rhlink::{Bridge, Direction, Error, Kind, Receiver, Sender};

#[derive(Parser)]
#[command(name = "rhlink", version, about = "Talk to RustHallows real-time partitions over channels")]
struct Cli {
    /// The PCI device directory to scan (tests use a fake one).
    #[arg(long, global = true, default_value = rhlink::SYSFS_PCI_DEVICES)]
    sysfs: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the channels: name, kind, direction, sizes, peer state, PCI function.
    List,
    /// Send each line of stdin as one message, or generated messages with --count.
    Send {
        name: String,
        /// Send this many generated messages (an 8-byte little-endian counter from 0,
        /// padded to --size bytes) instead of reading stdin.
        #[arg(long)]
        count: Option<u64>,
        /// Bytes per generated message (at least 8, at most the channel's message size).
        #[arg(long, default_value_t = 8)]
        size: usize,
    },
    /// Receive and print messages: text as text, anything else in hex.
    Recv {
        name: String,
        /// Keep waiting for more messages, forever.
        #[arg(long)]
        follow: bool,
        /// Receive exactly this many messages (waiting for them), then stop.
        #[arg(long)]
        count: Option<u64>,
        /// Check that messages carry consecutive 8-byte counters (as `send --count` and the
        /// demo's sensor send them) and fail on a gap, repeat or reordering.
        #[arg(long)]
        sequence: bool,
        /// Give up after this many milliseconds without a message (0: never).
        #[arg(long, default_value_t = 0)]
        timeout_ms: u64,
    },
    /// Isolation tests only: write pseudo-random words into the channel's writer pages
    /// (indices, lengths, data), as a hostile writer would; the reader must cope.
    Scribble {
        name: String,
        /// Bursts of garbage to write.
        #[arg(long, default_value_t = 100)]
        rounds: u64,
        /// Words per burst.
        #[arg(long, default_value_t = 16)]
        words: usize,
        /// Pause between bursts, in milliseconds.
        #[arg(long, default_value_t = 10)]
        interval_ms: u64,
        /// Seed of the pseudo-random words.
        #[arg(long, default_value_t = 1)]
        seed: u64,
    },
    /// Measure the channel from this side: messages per second and time per message.
    /// Isolation tests only: try to map past the channel's BARs (BAR0 and BAR2 each one
    /// page longer than the function has). Succeeds when the kernel refuses both.
    Probe { name: String },
    Bench {
        name: String,
        /// Messages to send or receive.
        #[arg(long, default_value_t = 100_000)]
        count: u64,
        /// Bytes per message (sending side; at least 8).
        #[arg(long, default_value_t = 8)]
        size: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let bridge = Bridge::at(&cli.sysfs);
    let result = match cli.command {
        Command::List => list(&bridge),
        Command::Send { name, count, size } => send(&bridge, &name, count, size),
        Command::Recv { name, follow, count, sequence, timeout_ms } => {
            recv(&bridge, &name, follow, count, sequence, timeout_ms)
        }
        Command::Scribble { name, rounds, words, interval_ms, seed } => {
            scribble(&bridge, &name, rounds, words, interval_ms, seed)
        }
        Command::Bench { name, count, size } => bench(&bridge, &name, count, size),
        Command::Probe { name } => probe(&bridge, &name),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rhlink: {e}");
            ExitCode::FAILURE
        }
    }
}

fn list(bridge: &Bridge) -> Result<(), Error> {
    let channels = bridge.list()?;
    let mut out = io::stdout().lock();
    for c in &channels {
        let kind = match c.kind {
            Kind::Sampling => "sampling",
            Kind::Queuing => "queuing",
        };
        let direction = match c.direction {
            Direction::LinuxWrites => "linux->rt",
            Direction::LinuxReads => "rt->linux",
        };
        let _ = writeln!(
            out,
            "{} {kind} {direction} message {} B depth {} peer {} pci {}",
            c.name,
            c.msg_size,
            c.depth,
            c.peer_state,
            rhlink::device_name(&c.path)
        );
    }
    let _ = writeln!(out, "{} channel(s)", channels.len());
    Ok(())
}

/// An 8-byte little-endian counter padded to `size` bytes.
fn counter_message(k: u64, size: usize) -> Vec<u8> {
    let mut m = k.to_le_bytes().to_vec();
    m.resize(size.max(8), 0);
    m
}

fn sender(bridge: &Bridge, name: &str) -> Result<Sender, Error> {
    bridge.open(name)?.sender()
}

fn receiver(bridge: &Bridge, name: &str) -> Result<Receiver, Error> {
    bridge.open(name)?.receiver()
}

fn send(bridge: &Bridge, name: &str, count: Option<u64>, size: usize) -> Result<(), Error> {
    let mut tx = sender(bridge, name)?;
    let sent = match count {
        Some(n) => {
            for k in 0..n {
                tx.send(&counter_message(k, size))?;
            }
            n
        }
        None => {
            let mut sent = 0;
            for line in io::stdin().lock().lines() {
                let line = line.map_err(|error| Error::Io { path: "stdin".into(), error })?;
                tx.send(line.as_bytes())?;
                sent += 1;
            }
            sent
        }
    };
    eprintln!("rhlink: sent {sent} message(s) on {name}");
    Ok(())
}

/// A message as a line: text when it is printable UTF-8 (NUL padding at its end dropped),
/// else hex.
fn render(msg: &[u8]) -> String {
    let text = &msg[..msg.iter().rposition(|&b| b != 0).map_or(0, |last| last + 1)];
    match std::str::from_utf8(text) {
        Ok("") if !msg.is_empty() => msg.iter().map(|b| format!("{b:02x}")).collect(),
        Ok(text) if text.chars().all(|c| !c.is_control() || c == '\t') => text.to_string(),
        _ => msg.iter().map(|b| format!("{b:02x}")).collect(),
    }
}

fn recv(
    bridge: &Bridge,
    name: &str,
    follow: bool,
    count: Option<u64>,
    sequence: bool,
    timeout_ms: u64,
) -> Result<(), Error> {
    let mut rx = receiver(bridge, name)?;
    let mut buf = vec![0u8; rx.msg_size()];
    let mut received = 0u64;
    let mut expected: Option<u64> = None;
    let mut out = io::stdout().lock();
    let waiting = follow || count.is_some();
    while count.is_none_or(|n| received < n) {
        let message = if !waiting {
            match rx.try_recv(&mut buf)? {
                Some(m) => m,
                None => break,
            }
        } else if timeout_ms == 0 {
            rx.recv(&mut buf)?
        } else {
            rx.recv_timeout(&mut buf, Duration::from_millis(timeout_ms))?
        };
        let msg = &buf[..message.len];
        received += 1;
        if sequence {
            let Some(k) = msg.get(..8).map(|b| u64::from_le_bytes(b.try_into().unwrap_or_default())) else {
                return Err(sequence_error(format!(
                    "message {received} has {} bytes, no counter",
                    msg.len()
                )));
            };
            if let Some(e) = expected.filter(|e| *e != k) {
                return Err(sequence_error(format!("expected counter {e}, got {k} (message {received})")));
            }
            expected = Some(k.wrapping_add(1));
            let _ = writeln!(out, "{k}");
        } else {
            let _ = writeln!(out, "{}", render(msg));
        }
    }
    let _ = out.flush();
    match (sequence, expected) {
        (true, Some(next)) => {
            eprintln!("rhlink: received {received} message(s) on {name} in order, last {}", next - 1)
        }
        _ => eprintln!("rhlink: received {received} message(s) on {name}"),
    }
    Ok(())
}

fn sequence_error(why: String) -> Error {
    Error::Io { path: "sequence check".into(), error: io::Error::new(io::ErrorKind::InvalidData, why) }
}

fn scribble(
    bridge: &Bridge,
    name: &str,
    rounds: u64,
    words: usize,
    interval_ms: u64,
    seed: u64,
) -> Result<(), Error> {
    let mut tx = sender(bridge, name)?;
    let mut state = seed;
    for _ in 0..rounds {
        tx.scribble(&mut state, words);
        std::thread::sleep(Duration::from_millis(interval_ms));
    }
    eprintln!("rhlink: wrote {} garbage word(s) into {name}'s writer pages", rounds * words as u64);
    Ok(())
}

/// Maps `len` bytes of the sysfs resource file `path` read-only: what the kernel answers.
fn try_map(path: &std::path::Path, len: usize) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(path)?;
    // SAFETY: a fresh shared read-only mapping chosen by the kernel, unmapped right away;
    // nothing reads it.
    let base = unsafe {
        libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0)
    };
    if base == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `base` is the mapping of `len` bytes made above.
    unsafe { libc::munmap(base, len) };
    Ok(())
}

fn probe(bridge: &Bridge, name: &str) -> Result<(), Error> {
    let info = bridge.open(name)?.info().clone();
    let mut accepted = 0;
    for (resource, bar) in [("resource0", "BAR0"), ("resource2", "BAR2")] {
        let path = info.path.join(resource);
        let size =
            std::fs::metadata(&path).map_err(|error| Error::Io { path: path.clone(), error })?.len() as usize;
        let page = 4096;
        match try_map(&path, size + page) {
            Err(e) => println!("{name}: mapping {} bytes of {bar} ({size} bytes) refused: {e}", size + page),
            Ok(()) => {
                println!("{name}: mapping {} bytes of {bar} ({size} bytes) ACCEPTED", size + page);
                accepted += 1;
            }
        }
    }
    if accepted == 0 {
        Ok(())
    } else {
        let error = io::Error::other(format!("{accepted} mapping(s) past a BAR accepted"));
        Err(Error::Io { path: info.path.clone(), error })
    }
}

fn bench(bridge: &Bridge, name: &str, count: u64, size: usize) -> Result<(), Error> {
    let channel = bridge.open(name)?;
    let (done, elapsed, note) = if channel.info().direction.linux_writes() {
        let mut tx = channel.sender()?;
        let size = size.clamp(8, tx.msg_size().max(8));
        let mut msg = counter_message(0, size);
        let start = Instant::now();
        for k in 0..count {
            msg[..8].copy_from_slice(&k.to_le_bytes());
            tx.send(&msg)?;
        }
        (count, start.elapsed(), format!("sent, {size} B each"))
    } else {
        let mut rx = channel.receiver()?;
        let mut buf = vec![0u8; rx.msg_size()];
        let (mut first, mut last, mut got) = (None, 0u64, 0u64);
        let start = Instant::now();
        while got < count {
            let m = rx.recv_timeout(&mut buf, Duration::from_secs(5))?;
            if let Some(b) = buf[..m.len].get(..8) {
                let k = u64::from_le_bytes(b.try_into().unwrap_or_default());
                first.get_or_insert(k);
                last = k;
            }
            got += 1;
        }
        let span = first.map_or(0, |f| last.wrapping_sub(f) + 1);
        (got, start.elapsed(), format!("received, {} lost by counter", span.saturating_sub(got)))
    };
    let secs = elapsed.as_secs_f64().max(1e-9);
    println!(
        "{name}: {done} messages {note} in {:.3} s: {:.0} msg/s, {:.0} ns/msg",
        secs,
        done as f64 / secs,
        secs * 1e9 / done.max(1) as f64
    );
    Ok(())
}
