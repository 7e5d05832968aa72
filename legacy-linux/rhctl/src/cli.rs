//! The commands: arguments, what each prints, and the errors that say what to do.

use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use hallows_abi::manage::{Op, PartitionRecord, Status};

use crate::client::{name, Client};
use crate::json::Value;
use crate::{show, Error, Transport};

#[derive(Parser, Debug)]
#[command(name = "rhctl", version, about = "Manage RustHallows partitions from a Linux partition")]
pub struct Cli {
    /// The PCI device directory to scan (tests use a fake one).
    #[arg(long, global = true, default_value = rhlink::SYSFS_PCI_DEVICES)]
    pub sysfs: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Every partition: name, id, kind, state, vCPUs, cores, memory, restarts, uptime, image.
    List,
    /// Counters of one partition (or of every one): exits by reason, windows, overruns,
    /// deadline misses, health events by class, console, restarts, uptime.
    Stats {
        /// The partition (every one when left out).
        name: Option<String>,
        /// One JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The newest health-monitor events of one partition (or of every one).
    Events {
        /// The partition (every one when left out).
        name: Option<String>,
        /// Keep polling (every 500 ms) and print new events as they come.
        #[arg(long)]
        follow: bool,
    },
    /// Restart a partition (its persistent region is kept unless --clean).
    Restart {
        /// The partition, by the name `rhctl list` shows.
        name: String,
        /// Also zero the partition's persistent region.
        #[arg(long)]
        clean: bool,
    },
    /// Stop a partition for good (until `rhctl start`).
    Halt {
        /// The partition, by the name `rhctl list` shows.
        name: String,
    },
    /// Start a halted partition afresh.
    Start {
        /// The partition, by the name `rhctl list` shows.
        name: String,
    },
}

/// Runs `command` over `client`, printing to `out`. `pause` runs between two polls of
/// `events --follow` and says whether to go on (the binary sleeps 500 ms and says yes).
pub fn run<T: Transport>(
    command: &Command,
    client: &mut Client<T>,
    out: &mut dyn Write,
    pause: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    match command {
        Command::List => {
            let records = client.list()?;
            write(out, &show::list(&records))
        }
        Command::Stats { name, json } => stats(client, name.as_deref(), *json, out),
        Command::Events { name, follow } => events(client, name.as_deref(), *follow, out, pause),
        Command::Restart { name, clean } => control(client, Op::Restart, name, *clean, out),
        Command::Halt { name } => control(client, Op::Halt, name, false, out),
        Command::Start { name } => control(client, Op::Start, name, false, out),
    }
}

fn write(out: &mut dyn Write, text: &str) -> Result<(), Error> {
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).map_err(Error::Output)
}

/// The partitions `name` selects: the one of that name, or every one without a name.
fn select(records: Vec<PartitionRecord>, wanted: Option<&str>) -> Result<Vec<PartitionRecord>, Error> {
    let Some(wanted) = wanted else { return Ok(records) };
    match records.iter().position(|r| name(r) == wanted) {
        Some(at) => Ok(vec![records[at]]),
        None => Err(Error::UnknownName {
            name: wanted.into(),
            known: records.iter().map(|r| name(r).to_string()).collect(),
        }),
    }
}

fn stats<T: Transport>(
    client: &mut Client<T>,
    wanted: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let selected = select(client.list()?, wanted)?;
    let mut now_ns = 0;
    let mut blocks = Vec::new();
    for record in &selected {
        let s = client.stats(record.index)?;
        now_ns = s.now_ns;
        blocks.push((record, s));
    }
    if json {
        let partitions = blocks.iter().map(|(r, s)| show::stats_json(r, s)).collect();
        let doc = Value::object([("now_ns", now_ns.into()), ("partitions", Value::Array(partitions))]);
        return write(out, &(doc.to_text() + "\n"));
    }
    let text: Vec<String> = blocks.iter().map(|(r, s)| show::stats(r, s)).collect();
    write(out, &text.join("\n"))
}

