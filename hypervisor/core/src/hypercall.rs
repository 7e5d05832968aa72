//! Hypercall dispatch: every call of [`hallows_abi::hypercall`], with every guest pointer,
//! length, index and privilege checked before anything is read or done.
//!
//! On a `VMCALL` exit the binary's exit stub has saved the guest's general-purpose
//! registers in a [`GuestRegs`] block; the handler calls [`dispatch`] with it and an
//! implementation of [`HypercallEnv`] (the calling partition's RAM, console, clock and the
//! partition table's states and privileges), then acts on the [`Outcome`]. `dispatch`
//! always writes the status into `rax` (and the second result into `rdx` for the calls
//! that have one) and never touches any other register. The binary advances RIP past the
//! `VMCALL` (3 bytes, or the exit's instruction length) for every outcome that lets the
//! caller continue.
//!
//! ```
//! use hallows_abi::hypercall::{Hypercall, Status};
//! use hallows_core::hypercall::{dispatch, GuestRegs, Outcome};
//! # use hallows_core::hypercall::HypercallEnv;
//! # use hallows_abi::{health::EventClass, hypercall::PartitionState};
//! # struct Env;
//! # impl HypercallEnv for Env {
//! #     fn caller(&self) -> usize { 0 }
//! #     fn ram_bytes(&self) -> u64 { 0x20_0000 }
//! #     fn read_ram(&self, _gpa: u64, buf: &mut [u8]) { buf.fill(b'x') }
//! #     fn console_write(&mut self, _bytes: &[u8]) -> bool { true }
//! #     fn now_ns(&self) -> u64 { 42 }
//! #     fn partition_count(&self) -> usize { 1 }
//! #     fn partition_state(&self, _index: usize) -> PartitionState { PartitionState::Running }
//! #     fn privileges(&self) -> u32 { 0 }
//! #     fn report_fault(&mut self, _class: EventClass, _message: &[u8]) {}
//! #     fn write_ram(&mut self, _gpa: u64, _bytes: &[u8]) {}
//! #     fn manage(&self, _r: &[u8], _o: &mut [u8]) -> hallows_core::manage::Served {
//! #         hallows_core::manage::Served { len: 0, action: hallows_core::manage::Action::Refused }
//! #     }
//! # }
//! # let mut env = Env;
//! let mut regs = GuestRegs { rax: Hypercall::TimeNow as u64, ..GuestRegs::default() };
//! assert_eq!(dispatch(&mut regs, &mut env), Outcome::Resume);
//! assert_eq!((regs.rax, regs.rdx), (Status::Ok as u64, 42));
//! ```

use hallows_abi::health::EventClass;
use hallows_abi::hypercall::{
    Hypercall, PartitionState, Status, CONSOLE_WRITE_MAX, CONSOLE_WRITE_MAX_LINES, FAULT_MESSAGE_MAX,
    RESTART_CLEAN, VERSION,
};
use hallows_abi::manage::{REQUEST_BYTES, RESPONSE_MAX};
use hallows_abi::table::{PRIV_MANAGE, PRIV_QUERY, PRIV_RESTART};

use crate::lifecycle::RestartScope;
use crate::manage;

/// The guest's general-purpose registers as the exit stub saves them: every GPR except
/// RSP (which the VMCS holds), in the processor's register-number order. Byte offsets:
/// rax 0, rcx 8, rdx 16, rbx 24, rbp 32, rsi 40, rdi 48, r8 56, r9 64, r10 72, r11 80,
/// r12 88, r13 96, r14 104, r15 112; 120 bytes in all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[repr(C)]
pub struct GuestRegs {
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rbx: u64,
    pub rbp: u64,
    pub rsi: u64,
    pub rdi: u64,
    pub r8: u64,
    pub r9: u64,
    pub r10: u64,
    pub r11: u64,
    pub r12: u64,
    pub r13: u64,
    pub r14: u64,
    pub r15: u64,
}

const _: () = assert!(core::mem::size_of::<GuestRegs>() == 120);

impl GuestRegs {
    /// The registers of an RT partition vCPU at its first instruction: `rdi` = boot-info
    /// address, `rsi` = vCPU index, everything else zero.
    pub const fn for_entry(boot_info_gpa: u64, vcpu: u64) -> Self {
        GuestRegs {
            rax: 0,
            rcx: 0,
            rdx: 0,
            rbx: 0,
            rbp: 0,
            rsi: vcpu,
            rdi: boot_info_gpa,
            r8: 0,
            r9: 0,
            r10: 0,
            r11: 0,
            r12: 0,
            r13: 0,
            r14: 0,
            r15: 0,
        }
    }

