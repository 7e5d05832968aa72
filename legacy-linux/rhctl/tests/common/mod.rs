//! The hypervisor's side for the tests: a fake machine served by the hypervisor's own
//! decisions (`hallows_core::manage::serve`), reached either directly ([`Direct`]) or
//! through a fake sysfs management function whose mailbox a thread serves
//! ([`MailboxServer`]) the way the trapped MMIO access does.

#![allow(dead_code)] // Each test file uses its own part of this.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use hallows_abi::health::{Action as HmAction, EventClass};
use hallows_abi::manage::mailbox::{
    MAGIC, MAILBOX_BYTES, PCI_CLASS, PCI_DEVICE_ID, REG_DONE, REG_DOORBELL, REG_MAGIC, REG_RESPONSE_LEN,
    REG_VERSION, REQUEST_OFFSET, RESPONSE_OFFSET,
};
use hallows_abi::manage::{KIND_LINUX, KIND_RT, REQUEST_BYTES, RESPONSE_MAX, VERSION};
use hallows_abi::table::{PRIV_MANAGE, PRIV_QUERY};
use hallows_core::counters::{ExitReason, PartitionCounters, Place};
use hallows_core::lifecycle::{Cause, Event, State};
use hallows_core::manage::{serve, Action, Machine, PartitionFacts};
use rhctl::{Error, Transport};
use rhlink::fake::FakeSysfs;
use rhlink::{Mapping, Writable};

/// The hypercall number a refusal of `Manage` is recorded under.
const MANAGE_HYPERCALL: u64 = 10;

pub struct FakePartition {
    /// What the table says (the decision function reads it as is).
    pub facts: PartitionFacts<'static>,
    pub state: State,
    pub restarts: u32,
    pub counters: PartitionCounters,
}

impl FakePartition {
    fn new(name: &'static str, image: &'static str, kind: u8, cores: u64) -> Self {
        let counters = PartitionCounters::new();
        counters.note_lifecycle(Event::Started, 0);
        let facts = PartitionFacts {
            name,
            image,
            kind,
            vcpus: 1,
            cores,
            memory_bytes: 4 << 20,
            ..PartitionFacts::default()
        };
        FakePartition { facts, state: State::Running, restarts: 0, counters }
    }
}

/// A running machine: partitions, a clock, and the actions the interface decided.
pub struct FakeMachine {
    pub partitions: Vec<FakePartition>,
    pub now_ns: u64,
    pub actions: Vec<Action>,
}

impl Machine for FakeMachine {
    fn partition_count(&self) -> usize {
        self.partitions.len()
    }
    fn facts(&self, index: usize) -> PartitionFacts<'_> {
        self.partitions[index].facts
    }
    fn state(&self, index: usize) -> State {
        self.partitions[index].state
    }
    fn snapshot(&self, index: usize) -> hallows_core::counters::Snapshot {
        let p = &self.partitions[index];
        p.counters.snapshot(p.restarts, self.now_ns)
    }
    fn now_ns(&self) -> u64 {
        self.now_ns
    }
}

/// Index of the Linux partition (the caller) in [`FakeMachine::demo`].
pub const LINUX: usize = 0;
pub const SENSOR: usize = 1;
pub const LOGGER: usize = 2;

impl FakeMachine {
    /// Linux (the caller, with `privileges manage`) on cores 0-1; `sensor`, an RT
    /// partition on a 10 ms schedule with a persistent region, 1 restart of a budget of 3,
    /// some exits and two health events; `logger`, halted, on a dedicated core.
    pub fn demo() -> Self {
        let mut linux = FakePartition::new("linux", "bzImage", KIND_LINUX, 0b11);
        linux.facts.vcpus = 2;
        linux.facts.privileges = PRIV_MANAGE | PRIV_QUERY;
        linux.facts.memory_bytes = 512 << 20;
        let mut sensor = FakePartition::new("sensor", "sensor.elf", KIND_RT, 0b100);
        sensor.facts.persistent_bytes = 1 << 20;
        sensor.facts.restart_limit = 3;
        sensor.facts.restart_window_ms = 60_000;
        sensor.facts.windows_per_frame = 1;
        sensor.facts.frame_ns = 10_000_000;
        sensor.restarts = 1;
        for _ in 0..40 {
            sensor.counters.count(ExitReason::Hypercall);
        }
        for _ in 0..3 {
            sensor.counters.count(ExitReason::WindowEnd);
        }
        for window in 0..1230u64 {
            sensor.counters.note_window(window * 10_000_000, false);
        }
        sensor.counters.console.bytes_accepted.store(312, Ordering::Relaxed);
        sensor.counters.note_health(
            1_500_000_000,
            EventClass::IoViolation,
            Place::Port { port: 0x80, rip: 0x1234 },
            HmAction::Log,
        );
        sensor.counters.note_health(2_250_000_000, EventClass::DeadlineMiss, Place::Reported, HmAction::Log);
        let mut logger = FakePartition::new("logger", "logger.elf", KIND_RT, 0b1000);
        logger.state = State::Halted;
        logger.counters.note_lifecycle(Event::Halt(Cause::HealthMonitor), 3_000_000_000);
        FakeMachine { partitions: vec![linux, sensor, logger], now_ns: 12_300_000_000, actions: Vec::new() }
    }

