//! The management interface: one request, one response, the same bytes whether an RT
//! partition asks through [`crate::hypercall::Hypercall::Manage`] or Linux through its
//! management PCI function's mailbox ([`mailbox`]). Only a partition the table grants
//! `privileges manage` (`table::PRIV_MANAGE`) is served; any other caller gets
//! [`Status::Denied`] and the request is a health-monitor event of its own.
//!
//! Everything is little-endian, at fixed offsets, so that a reader needs no parser:
//!
//! ```text
//! request  (REQUEST_BYTES)   0 version u32 (VERSION)   4 op u32 (Op)
//!                            8 target u32 (partition index; List: the first to list)
//!                           12 flags u32 (Restart: RESTART_CLEAN; others 0)
//! response (header + body)   0 status u32 (Status)     4 body bytes u32
//!                            8 body:
//!   List    partitions in the table u32, count u32, record bytes u32, then `count`
//!           PartitionRecord from the request's `target` on (as many as fit)
//!   Stats   one StatsRecord
//!   Events  total u64 (events ever), count u32, record bytes u32, then `count`
//!           EventRecord, oldest first
//!   Halt / Start / Restart: empty (the action is under way when the status is Ok)
//! ```
//!
//! A response never exceeds [`RESPONSE_MAX`] bytes; a caller's buffer smaller than the
//! response gets [`Status::TooSmall`] and the bytes it needs in `body bytes`.

/// Version of the request and record layouts.
pub const VERSION: u32 = 1;
/// Bytes of a request.
pub const REQUEST_BYTES: usize = 16;
/// Bytes of the response header.
pub const RESPONSE_HEADER_BYTES: usize = 8;
/// The largest response (header and body) the hypervisor writes.
pub const RESPONSE_MAX: usize = 4096;
/// [`Op::Restart`] flag: also zero the target's persistent region (as
/// `hypercall::RESTART_CLEAN`).
pub const RESTART_CLEAN: u32 = 1 << 0;
/// Bytes of a name or image field (NUL-padded UTF-8, cut at a character boundary).
pub const NAME_FIELD: usize = 32;

/// What a request asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Op {
    /// Partitions from `target` on, as many as fit one response: name, kind, state,
    /// cores, memory, restarts, image, schedule.
    List = 1,
    /// One partition's counters.
    Stats = 2,
    /// One partition's newest health-monitor events.
    Events = 3,
    /// Stop a partition for good (until `Start`).
    Halt = 4,
    /// Start a halted partition afresh.
    Start = 5,
    /// Restart a partition (flags: [`RESTART_CLEAN`]).
    Restart = 6,
}

impl Op {
    pub const fn from_u32(v: u32) -> Option<Op> {
        Some(match v {
            1 => Op::List,
            2 => Op::Stats,
            3 => Op::Events,
            4 => Op::Halt,
            5 => Op::Start,
            6 => Op::Restart,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Op::List => "list",
            Op::Stats => "stats",
            Op::Events => "events",
            Op::Halt => "halt",
            Op::Start => "start",
            Op::Restart => "restart",
        }
    }
}

/// How a request went.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = 0,
    /// The caller lacks `privileges manage` (a health-monitor event for it).
    Denied = 1,
    /// No partition with that index.
    UnknownPartition = 2,
    /// Halt, start and restart may not name the caller itself (it halts or restarts
    /// itself by its own means: `Halt`/`RestartPartition`, or a reboot for Linux).
    IsCaller = 3,
    /// A malformed request: short, unknown op, unknown flag bits, flags on an op that has
    /// none.
    BadRequest = 4,
    /// The target's state does not allow it (start of a running partition, halt of a
    /// halted one, anything while it is being restarted).
    WrongState = 5,
    /// A request `version` this hypervisor does not speak.
    UnsupportedVersion = 6,
    /// The caller's response buffer is too small; `body bytes` says what the body needs.
    TooSmall = 7,
}

impl Status {
    pub const fn from_u32(v: u32) -> Option<Status> {
        Some(match v {
            0 => Status::Ok,
            1 => Status::Denied,
            2 => Status::UnknownPartition,
            3 => Status::IsCaller,
            4 => Status::BadRequest,
            5 => Status::WrongState,
            6 => Status::UnsupportedVersion,
            7 => Status::TooSmall,
            _ => return None,
        })
    }