    /// Sets general-purpose register number `n` (as [`GuestRegs::get`]); returns false for
    /// 4 (RSP), which lives in the VMCS and is the caller's to write.
    pub fn set(&mut self, n: u8, value: u64) -> bool {
        let r = match n & 0xF {
            0 => &mut self.rax,
            1 => &mut self.rcx,
            2 => &mut self.rdx,
            3 => &mut self.rbx,
            4 => return false,
            5 => &mut self.rbp,
            6 => &mut self.rsi,
            7 => &mut self.rdi,
            8 => &mut self.r8,
            9 => &mut self.r9,
            10 => &mut self.r10,
            11 => &mut self.r11,
            12 => &mut self.r12,
            13 => &mut self.r13,
            14 => &mut self.r14,
            _ => &mut self.r15,
        };
        *r = value;
        true
    }

    /// General-purpose register number `n` (0 = RAX ... 15 = R15, the encoding exit
    /// qualifications use); RSP lives in the VMCS, so the caller passes it.
    pub const fn get(&self, n: u8, rsp: u64) -> u64 {
        match n & 0xF {
            0 => self.rax,
            1 => self.rcx,
            2 => self.rdx,
            3 => self.rbx,
            4 => rsp,
            5 => self.rbp,
            6 => self.rsi,
            7 => self.rdi,
            8 => self.r8,
            9 => self.r9,
            10 => self.r10,
            11 => self.r11,
            12 => self.r12,
            13 => self.r13,
            14 => self.r14,
            _ => self.r15,
        }
    }
}

/// What a hypercall needs from the hypervisor, for one calling partition.
pub trait HypercallEnv {
    /// Index of the calling partition in the table.
    fn caller(&self) -> usize;
    /// Size of the caller's RAM: valid guest-physical addresses are `0..ram_bytes`.
    fn ram_bytes(&self) -> u64;
    /// Copies guest RAM `gpa..gpa + buf.len()` into `buf`. `dispatch` only asks for ranges
    /// it has checked to lie inside `0..ram_bytes()`.
    fn read_ram(&self, gpa: u64, buf: &mut [u8]);
    /// A whole `ConsoleWrite` for the caller's console (the [`crate::console`]
    /// multiplexer), all or nothing: false, with nothing taken, when the caller's console
    /// queue lacks room now for the lines it would complete.
    fn console_write(&mut self, bytes: &[u8]) -> bool;
    /// Nanoseconds since the hypervisor started.
    fn now_ns(&self) -> u64;
    /// Number of partitions in the table.
    fn partition_count(&self) -> usize;
    /// State of partition `index` (`index < partition_count()`).
    fn partition_state(&self, index: usize) -> PartitionState;
    /// The caller's `PRIV_*` bits.
    fn privileges(&self) -> u32;
    /// The caller reported a fault with a message (already bounded by
    /// [`FAULT_MESSAGE_MAX`]): log it. The action follows from [`Outcome::Fault`].
    fn report_fault(&mut self, class: EventClass, message: &[u8]);
    /// Copies `bytes` into guest RAM at `gpa`. `dispatch` only writes ranges it has
    /// checked to lie inside `0..ram_bytes()`.
    fn write_ram(&mut self, gpa: u64, bytes: &[u8]);
    /// Serves a management request of the caller ([`crate::manage::serve`] over the
    /// running machine) into `response`.
    fn manage(&self, request: &[u8], response: &mut [u8]) -> manage::Served;
}

/// What the hypervisor does after a hypercall.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Advance RIP and re-enter the caller.
    Resume,
    /// Advance RIP; the caller gives up the rest of its window (`until_ns == 0`) or, on a
    /// dedicated core, sleeps until the absolute time `until_ns`.
    Yield { until_ns: u64 },
    /// Stop the caller for good; `exit_code` is logged.
    Halt { exit_code: u64 },
    /// Advance RIP, then apply the health-monitor action for `class` to the caller
    /// (with `Log` the caller simply continues).
    Fault(EventClass),
    /// Advance RIP, then restart `partition` (which may be the caller itself), keeping or
    /// zeroing its persistent region as `scope` says.
    Restart { partition: usize, scope: RestartScope },
    /// Advance RIP, then print the counters table (`PrintSummary`).
    PrintSummary,
    /// Advance RIP; the caller lacked the privilege for hypercall `number`, which is a
    /// health-monitor event (logged and counted; the caller continues).
    Refused { number: u64 },
    /// Advance RIP, then perform a management request's action (halt, start or restart
    /// another partition); the response is already in the caller's buffer.
    Manage(manage::Action),
}