/// What `events` remembers of one partition between polls.
struct Followed {
    record: PartitionRecord,
    /// Events the partition had at the last poll.
    seen: u64,
}

fn events<T: Transport>(
    client: &mut Client<T>,
    wanted: Option<&str>,
    follow: bool,
    out: &mut dyn Write,
    pause: &mut dyn FnMut() -> bool,
) -> Result<(), Error> {
    let selected = select(client.list()?, wanted)?;
    let width = show::event_name_width(selected.iter().map(name));
    let mut followed: Vec<Followed> =
        selected.into_iter().map(|record| Followed { record, seen: 0 }).collect();
    let mut header_written = false;
    let mut first_poll = true;
    loop {
        // Lines of this poll, in time order across partitions; notes about gaps after them.
        let mut lines: Vec<(u64, String)> = Vec::new();
        let mut notes = Vec::new();
        for f in &mut followed {
            let events = client.events(f.record.index)?;
            let partition = name(&f.record);
            let held = events.records.len() as u64;
            // Events newer than the last poll (all of them at the first, or should the
            // total ever go back).
            let new = if events.total >= f.seen { events.total - f.seen } else { events.total };
            let shown = new.min(held);
            if first_poll && events.total > held {
                notes.push(format!("{partition}: {} events in all, the newest {held} shown", events.total));
            } else if !first_poll && new > held {
                notes.push(format!(
                    "{partition}: {} events were missed (more came between two polls than the log holds)",
                    new - held
                ));
            }
            for e in &events.records[(held - shown) as usize..] {
                lines.push((e.time_ns, show::event_line(width, partition, e)));
            }
            f.seen = events.total;
        }
        lines.sort_by_key(|(time, _)| *time);
        let mut text = String::new();
        if !lines.is_empty() && !header_written {
            text.push_str(&show::event_header(width));
            text.push('\n');
            header_written = true;
        }
        for (_, line) in lines {
            text.push_str(&line);
            text.push('\n');
        }
        for note in notes {
            text.push_str(&note);
            text.push('\n');
        }
        if first_poll && !header_written {
            text.push_str(if follow {
                "no health-monitor events yet; waiting for them\n"
            } else {
                "no health-monitor events\n"
            });
        }
        write(out, &text)?;
        first_poll = false;
        if !follow || !pause() {
            return Ok(());
        }
    }
}

fn control<T: Transport>(
    client: &mut Client<T>,
    op: Op,
    wanted: &str,
    clean: bool,
    out: &mut dyn Write,
) -> Result<(), Error> {
    let record = select(client.list()?, Some(wanted))?[0];
    let result = match op {
        Op::Halt => client.halt(record.index),
        Op::Start => client.start(record.index),
        _ => client.restart(record.index, clean),
    };
    match result {
        Ok(()) => write(out, &(done(op, &record, clean) + "\n")),
        Err(Error::Refused { status: Status::IsCaller, .. }) => {
            Err(Error::IsCaller { name: wanted.into(), op })
        }
        Err(Error::Refused { status: Status::WrongState, .. }) => {
            // The state now, which refused it (the list above may be a moment older).
            let now = client.list()?.into_iter().find(|r| r.index == record.index).unwrap_or(record);
            Err(Error::WrongState { name: wanted.into(), state: show::state(now.state), op })
        }
        Err(other) => Err(other),
    }
}

/// What an accepted request set going.
fn done(op: Op, record: &PartitionRecord, clean: bool) -> String {
    let partition = name(record);
    match op {
        Op::Halt => format!("halting {partition} (`rhctl start {partition}` starts it again)"),
        Op::Start => format!("starting {partition} afresh"),
        _ if record.persistent_bytes == 0 => {
            format!(
                "restarting {partition}{}",
                if clean { " (clean; it has no persistent region)" } else { "" }
            )
        }
        _ if clean => format!("restarting {partition} (persistent region scrubbed)"),
        _ => format!("restarting {partition} (persistent region kept)"),
    }
}