    pub const fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Denied => "denied",
            Status::UnknownPartition => "unknown partition",
            Status::IsCaller => "partition is the caller itself",
            Status::BadRequest => "bad request",
            Status::WrongState => "not possible in the partition's state",
            Status::UnsupportedVersion => "unsupported version",
            Status::TooSmall => "response buffer too small",
        }
    }
}

/// A request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request {
    pub version: u32,
    /// Raw op (see [`Op::from_u32`]), kept raw so that a bad one can be answered.
    pub op: u32,
    pub target: u32,
    pub flags: u32,
}

impl Request {
    pub const fn new(op: Op, target: u32, flags: u32) -> Request {
        Request { version: VERSION, op: op as u32, target, flags }
    }

    pub fn encode(&self) -> [u8; REQUEST_BYTES] {
        let mut b = [0u8; REQUEST_BYTES];
        put_u32(&mut b, 0, self.version);
        put_u32(&mut b, 4, self.op);
        put_u32(&mut b, 8, self.target);
        put_u32(&mut b, 12, self.flags);
        b
    }

    /// `None` when `bytes` is shorter than a request (extra bytes are ignored).
    pub fn decode(bytes: &[u8]) -> Option<Request> {
        if bytes.len() < REQUEST_BYTES {
            return None;
        }
        Some(Request {
            version: get_u32(bytes, 0),
            op: get_u32(bytes, 4),
            target: get_u32(bytes, 8),
            flags: get_u32(bytes, 12),
        })
    }
}

/// `PartitionRecord::kind`.
pub const KIND_RT: u8 = 0;
pub const KIND_LINUX: u8 = 1;

/// `PartitionRecord::state`: the life-cycle state (hallows-core's `lifecycle::State`).
pub const STATE_NAMES: [&str; 6] = ["booting", "running", "waiting", "faulted", "restarting", "halted"];

/// One partition in a [`Op::List`] response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct PartitionRecord {
    pub index: u32,
    pub name: [u8; NAME_FIELD],
    /// [`KIND_RT`] or [`KIND_LINUX`].
    pub kind: u8,
    /// Index into [`STATE_NAMES`].
    pub state: u8,
    pub vcpus: u16,
    /// The table's `PRIV_*` bits.
    pub privileges: u32,
    /// Cores 0..63 the partition runs on (bit n = core n); cores above 63 are not shown.
    pub cores: u64,
    pub memory_bytes: u64,
    pub persistent_bytes: u64,
    pub restarts: u32,
    /// The table's restart budget: at most `restart_limit` restarts per
    /// `restart_window_ms`; past it the health monitor halts.
    pub restart_limit: u32,
    pub restart_window_ms: u32,
    /// Windows per major frame (0 on dedicated cores).
    pub windows_per_frame: u32,
    /// The major frame of the partition's schedule, ns (0 on dedicated cores).
    pub frame_ns: u64,
    /// Since the last (re)start, until now or the halt.
    pub uptime_ns: u64,
    pub image: [u8; NAME_FIELD],
}

impl PartitionRecord {
    pub const BYTES: usize = 136;

    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..Self::BYTES];
        b.fill(0);
        put_u32(b, 0, self.index);
        b[4..36].copy_from_slice(&self.name);
        b[36] = self.kind;
        b[37] = self.state;
        put_u16(b, 38, self.vcpus);
        put_u32(b, 40, self.privileges);
        put_u64(b, 48, self.cores);
        put_u64(b, 56, self.memory_bytes);
        put_u64(b, 64, self.persistent_bytes);
        put_u32(b, 72, self.restarts);
        put_u32(b, 76, self.restart_limit);
        put_u32(b, 80, self.restart_window_ms);
        put_u32(b, 84, self.windows_per_frame);
        put_u64(b, 88, self.frame_ns);
        put_u64(b, 96, self.uptime_ns);
        b[104..136].copy_from_slice(&self.image);
    }

    pub fn decode(b: &[u8]) -> Option<PartitionRecord> {
        let b = b.get(..Self::BYTES)?;
        Some(PartitionRecord {
            index: get_u32(b, 0),
            name: b[4..36].try_into().ok()?,
            kind: b[36],
            state: b[37],
            vcpus: get_u16(b, 38),
            privileges: get_u32(b, 40),
            cores: get_u64(b, 48),
            memory_bytes: get_u64(b, 56),
            persistent_bytes: get_u64(b, 64),
            restarts: get_u32(b, 72),
            restart_limit: get_u32(b, 76),
            restart_window_ms: get_u32(b, 80),
            windows_per_frame: get_u32(b, 84),
            frame_ns: get_u64(b, 88),
            uptime_ns: get_u64(b, 96),
            image: b[104..136].try_into().ok()?,
        })
    }
}