/// `ConsoleWrite`s up to this size are copied through a small stack buffer.
const SHORT_WRITE: usize = 256;

/// Checks that `ptr..ptr + len` lies inside `0..ram_bytes` without overflow.
pub fn checked_range(ptr: u64, len: u64, ram_bytes: u64) -> Option<core::ops::Range<u64>> {
    let end = ptr.checked_add(len)?;
    (end <= ram_bytes).then_some(ptr..end)
}

/// Executes the hypercall in `regs` (number in `rax`, arguments in `rdi rsi rdx r10`).
pub fn dispatch(regs: &mut GuestRegs, env: &mut impl HypercallEnv) -> Outcome {
    let (status, outcome) = match Hypercall::from_u64(regs.rax) {
        None => (Status::UnknownCall, Outcome::Resume),
        Some(call) => run(call, regs, env),
    };
    regs.rax = status as u64;
    outcome
}

/// `ConsoleWrite`, out of line: its buffer for a long write (4 KiB on the stack) would
/// otherwise make every hypercall pay for a stack probe and a larger frame.
#[inline(never)]
fn console_write(regs: &mut GuestRegs, env: &mut impl HypercallEnv) -> (Status, Outcome) {
    let fail = |status| (status, Outcome::Resume);
    let (ptr, len) = (regs.rdi, regs.rsi);
    if len > CONSOLE_WRITE_MAX {
        return fail(Status::BadArgument);
    }
    let Some(range) = checked_range(ptr, len, env.ram_bytes()) else {
        return fail(Status::BadAddress);
    };
    // One copy of the whole write: the room check and the lines taken then see
    // the same bytes, whatever another vCPU of the caller does to its RAM. Most
    // writes are one short line: only they pay for clearing a small buffer.
    let mut short = [0u8; SHORT_WRITE];
    let mut long;
    let bytes = if len as usize <= SHORT_WRITE {
        &mut short[..len as usize]
    } else {
        long = [0u8; CONSOLE_WRITE_MAX as usize];
        &mut long[..len as usize]
    };
    env.read_ram(range.start, bytes);
    if bytes.iter().filter(|&&b| b == b'\n').count() as u64 > CONSOLE_WRITE_MAX_LINES {
        return fail(Status::BadArgument);
    }
    if !env.console_write(bytes) {
        return fail(Status::Busy);
    }
    (Status::Ok, Outcome::Resume)
}

fn run(call: Hypercall, regs: &mut GuestRegs, env: &mut impl HypercallEnv) -> (Status, Outcome) {
    let ok = |outcome| (Status::Ok, outcome);
    let fail = |status| (status, Outcome::Resume);
    match call {
        Hypercall::Null => ok(Outcome::Resume),
        Hypercall::Version => {
            regs.rdx = VERSION;
            ok(Outcome::Resume)
        }
        Hypercall::TimeNow => {
            regs.rdx = env.now_ns();
            ok(Outcome::Resume)
        }
        Hypercall::Yield => ok(Outcome::Yield { until_ns: regs.rdi }),
        Hypercall::Halt => ok(Outcome::Halt { exit_code: regs.rdi }),
        Hypercall::ConsoleWrite => console_write(regs, env),
        Hypercall::PartitionState => {
            let Some(index) = partition_index(regs.rdi, env) else {
                return fail(Status::BadArgument);
            };
            if index != env.caller() && env.privileges() & PRIV_QUERY == 0 {
                return (Status::Denied, Outcome::Refused { number: call as u64 });
            }
            regs.rdx = env.partition_state(index) as u64;
            ok(Outcome::Resume)
        }
        Hypercall::RestartPartition => {
            let (Some(index), Some(scope)) = (partition_index(regs.rdi, env), restart_scope(regs.rsi)) else {
                return fail(Status::BadArgument);
            };
            if index != env.caller() && env.privileges() & PRIV_RESTART == 0 {
                return (Status::Denied, Outcome::Refused { number: call as u64 });
            }
            ok(Outcome::Restart { partition: index, scope })
        }
        Hypercall::ReportFault => {
            let Some(&class) = EventClass::ALL.get(regs.rdi.min(usize::MAX as u64) as usize) else {
                return fail(Status::BadArgument);
            };
            let (ptr, len) = (regs.rsi, regs.rdx);
            if len > FAULT_MESSAGE_MAX {
                return fail(Status::BadArgument);
            }
            let Some(range) = checked_range(ptr, len, env.ram_bytes()) else {
                return fail(Status::BadAddress);
            };
            let mut message = [0u8; FAULT_MESSAGE_MAX as usize];
            let message = &mut message[..len as usize];
            env.read_ram(range.start, message);
            env.report_fault(class, message);
            ok(Outcome::Fault(class))
        }
        Hypercall::PrintSummary if env.privileges() & PRIV_QUERY == 0 => {
            (Status::Denied, Outcome::Refused { number: call as u64 })
        }
        Hypercall::PrintSummary => ok(Outcome::PrintSummary),
        Hypercall::Manage => manage_call(regs, env),
    }
}