    /// Serves one request of partition `caller` and performs the action it decides, as
    /// the hypervisor's glue does.
    pub fn serve(&mut self, caller: usize, request: &[u8]) -> Vec<u8> {
        let mut response = vec![0u8; RESPONSE_MAX];
        let served = serve(caller, self.partitions[caller].facts.privileges, request, &*self, &mut response);
        response.truncate(served.len);
        let now = self.now_ns;
        match served.action {
            Action::None => {}
            Action::Refused => {
                self.partitions[caller].counters.note_refusal(now, MANAGE_HYPERCALL);
            }
            Action::Halt { target } => {
                let p = &mut self.partitions[target];
                p.state = State::Halted;
                p.counters.note_lifecycle(Event::Halt(Cause::Operator), now);
            }
            Action::Start { target } | Action::Restart { target, .. } => {
                let p = &mut self.partitions[target];
                if matches!(served.action, Action::Restart { .. }) {
                    p.restarts += 1;
                }
                p.state = State::Running;
                p.counters.note_lifecycle(Event::RestartDone, now);
            }
        }
        if served.action != Action::None {
            self.actions.push(served.action);
        }
        response
    }

    /// Adds a health event to partition `index`.
    pub fn fault(&mut self, index: usize, time_ns: u64, class: EventClass, place: Place) {
        self.partitions[index].counters.note_health(time_ns, class, place, HmAction::RestartPartition);
    }
}

/// A shared machine.
pub type Shared = Arc<Mutex<FakeMachine>>;

pub fn shared(machine: FakeMachine) -> Shared {
    Arc::new(Mutex::new(machine))
}

/// The transport without a mailbox: each exchange is served at once.
pub struct Direct {
    pub machine: Shared,
    pub caller: usize,
}

impl Transport for Direct {
    fn exchange(&mut self, request: &[u8; REQUEST_BYTES]) -> Result<Vec<u8>, Error> {
        Ok(self.machine.lock().unwrap().serve(self.caller, request))
    }
}

/// Creates the management function in a fake sysfs at `address`: ids, class and a
/// `resource0` of the mailbox's size with its magic and version. Returns its directory.
pub fn management_function(sys: &FakeSysfs, address: &str) -> PathBuf {
    let dir = sys.device(address, rhctl::mailbox::PCI_VENDOR_ID, PCI_DEVICE_ID, 0);
    std::fs::write(dir.join("class"), format!("{PCI_CLASS:#08x}\n")).unwrap();
    let mut bar = vec![0u8; MAILBOX_BYTES as usize];
    bar[REG_MAGIC as usize..][..4].copy_from_slice(&MAGIC.to_le_bytes());
    bar[REG_VERSION as usize..][..4].copy_from_slice(&VERSION.to_le_bytes());
    std::fs::write(dir.join("resource0"), bar).unwrap();
    dir
}

/// A thread playing the hypervisor behind a fake `resource0`: it watches the doorbell
/// word; when it is not zero it serves the request, writes the response and its length,
/// clears the doorbell and bumps the done count. Stops when dropped.
pub struct MailboxServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MailboxServer {
    pub fn start(resource0: &Path, machine: Shared, caller: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let len = MAILBOX_BYTES as usize;
        let bar = Mapping::open(resource0, len, Writable::Range { start: 0, len }).unwrap();
        let thread = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let rung = bar.read_u32(REG_DOORBELL as usize) as usize;
                    if rung == 0 {
                        std::thread::sleep(Duration::from_micros(20));
                        continue;
                    }
                    let mut request = Vec::new();
                    for offset in (0..rung.min(REQUEST_BYTES)).step_by(4) {
                        request.extend(bar.read_u32(REQUEST_OFFSET as usize + offset).to_le_bytes());
                    }
                    request.truncate(rung.min(REQUEST_BYTES));
                    let response = machine.lock().unwrap().serve(caller, &request);
                    for (n, chunk) in response.chunks(4).enumerate() {
                        let mut word = [0u8; 4];
                        word[..chunk.len()].copy_from_slice(chunk);
                        bar.write_u32(RESPONSE_OFFSET as usize + 4 * n, u32::from_le_bytes(word));
                    }
                    bar.write_u32(REG_RESPONSE_LEN as usize, response.len() as u32);
                    bar.write_u32(REG_DOORBELL as usize, 0);
                    let done = bar.read_u32(REG_DONE as usize);
                    bar.write_u32(REG_DONE as usize, done.wrapping_add(1));
                }
            })
        };
        MailboxServer { stop, thread: Some(thread) }
    }
}

impl Drop for MailboxServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Runs one command over a direct transport; its output and result.
pub fn run(machine: &Shared, args: &[&str]) -> (String, Result<(), Error>) {
    use clap::Parser;
    let mut argv = vec!["rhctl"];
    argv.extend_from_slice(args);
    let cli = rhctl::cli::Cli::try_parse_from(argv).unwrap();
    let mut client = rhctl::client::Client::new(Direct { machine: machine.clone(), caller: LINUX });
    let mut out = Vec::new();
    let result = rhctl::cli::run(&cli.command, &mut client, &mut out, &mut || false);
    (String::from_utf8(out).unwrap(), result)
}