/// Exit reasons in a [`StatsRecord`], in order (hallows-core's `counters::ExitReason`).
pub const EXIT_REASONS: [&str; 14] = [
    "hypercall",
    "cpuid",
    "hlt",
    "window_end",
    "interrupt",
    "exception",
    "control_register",
    "xsetbv",
    "msr",
    "io",
    "nested_page_fault",
    "instruction",
    "triple_fault",
    "other",
];

/// One partition's counters in a [`Op::Stats`] response (see hallows-core's `counters`
/// for exactly what each counts). Health events by class are in
/// `health::EventClass::ALL` order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct StatsRecord {
    pub index: u32,
    pub restarts: u32,
    pub exits: [u64; EXIT_REASONS.len()],
    pub windows: u64,
    pub overruns: u64,
    pub health: [u64; crate::health::EventClass::COUNT],
    pub console_bytes: u64,
    pub console_busy: u64,
    pub console_dropped: u64,
    pub hv_lines_suppressed: u64,
    pub uptime_ns: u64,
    /// Health-monitor events ever (the event log holds the newest of them).
    pub events_total: u64,
    /// The hypervisor's clock when the counters were read, ns since boot.
    pub now_ns: u64,
}

impl StatsRecord {
    /// 8 + 8 * (14 + 2 + 8 + 7).
    pub const BYTES: usize = 8 + 8 * (EXIT_REASONS.len() + 2 + crate::health::EventClass::COUNT + 7);

    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..Self::BYTES];
        put_u32(b, 0, self.index);
        put_u32(b, 4, self.restarts);
        let mut words = [0u64; (Self::BYTES - 8) / 8];
        let mut i = 0;
        let mut push = |v: u64| {
            words[i] = v;
            i += 1;
        };
        self.exits.iter().for_each(|&v| push(v));
        push(self.windows);
        push(self.overruns);
        self.health.iter().for_each(|&v| push(v));
        for v in [
            self.console_bytes,
            self.console_busy,
            self.console_dropped,
            self.hv_lines_suppressed,
            self.uptime_ns,
            self.events_total,
            self.now_ns,
        ] {
            push(v);
        }
        for (n, w) in words.iter().enumerate() {
            put_u64(b, 8 + 8 * n, *w);
        }
    }

    pub fn decode(b: &[u8]) -> Option<StatsRecord> {
        let b = b.get(..Self::BYTES)?;
        let mut n = 0;
        let mut next = || {
            let v = get_u64(b, 8 + 8 * n);
            n += 1;
            v
        };
        let exits = core::array::from_fn(|_| next());
        let windows = next();
        let overruns = next();
        let health = core::array::from_fn(|_| next());
        Some(StatsRecord {
            index: get_u32(b, 0),
            restarts: get_u32(b, 4),
            exits,
            windows,
            overruns,
            health,
            console_bytes: next(),
            console_busy: next(),
            console_dropped: next(),
            hv_lines_suppressed: next(),
            uptime_ns: next(),
            events_total: next(),
            now_ns: next(),
        })
    }
}