/// `Manage`, out of line like [`console_write`] (a response buffer on the stack). The
/// request is copied once, so the caller's other vCPUs cannot change it while it is
/// served.
#[inline(never)]
fn manage_call(regs: &mut GuestRegs, env: &mut impl HypercallEnv) -> (Status, Outcome) {
    let (req_ptr, req_len, resp_ptr, resp_len) = (regs.rdi, regs.rsi, regs.rdx, regs.r10);
    let fail = |status| (status, Outcome::Resume);
    let mut request = [0u8; REQUEST_BYTES];
    let mut response = [0u8; RESPONSE_MAX];
    let resp_len = resp_len.min(RESPONSE_MAX as u64);
    let (Some(req), Some(resp)) = (
        checked_range(req_ptr, req_len, env.ram_bytes()),
        checked_range(resp_ptr, resp_len, env.ram_bytes()),
    ) else {
        // A caller without the privilege is refused before its pointers matter.
        if env.privileges() & PRIV_MANAGE == 0 {
            return (Status::Denied, Outcome::Refused { number: Hypercall::Manage as u64 });
        }
        return fail(Status::BadAddress);
    };
    let request = &mut request[..(req_len as usize).min(REQUEST_BYTES)];
    env.read_ram(req.start, request);
    let served = env.manage(request, &mut response[..resp_len as usize]);
    if served.action == manage::Action::Refused {
        return (Status::Denied, Outcome::Refused { number: Hypercall::Manage as u64 });
    }
    env.write_ram(resp.start, &response[..served.len]);
    regs.rdx = served.len as u64;
    let outcome = match served.action {
        manage::Action::None | manage::Action::Refused => Outcome::Resume,
        action => Outcome::Manage(action),
    };
    (Status::Ok, outcome)
}

/// The privilege hypercall `number` is refused without (for the console line).
pub const fn privilege_needed(number: u64) -> &'static str {
    match Hypercall::from_u64(number) {
        Some(Hypercall::PartitionState | Hypercall::PrintSummary) => "query",
        Some(Hypercall::RestartPartition) => "restart",
        Some(Hypercall::Manage) => "manage",
        _ => "(none)",
    }
}

/// The scope `RestartPartition`'s flags (`rsi`) ask for; `None` when a bit this version
/// does not know is set.
pub const fn restart_scope(flags: u64) -> Option<RestartScope> {
    match flags {
        0 => Some(RestartScope::KeepPersistent),
        RESTART_CLEAN => Some(RestartScope::Clean),
        _ => None,
    }
}

