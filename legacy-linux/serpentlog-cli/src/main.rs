//! `serpentlog`: produce to, consume from and benchmark the SerpentLog broker partition
//! over this Linux partition's channel pair. Errors go to stderr with a non-zero status.

#![forbid(unsafe_code)]

use std::io::{self, BufReader};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Parser;
use rhlink::{Bridge, Error};
use serpentlog::client::Client;
use serpentlog_cli::transport::ChannelTransport;
use serpentlog_cli::{run, timing, Cli, CliError, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match main_with(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Output cut short by its reader (a broken pipe): quiet, like cat.
        Err(e) if e.0.is_empty() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("serpentlog: {e}");
            ExitCode::FAILURE
        }
    }
}

fn main_with(cli: &Cli) -> Result<(), CliError> {
    let transport =
        ChannelTransport::open(&Bridge::at(&cli.sysfs), &cli.client).map_err(|e| opening(e, &cli.client))?;
    let mut client = Client::new(transport).with_timing(timing(cli.timeout_ms));
    let idempotent = match &cli.command {
        Command::Produce { key: None, producer_id, .. } => {
            Some(producer_id.unwrap_or_else(fresh_producer_id))
        }
        Command::Bench { .. } => Some(fresh_producer_id()),
        _ => None,
    };
    if let Some(id) = idempotent {
        client = client.with_producer_id(id);
    }
    let mut idle_ms = 0u64;
    let mut idle = || {
        // Polling a quiet partition: sleep a little longer each time, up to 10 ms.
        idle_ms = (idle_ms + 1).min(10);
        std::thread::sleep(Duration::from_millis(idle_ms));
    };
    let mut stdout = io::stdout().lock();
    run(&cli.command, &mut client, &mut BufReader::new(io::stdin().lock()), &mut stdout, &mut idle)
}

/// A producer id unlikely to repeat: the process id and the time.
fn fresh_producer_id() -> u64 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64);
    (u64::from(std::process::id()) << 40) ^ nanos
}

fn opening(e: Error, client: &str) -> CliError {
    CliError(match e {
        Error::NoSuchChannel(name) => format!(
            "no channel {name}: the broker's table must give this Linux partition the queuing pair {client}_req (Linux -> broker) and {client}_resp (broker -> Linux); `rhlink list` shows the channels here, --client picks another pair"
        ),
        Error::PeerNotRunning { .. } => format!("{e}: the broker partition is not running (see the hypervisor's console)"),
        Error::WrongDirection { .. } => format!("{e}: {client}_req must be written by Linux, {client}_resp read by Linux"),
        other => other.to_string(),
    })
}