/// `EventRecord::place_kind`: what `place_a`/`place_b` mean.
pub const PLACE_UNKNOWN: u8 = 0;
/// The partition reported it (`ReportFault`).
pub const PLACE_REPORTED: u8 = 1;
/// `place_a` = RIP.
pub const PLACE_RIP: u8 = 2;
/// `place_a` = guest-physical address, `place_b` = RIP.
pub const PLACE_GPA: u8 = 3;
/// `place_a` = port, `place_b` = RIP.
pub const PLACE_PORT: u8 = 4;
/// `place_a` = MSR, `place_b` = RIP.
pub const PLACE_MSR: u8 = 5;
/// `place_a` = the hypercall number refused (a missing privilege); for
/// [`crate::hypercall::Hypercall::Manage`] from Linux, the mailbox's doorbell.
pub const PLACE_HYPERCALL: u8 = 6;

/// One health-monitor event in an [`Op::Events`] response.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct EventRecord {
    /// ns since boot.
    pub time_ns: u64,
    /// `health::EventClass` as u8.
    pub class: u8,
    /// `health::Action` as u8 (what the health monitor did).
    pub action: u8,
    pub place_kind: u8,
    pub place_a: u64,
    pub place_b: u64,
}

impl EventRecord {
    pub const BYTES: usize = 32;

    pub fn encode(&self, out: &mut [u8]) {
        let b = &mut out[..Self::BYTES];
        b.fill(0);
        put_u64(b, 0, self.time_ns);
        b[8] = self.class;
        b[9] = self.action;
        b[10] = self.place_kind;
        put_u64(b, 16, self.place_a);
        put_u64(b, 24, self.place_b);
    }

    pub fn decode(b: &[u8]) -> Option<EventRecord> {
        let b = b.get(..Self::BYTES)?;
        Some(EventRecord {
            time_ns: get_u64(b, 0),
            class: b[8],
            action: b[9],
            place_kind: b[10],
            place_a: get_u64(b, 16),
            place_b: get_u64(b, 24),
        })
    }
}

/// A name or image as a NUL-padded field, cut to fit at a character boundary.
pub fn name_field(name: &str) -> [u8; NAME_FIELD] {
    let mut f = [0u8; NAME_FIELD];
    let mut end = name.len().min(NAME_FIELD);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    f[..end].copy_from_slice(&name.as_bytes()[..end]);
    f
}

/// The text of a name field (up to the first NUL; invalid UTF-8 gives `"?"`).
pub fn field_text(field: &[u8]) -> &str {
    let end = field.iter().position(|&b| b == 0).unwrap_or(field.len());
    core::str::from_utf8(&field[..end]).unwrap_or("?")
}

/// How Linux reaches the interface: a PCI function on bus 0 whose BAR0 is the mailbox.
/// Every access to it is trapped and emulated, so the hypervisor serves a copy of the
/// request it holds itself (a second vCPU cannot change it under the hypervisor), one
/// request at a time.
///
/// ```text
/// PCI function 00:DD.0, vendor 1af4, device MGMT_PCI_DEVICE_ID, class 0880 (system
/// peripheral, other)
///   BAR0  32-bit memory, MAILBOX_BYTES:
///     0x000 magic u32 "RHMG" (ro)     0x004 version u32 (VERSION, ro)
///     0x008 doorbell u32 (wo): write the request's length to serve the request
///     0x00C done count u32 (ro): requests served so far (a writer sees its own
///           request served when it moved)
///     0x010 response length u32 (ro)
///     0x100 .. 0x100 + REQUEST_BYTES: request (rw)
///     0x1000 .. 0x2000: response (ro)
/// ```
pub mod mailbox {
    pub const MAGIC: u32 = u32::from_le_bytes(*b"RHMG");
    pub const PCI_DEVICE_ID: u16 = 0x1111;
    /// Class code: base 08 (system peripheral), sub-class 80 (other).
    pub const PCI_CLASS: u32 = 0x08_80_00;
    pub const MAILBOX_BYTES: u64 = 0x2000;
    pub const REG_MAGIC: u64 = 0x000;
    pub const REG_VERSION: u64 = 0x004;
    pub const REG_DOORBELL: u64 = 0x008;
    pub const REG_DONE: u64 = 0x00C;
    pub const REG_RESPONSE_LEN: u64 = 0x010;
    pub const REQUEST_OFFSET: u64 = 0x100;
    pub const RESPONSE_OFFSET: u64 = 0x1000;
}

fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_le_bytes());
}
fn put_u32(b: &mut [u8], at: usize, v: u32) {
    b[at..at + 4].copy_from_slice(&v.to_le_bytes());
}
fn put_u64(b: &mut [u8], at: usize, v: u64) {
    b[at..at + 8].copy_from_slice(&v.to_le_bytes());
}
fn get_u16(b: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([b[at], b[at + 1]])
}
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn get_u64(b: &[u8], at: usize) -> u64 {
    let mut w = [0u8; 8];
    w.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(w)
}

/// Writes a response header.
pub fn put_header(out: &mut [u8], status: Status, body_bytes: u32) {
    put_u32(out, 0, status as u32);
    put_u32(out, 4, body_bytes);
}

/// Reads a response header: `(raw status, body bytes)`; `None` when too short.
pub fn header(bytes: &[u8]) -> Option<(u32, u32)> {
    (bytes.len() >= RESPONSE_HEADER_BYTES).then(|| (get_u32(bytes, 0), get_u32(bytes, 4)))
}

/// Reads the u32 at `at` of a body (list/events counts), `None` past the end.
pub fn body_u32(body: &[u8], at: usize) -> Option<u32> {
    (body.len() >= at + 4).then(|| get_u32(body, at))
}

/// Reads the u64 at `at` of a body (the events total), `None` past the end.
pub fn body_u64(body: &[u8], at: usize) -> Option<u64> {
    (body.len() >= at + 8).then(|| get_u64(body, at))
}

/// Writes `v` at `at` of a body.
pub fn put_body_u32(body: &mut [u8], at: usize, v: u32) {
    put_u32(body, at, v);
}

/// Writes `v` at `at` of a body.
pub fn put_body_u64(body: &mut [u8], at: usize, v: u64) {
    put_u64(body, at, v);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip() {
        let r = Request::new(Op::Restart, 3, RESTART_CLEAN);
        assert_eq!(Request::decode(&r.encode()), Some(r));
        assert_eq!(Request::decode(&[0; 15]), None);

        let p = PartitionRecord {
            index: 2,
            name: name_field("sensor"),
            kind: KIND_RT,
            state: 1,
            vcpus: 2,
            privileges: 8,
            cores: 0b110,
            memory_bytes: 4 << 20,
            persistent_bytes: 1 << 20,
            restarts: 1,
            restart_limit: 3,
            restart_window_ms: 60_000,
            windows_per_frame: 1,
            frame_ns: 10_000_000,
            uptime_ns: 123,
            image: name_field("hello.elf"),
        };
        let mut b = [0xAAu8; PartitionRecord::BYTES];
        p.encode(&mut b);
        assert_eq!(PartitionRecord::decode(&b), Some(p));
        assert_eq!(field_text(&p.name), "sensor");

        let mut s = StatsRecord { index: 1, restarts: 2, windows: 7, now_ns: 9, ..Default::default() };
        s.exits[3] = 5;
        s.health[7] = 4;
        let mut b = [0u8; StatsRecord::BYTES];
        s.encode(&mut b);
        assert_eq!(StatsRecord::decode(&b), Some(s));

        let e = EventRecord {
            time_ns: 5,
            class: 2,
            action: 1,
            place_kind: PLACE_PORT,
            place_a: 0x80,
            place_b: 7,
        };
        let mut b = [0u8; EventRecord::BYTES];
        e.encode(&mut b);
        assert_eq!(EventRecord::decode(&b), Some(e));
    }

    #[test]
    fn names_are_cut_at_character_boundaries() {
        let long = "é".repeat(20);
        let f = name_field(&long);
        assert_eq!(field_text(&f), "é".repeat(16));
    }

    #[test]
    fn every_op_and_status_round_trips() {
        for v in 0..10 {
            if let Some(op) = Op::from_u32(v) {
                assert_eq!(op as u32, v);
            }
            if let Some(s) = Status::from_u32(v) {
                assert_eq!(s as u32, v);
            }
        }
        assert_eq!(EXIT_REASONS.len(), 14);
        // A page of a list holds many partitions.
        const { assert!(RESPONSE_HEADER_BYTES + 12 + 16 * PartitionRecord::BYTES <= RESPONSE_MAX) };
    }
}