fn partition_index(raw: u64, env: &impl HypercallEnv) -> Option<usize> {
    usize::try_from(raw).ok().filter(|&i| i < env.partition_count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registers_by_number() {
        let r = GuestRegs { rax: 1, rcx: 2, rbp: 6, r15: 16, ..GuestRegs::default() };
        assert_eq!(
            [r.get(0, 99), r.get(1, 99), r.get(4, 99), r.get(5, 99), r.get(15, 99)],
            [1, 2, 99, 6, 16]
        );
        assert_eq!(r.get(0x10, 99), 1, "only the low four bits count");
        let mut w = GuestRegs::default();
        for n in 0..16u8 {
            assert_eq!(w.set(n, 100 + n as u64), n != 4);
        }
        for n in (0..16u8).filter(|&n| n != 4) {
            assert_eq!(w.get(n, 0), 100 + n as u64);
        }
    }
    use core::mem::offset_of;
    use hallows_abi::table::{PRIV_ALL, PRIV_HALT_SYSTEM};

    struct Fake {
        caller: usize,
        ram: Vec<u8>,
        console: Vec<u8>,
        /// Bytes the fake console takes before it reports itself full.
        console_room: usize,
        states: Vec<PartitionState>,
        privileges: u32,
        faults: Vec<(EventClass, Vec<u8>)>,
    }

    impl Fake {
        fn new() -> Self {
            let mut ram = vec![0u8; 0x20_0000];
            ram[0x10_0000..0x10_0005].copy_from_slice(b"hello");
            Fake {
                caller: 1,
                ram,
                console: Vec::new(),
                console_room: usize::MAX,
                states: vec![PartitionState::Running, PartitionState::Running, PartitionState::Halted],
                privileges: 0,
                faults: Vec::new(),
            }
        }
    }

    impl HypercallEnv for Fake {
        fn caller(&self) -> usize {
            self.caller
        }
        fn ram_bytes(&self) -> u64 {
            self.ram.len() as u64
        }
        fn read_ram(&self, gpa: u64, buf: &mut [u8]) {
            match self.ram.get(gpa as usize..gpa as usize + buf.len()) {
                Some(src) => buf.copy_from_slice(src),
                None => panic!("dispatch read outside RAM: {gpa:#x}+{}", buf.len()),
            }
        }
        fn console_write(&mut self, bytes: &[u8]) -> bool {
            if bytes.len() > self.console_room {
                return false;
            }
            self.console_room -= bytes.len();
            self.console.extend_from_slice(bytes);
            true
        }
        fn now_ns(&self) -> u64 {
            123_456
        }
        fn partition_count(&self) -> usize {
            self.states.len()
        }
        fn partition_state(&self, index: usize) -> PartitionState {
            self.states[index]
        }
        fn privileges(&self) -> u32 {
            self.privileges
        }
        fn report_fault(&mut self, class: EventClass, message: &[u8]) {
            self.faults.push((class, message.to_vec()));
        }
        fn write_ram(&mut self, gpa: u64, bytes: &[u8]) {
            self.ram[gpa as usize..gpa as usize + bytes.len()].copy_from_slice(bytes);
        }
        fn manage(&self, request: &[u8], response: &mut [u8]) -> manage::Served {
            manage::serve(self.caller, self.privileges, request, &ManageView(self.states.len()), response)
        }
    }

    /// A machine of `n` running partitions for the management call.
    struct ManageView(usize);

    impl manage::Machine for ManageView {
        fn partition_count(&self) -> usize {
            self.0
        }
        fn facts(&self, _index: usize) -> manage::PartitionFacts<'_> {
            manage::PartitionFacts { name: "p", ..Default::default() }
        }
        fn state(&self, _index: usize) -> crate::lifecycle::State {
            crate::lifecycle::State::Running
        }
        fn snapshot(&self, index: usize) -> crate::counters::Snapshot {
            crate::counters::PartitionCounters::new().snapshot(index as u32, 0)
        }
        fn now_ns(&self) -> u64 {
            0
        }
    }

    #[test]
    fn manage_copies_the_request_in_and_the_response_out() {
        use hallows_abi::manage::{header, Op, Request, RESPONSE_HEADER_BYTES};
        let mut env = Fake::new();
        let req = Request::new(Op::Restart, 2, 0).encode();
        env.ram[0x1000..0x1010].copy_from_slice(&req);
        // Without the privilege: refused (a health event), nothing written, even with bad pointers.
        let (o, r) = call(&mut env, Hypercall::Manage, [0x1000, 16, 0x2000, 4096]);
        assert_eq!((o, status(&r)), (Outcome::Refused { number: 10 }, Status::Denied));
        assert_eq!(env.ram[0x2000], 0);
        let (o, _) = call(&mut env, Hypercall::Manage, [u64::MAX, 16, 0, 4096]);
        assert_eq!(o, Outcome::Refused { number: 10 });
        env.privileges = PRIV_MANAGE;
        let (o, r) = call(&mut env, Hypercall::Manage, [0x1000, 16, 0x2000, 4096]);
        assert_eq!(status(&r), Status::Ok);
        assert_eq!(o, Outcome::Manage(manage::Action::Restart { target: 2, scope: KEEP }));
        assert_eq!(r.rdx, RESPONSE_HEADER_BYTES as u64);
        assert_eq!(header(&env.ram[0x2000..]), Some((0, 0)));
        // Pointers outside RAM.
        let (_, r) = call(&mut env, Hypercall::Manage, [0x1000, 16, 0x1F_FFFF, 4096]);
        assert_eq!(status(&r), Status::BadAddress);
        let (_, r) = call(&mut env, Hypercall::Manage, [u64::MAX - 3, 16, 0x2000, 4096]);
        assert_eq!(status(&r), Status::BadAddress);
        // A list answers with its length in rdx; a huge buffer length is cut to RESPONSE_MAX.
        env.ram[0x1000..0x1010].copy_from_slice(&Request::new(Op::List, 0, 0).encode());
        let (o, r) = call(&mut env, Hypercall::Manage, [0x1000, 16, 0x1F_F800, 1 << 40]);
        assert_eq!((o, status(&r)), (Outcome::Resume, Status::BadAddress));
        let (o, r) = call(&mut env, Hypercall::Manage, [0x1000, 16, 0x2000, 1 << 20]);
        assert_eq!((o, status(&r)), (Outcome::Resume, Status::Ok));
        assert!(r.rdx > RESPONSE_HEADER_BYTES as u64 && r.rdx <= RESPONSE_MAX as u64);
    }

    fn call(env: &mut Fake, nr: Hypercall, args: [u64; 4]) -> (Outcome, GuestRegs) {
        let mut regs = GuestRegs {
            rax: nr as u64,
            rdi: args[0],
            rsi: args[1],
            rdx: args[2],
            r10: args[3],
            rbx: 0xB,
            rcx: 0xC,
            r15: 0xF,
            ..GuestRegs::default()
        };
        let outcome = dispatch(&mut regs, env);
        assert_eq!((regs.rbx, regs.rcx, regs.r15), (0xB, 0xC, 0xF), "other registers preserved");
        (outcome, regs)
    }

    fn status(regs: &GuestRegs) -> Status {
        Status::from_u64(regs.rax).unwrap()
    }

    #[test]
    fn register_block_layout_is_the_documented_one() {
        assert_eq!(offset_of!(GuestRegs, rax), 0);
        assert_eq!(offset_of!(GuestRegs, rdx), 16);
        assert_eq!(offset_of!(GuestRegs, rsi), 40);
        assert_eq!(offset_of!(GuestRegs, rdi), 48);
        assert_eq!(offset_of!(GuestRegs, r8), 56);
        assert_eq!(offset_of!(GuestRegs, r10), 72);
        assert_eq!(offset_of!(GuestRegs, r15), 112);
        let e = GuestRegs::for_entry(0x1000, 3);
        assert_eq!((e.rdi, e.rsi, e.rax), (0x1000, 3, 0));
    }

    #[test]
    fn simple_calls() {
        let mut env = Fake::new();
        let (o, r) = call(&mut env, Hypercall::Null, [0; 4]);
        assert_eq!((o, status(&r), r.rdx), (Outcome::Resume, Status::Ok, 0));
        let (_, r) = call(&mut env, Hypercall::Version, [0; 4]);
        assert_eq!(r.rdx, VERSION);
        let (_, r) = call(&mut env, Hypercall::TimeNow, [0; 4]);
        assert_eq!(r.rdx, 123_456);
        let (o, r) = call(&mut env, Hypercall::Yield, [5_000, 0, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Yield { until_ns: 5_000 }, Status::Ok));
        let (o, _) = call(&mut env, Hypercall::Halt, [7, 0, 0, 0]);
        assert_eq!(o, Outcome::Halt { exit_code: 7 });
    }

    #[test]
    fn unknown_numbers_are_refused() {
        let mut env = Fake::new();
        for nr in [11u64, 100, u64::MAX, 1 << 32] {
            let mut regs = GuestRegs { rax: nr, rdx: 77, ..GuestRegs::default() };
            assert_eq!(dispatch(&mut regs, &mut env), Outcome::Resume);
            assert_eq!(status(&regs), Status::UnknownCall);
            assert_eq!(regs.rdx, 77);
        }
    }

    #[test]
    fn console_write_checks_pointer_and_length() {
        let mut env = Fake::new();
        let (_, r) = call(&mut env, Hypercall::ConsoleWrite, [0x10_0000, 5, 0, 0]);
        assert_eq!(status(&r), Status::Ok);
        assert_eq!(env.console, b"hello");
        let ram = env.ram.len() as u64;
        for (ptr, len, want) in [
            (ram - 4, 5, Status::BadAddress),
            (ram, 1, Status::BadAddress),
            (u64::MAX - 2, 5, Status::BadAddress),
            (u64::MAX, u64::MAX, Status::BadArgument),
            (0, CONSOLE_WRITE_MAX + 1, Status::BadArgument),
        ] {
            let (o, r) = call(&mut env, Hypercall::ConsoleWrite, [ptr, len, 0, 0]);
            assert_eq!((o, status(&r)), (Outcome::Resume, want), "ptr {ptr:#x} len {len:#x}");
        }
        assert_eq!(env.console, b"hello", "nothing written by refused calls");
        // The largest write, ending exactly at the end of RAM, in several chunks.
        env.ram[(ram - CONSOLE_WRITE_MAX) as usize..].fill(b'z');
        let (_, r) =
            call(&mut env, Hypercall::ConsoleWrite, [ram - CONSOLE_WRITE_MAX, CONSOLE_WRITE_MAX, 0, 0]);
        assert_eq!(status(&r), Status::Ok);
        assert_eq!(env.console.len(), 5 + CONSOLE_WRITE_MAX as usize);
        assert!(env.console[5..].iter().all(|&b| b == b'z'));
        // Zero length anywhere inside (or at the end of) RAM is fine.
        let (_, r) = call(&mut env, Hypercall::ConsoleWrite, [ram, 0, 0, 0]);
        assert_eq!(status(&r), Status::Ok);
    }

    #[test]
    fn console_write_is_all_or_nothing() {
        let mut env = Fake::new();
        env.console_room = 7;
        let (o, r) = call(&mut env, Hypercall::ConsoleWrite, [0x10_0000, 5, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Resume, Status::Ok));
        let (o, r) = call(&mut env, Hypercall::ConsoleWrite, [0x10_0000, 5, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Resume, Status::Busy));
        assert_eq!(env.console, b"hello", "a refused write takes nothing");
        let (_, r) = call(&mut env, Hypercall::ConsoleWrite, [0x10_0000, 2, 0, 0]);
        assert_eq!((status(&r), &env.console[..]), (Status::Ok, &b"hellohe"[..]));
    }

    #[test]
    fn console_write_bounds_its_lines() {
        let mut env = Fake::new();
        let lines = CONSOLE_WRITE_MAX_LINES as usize;
        env.ram[..lines + 1].fill(b'\n');
        let (_, r) = call(&mut env, Hypercall::ConsoleWrite, [0, lines as u64, 0, 0]);
        assert_eq!(status(&r), Status::Ok);
        let (_, r) = call(&mut env, Hypercall::ConsoleWrite, [0, lines as u64 + 1, 0, 0]);
        assert_eq!(status(&r), Status::BadArgument);
        assert_eq!(env.console.len(), lines);
    }

    #[test]
    fn partition_state_needs_query_privilege_for_others() {
        let mut env = Fake::new();
        let (_, r) = call(&mut env, Hypercall::PartitionState, [1, 0, 0, 0]);
        assert_eq!((status(&r), r.rdx), (Status::Ok, PartitionState::Running as u64));
        let (o, r) = call(&mut env, Hypercall::PartitionState, [2, 0, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Refused { number: 5 }, Status::Denied));
        env.privileges = PRIV_QUERY;
        let (_, r) = call(&mut env, Hypercall::PartitionState, [2, 0, 0, 0]);
        assert_eq!((status(&r), r.rdx), (Status::Ok, PartitionState::Halted as u64));
        for bad in [3u64, u64::MAX, 1 << 40] {
            let (_, r) = call(&mut env, Hypercall::PartitionState, [bad, 0, 0, 0]);
            assert_eq!(status(&r), Status::BadArgument);
        }
    }

    const KEEP: RestartScope = RestartScope::KeepPersistent;
    const CLEAN: RestartScope = RestartScope::Clean;

    #[test]
    fn the_counters_table_needs_query_privilege() {
        let mut env = Fake::new();
        let (o, r) = call(&mut env, Hypercall::PrintSummary, [0; 4]);
        assert_eq!((o, status(&r)), (Outcome::Refused { number: 9 }, Status::Denied));
        env.privileges = PRIV_RESTART | PRIV_HALT_SYSTEM;
        let (o, r) = call(&mut env, Hypercall::PrintSummary, [0; 4]);
        assert_eq!((o, status(&r)), (Outcome::Refused { number: 9 }, Status::Denied));
        env.privileges = PRIV_QUERY;
        let (o, r) = call(&mut env, Hypercall::PrintSummary, [0; 4]);
        assert_eq!((o, status(&r)), (Outcome::PrintSummary, Status::Ok));
    }

    #[test]
    fn restart_needs_restart_privilege_for_others() {
        let mut env = Fake::new();
        let (o, r) = call(&mut env, Hypercall::RestartPartition, [1, 0, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Restart { partition: 1, scope: KEEP }, Status::Ok));
        let (o, r) = call(&mut env, Hypercall::RestartPartition, [0, 0, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Refused { number: 7 }, Status::Denied));
        let (o, r) = call(&mut env, Hypercall::RestartPartition, [0, RESTART_CLEAN, 0, 0]);
        assert_eq!(
            (o, status(&r)),
            (Outcome::Refused { number: 7 }, Status::Denied),
            "the flag changes no privilege rule"
        );
        env.privileges = PRIV_QUERY | PRIV_RESTART;
        let (o, _) = call(&mut env, Hypercall::RestartPartition, [0, 0, 0, 0]);
        assert_eq!(o, Outcome::Restart { partition: 0, scope: KEEP });
        env.privileges = PRIV_ALL;
        let (o, r) = call(&mut env, Hypercall::RestartPartition, [99, 0, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Resume, Status::BadArgument));
    }

    #[test]
    fn restart_clean_flag_asks_for_a_clean_restart() {
        let mut env = Fake::new();
        // Itself, without any privilege, and another partition with `restart`.
        let (o, r) = call(&mut env, Hypercall::RestartPartition, [1, RESTART_CLEAN, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Restart { partition: 1, scope: CLEAN }, Status::Ok));
        env.privileges = PRIV_RESTART;
        let (o, r) = call(&mut env, Hypercall::RestartPartition, [2, RESTART_CLEAN, 0xdead, 0xbeef]);
        assert_eq!((o, status(&r)), (Outcome::Restart { partition: 2, scope: CLEAN }, Status::Ok));
        // rsi = 0 (every caller before the flags existed) is the plain restart it was.
        let (o, _) = call(&mut env, Hypercall::RestartPartition, [2, 0, 0, 0]);
        assert_eq!(o, Outcome::Restart { partition: 2, scope: KEEP });
    }

    #[test]
    fn restart_refuses_unknown_flags() {
        let mut env = Fake::new();
        env.privileges = PRIV_ALL;
        for flags in [2u64, 3, 1 << 63, u64::MAX, RESTART_CLEAN | 0x100] {
            for target in [0u64, 1] {
                let (o, r) = call(&mut env, Hypercall::RestartPartition, [target, flags, 0, 0]);
                assert_eq!((o, status(&r)), (Outcome::Resume, Status::BadArgument), "flags {flags:#x}");
            }
        }
        // A caller without the privilege, bad flags: still only a status.
        env.privileges = 0;
        let (o, r) = call(&mut env, Hypercall::RestartPartition, [0, u64::MAX, 0, 0]);
        assert_eq!((o, status(&r)), (Outcome::Resume, Status::BadArgument));
    }

    #[test]
    fn restart_flags_decode() {
        assert_eq!(restart_scope(0), Some(KEEP));
        assert_eq!(restart_scope(RESTART_CLEAN), Some(CLEAN));
        assert_eq!(restart_scope(hallows_abi::hypercall::RESTART_FLAGS_KNOWN), Some(CLEAN));
        for bit in 1..64 {
            assert_eq!(restart_scope(1 << bit), None, "bit {bit}");
            assert_eq!(restart_scope((1 << bit) | RESTART_CLEAN), None, "bit {bit} with CLEAN");
        }
    }

    #[test]
    fn report_fault_checks_class_and_message() {
        let mut env = Fake::new();
        let (o, r) = call(&mut env, Hypercall::ReportFault, [EventClass::Panic as u64, 0x10_0000, 5, 0]);
        assert_eq!((o, status(&r)), (Outcome::Fault(EventClass::Panic), Status::Ok));
        assert_eq!(env.faults, vec![(EventClass::Panic, b"hello".to_vec())]);
        let ram = env.ram.len() as u64;
        for (args, want) in [
            ([8, 0x10_0000, 5, 0], Status::BadArgument),
            ([u64::MAX, 0x10_0000, 5, 0], Status::BadArgument),
            ([6, 0x10_0000, FAULT_MESSAGE_MAX + 1, 0], Status::BadArgument),
            ([6, ram - 1, 2, 0], Status::BadAddress),
            ([6, u64::MAX, 1, 0], Status::BadAddress),
        ] {
            let (o, r) = call(&mut env, Hypercall::ReportFault, args);
            assert_eq!((o, status(&r)), (Outcome::Resume, want), "{args:?}");
        }
        assert_eq!(env.faults.len(), 1);
    }

    #[test]
    fn checked_range_edges() {
        assert_eq!(checked_range(0, 0, 0), Some(0..0));
        assert_eq!(checked_range(10, 0, 10), Some(10..10));
        assert_eq!(checked_range(11, 0, 10), None);
        assert_eq!(checked_range(u64::MAX, 1, u64::MAX), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_registers_never_panic_or_read_outside(
            rax in 0u64..12, rdi: u64, rsi: u64, rdx: u64, r10: u64, privileges in 0u32..8,
        ) {
            let mut env = Fake::new();
            env.privileges = privileges;
            let mut regs = GuestRegs { rax, rdi, rsi, rdx, r10, ..GuestRegs::default() };
            let _ = dispatch(&mut regs, &mut env);
            proptest::prop_assert!(Status::from_u64(regs.rax).is_some());
        }
    }
}
