//! `rhctl`: list, inspect, restart, halt and start RustHallows partitions from a Linux
//! partition with `privileges manage`. Exit status: 0 done, 1 refused or failed, 2 usage
//! (clap's own).

#![forbid(unsafe_code)]

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use rhctl::cli::{run, Cli};
use rhctl::client::Client;
use rhctl::mailbox::Mailbox;
use rhctl::Error;

/// How often `events --follow` asks.
const FOLLOW_INTERVAL: Duration = Duration::from_millis(500);

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = Mailbox::open(&cli.sysfs).and_then(|mailbox| {
        let mut client = Client::new(mailbox);
        let mut pause = || {
            std::thread::sleep(FOLLOW_INTERVAL);
            true
        };
        run(&cli.command, &mut client, &mut io::stdout().lock(), &mut pause)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // Output cut short by its reader (`rhctl events --follow | head`): quiet, like cat.
        Err(Error::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("rhctl: {e}");
            ExitCode::FAILURE
        }
    }
}
