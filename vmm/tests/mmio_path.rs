//! The MMIO path end to end on the host: a Linux-like vCPU in long mode with its kernel
//! mapped high executes MOVs against a small device on the MMIO bus, and hostile
//! instruction bytes and registers end as faults, never as a panic.

use std::sync::Mutex;

use hallows_vmm::guest_memory::{GuestPhysical, Paging};
use hallows_vmm::mmio_bus::{emulate, EptAccess, MmioBus, MmioDevice, MmioDone, MmioExit, MmioFault};
use hallows_vmm::mmio_decode::MmioDecodeError;
use proptest::prelude::*;

/// A device with four 64-bit registers; a write to register 3 is a doorbell: it counts
/// and adds the value written to register 0.
#[derive(Default)]
struct Doorbell {
    state: Mutex<DoorbellState>,
}

#[derive(Default)]
struct DoorbellState {
    registers: [u64; 4],
    rings: u32,
    accesses: Vec<(bool, u64, u8)>,
}

impl MmioDevice for Doorbell {
    fn read(&self, offset: u64, size: u8) -> u64 {
        let mut s = self.state.lock().unwrap();
        s.accesses.push((false, offset, size));
        let word = s.registers[(offset / 8) as usize % 4];
        word >> (8 * (offset % 8))
    }

    fn write(&self, offset: u64, size: u8, value: u64) {
        let mut s = self.state.lock().unwrap();
        s.accesses.push((true, offset, size));
        let index = (offset / 8) as usize % 4;
        if index == 3 {
            s.rings += 1;
            s.registers[0] = s.registers[0].wrapping_add(value);
        } else {
            let shift = 8 * (offset % 8);
            let mask = if size == 8 { u64::MAX } else { ((1u64 << (8 * u32::from(size))) - 1) << shift };
            s.registers[index] = (s.registers[index] & !mask) | ((value << shift) & mask);
        }
    }
}

/// Guest RAM from GPA 0.
struct Ram(Vec<u8>);

impl GuestPhysical for Ram {
    fn read(&self, gpa: u64, buf: &mut [u8]) -> bool {
        self.0.as_slice().read(gpa, buf)
    }
}

const DEVICE_GPA: u64 = 0xF000_0000;
/// Where the "kernel" code runs: linear 0xFFFF_FFFF_8100_0000 -> GPA 0x20_0000 (2 MiB page).
const TEXT: u64 = 0xFFFF_FFFF_8100_0000;
const TEXT_GPA: u64 = 0x20_0000;
const RAX: usize = 0;
const RCX: usize = 1;
const RDI: usize = 7;
const R9: usize = 9;

/// 4-level tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD) mapping TEXT with a 2 MiB page.
fn guest() -> (Ram, Paging) {
    let mut ram = Ram(vec![0; 0x40_0000]);
    let mut put = |gpa: usize, value: u64| ram.0[gpa..gpa + 8].copy_from_slice(&value.to_le_bytes());
    put(0x1000 + 511 * 8, 0x2000 | 3);
    put(0x2000 + 510 * 8, 0x3000 | 3);
    put(0x3000 + 8 * 8, TEXT_GPA | 0x83);
    let paging = Paging { cr0: 0x8000_0011, cr3: 0x1000, cr4: 0x20, efer: 0x500 };
    (ram, paging)
}

fn exit_at(rip: u64, gpa: u64, access: EptAccess, paging: Paging) -> MmioExit {
    MmioExit { gpa, access, rip, cs_base: 0, bitness: 64, paging }
}

/// Places `code` at TEXT + `at` and returns its RIP.
fn place(ram: &mut Ram, at: u64, code: &[u8]) -> u64 {
    let start = (TEXT_GPA + at) as usize;
    ram.0[start..start + code.len()].copy_from_slice(code);
    TEXT + at
}

#[test]
fn writel_readl_and_doorbell_reach_the_device() {
    let device = Doorbell::default();
    let mut bus = MmioBus::<4>::new();
    bus.register(DEVICE_GPA, 0x1000, &device).unwrap();
    let (mut ram, paging) = guest();
    let mut gprs = [0u64; 16];

    // mov [rdi+8], eax (writel to register 1)
    let rip = place(&mut ram, 0x100, &[0x89, 0x47, 0x08]);
    gprs[RAX] = 0xFFFF_FFFF_1234_5678;
    gprs[RDI] = DEVICE_GPA;
    let done =
        emulate(&bus, &exit_at(rip, DEVICE_GPA + 8, EptAccess::Write, paging), &ram, &mut gprs).unwrap();
    assert_eq!(done, MmioDone { next_rip: rip + 3, written_register: None });
    assert_eq!(device.state.lock().unwrap().registers[1], 0x1234_5678, "only the low 4 bytes");

    // mov r9, [rdi+8] (readq of register 1)
    let rip = place(&mut ram, 0x200, &[0x4C, 0x8B, 0x4F, 0x08]);
    gprs[R9] = u64::MAX;
    let done =
        emulate(&bus, &exit_at(rip, DEVICE_GPA + 8, EptAccess::Read, paging), &ram, &mut gprs).unwrap();
    assert_eq!(done, MmioDone { next_rip: rip + 4, written_register: Some(R9 as u8) });
    assert_eq!(gprs[R9], 0x1234_5678);

    // mov qword [rdi+0x18], 5 (doorbell), twice
    let rip = place(&mut ram, 0x300, &[0x48, 0xC7, 0x47, 0x18, 0x05, 0, 0, 0]);
    for _ in 0..2 {
        let exit = exit_at(rip, DEVICE_GPA + 0x18, EptAccess::Write, paging);
        assert_eq!(emulate(&bus, &exit, &ram, &mut gprs).unwrap().next_rip, rip + 8);
    }
    // movzx ecx, byte [rdi] reads the low byte of register 0 and zero-extends into rcx.
    let rip = place(&mut ram, 0x400, &[0x0F, 0xB6, 0x0F]);
    gprs[RCX] = u64::MAX;
    emulate(&bus, &exit_at(rip, DEVICE_GPA, EptAccess::Read, paging), &ram, &mut gprs).unwrap();
    assert_eq!(gprs[RCX], 10);
    let state = device.state.lock().unwrap();
    assert_eq!(state.rings, 2);
    assert_eq!(
        state.accesses,
        [(true, 8, 4), (false, 8, 8), (true, 0x18, 8), (true, 0x18, 8), (false, 0, 1)]
    );
}

#[test]
fn an_instruction_across_a_page_boundary_is_fetched_whole() {
    let device = Doorbell::default();
    let mut bus = MmioBus::<1>::new();
    bus.register(DEVICE_GPA, 0x1000, &device).unwrap();
    let (mut ram, paging) = guest();
    // mov eax, [rdi+0x10] with the displacement byte on the next 4 KiB page.
    let rip = place(&mut ram, 0xFFE, &[0x8B, 0x47, 0x10]);
    device.state.lock().unwrap().registers[2] = 0xAABB_CCDD;
    let mut gprs = [0u64; 16];
    gprs[RAX] = 0x1111_1111_1111_1111;
    let done =
        emulate(&bus, &exit_at(rip, DEVICE_GPA + 0x10, EptAccess::Read, paging), &ram, &mut gprs).unwrap();
    assert_eq!(done.next_rip, rip + 3);
    assert_eq!(gprs[RAX], 0xAABB_CCDD, "a 32-bit load zeroes the upper half");
}

#[test]
fn everything_else_is_a_fault_and_touches_nothing() {
    let device = Doorbell::default();
    let mut bus = MmioBus::<1>::new();
    bus.register(DEVICE_GPA, 0x20, &device).unwrap();
    let (mut ram, paging) = guest();
    let mut gprs = [7u64; 16];
    let cases: [(&[u8], u64, EptAccess, MmioFault); 7] = [
        (&[0x89, 0x07], 0x1000, EptAccess::Write, MmioFault::NoDevice),
        (&[0x89, 0x07], DEVICE_GPA, EptAccess::Fetch, MmioFault::InstructionFetch),
        // add [rdi], eax: a read-modify-write.
        (
            &[0x01, 0x07],
            DEVICE_GPA,
            EptAccess::Write,
            MmioFault::Decode(MmioDecodeError::Unsupported(iced_x86::Mnemonic::Add)),
        ),
        // mov [rdi], eax reported as a read.
        (&[0x89, 0x07], DEVICE_GPA, EptAccess::Read, MmioFault::AccessMismatch),
        // mov rax, [rdi+0x1c]: 8 bytes from offset 0x1c of a 0x20-byte device.
        (&[0x48, 0x8B, 0x47, 0x1C], DEVICE_GPA + 0x1C, EptAccess::Read, MmioFault::OutsideDevice { size: 8 }),
        (
            &[0x0F, 0x0B],
            DEVICE_GPA,
            EptAccess::Read,
            MmioFault::Decode(MmioDecodeError::Unsupported(iced_x86::Mnemonic::Ud2)),
        ),
        (
            &[0xF3, 0xA5],
            DEVICE_GPA,
            EptAccess::Write,
            MmioFault::Decode(MmioDecodeError::Unsupported(iced_x86::Mnemonic::Movsd)),
        ),
    ];
    for (i, (code, gpa, access, fault)) in cases.into_iter().enumerate() {
        let rip = place(&mut ram, 0x800 + 0x20 * i as u64, code);
        assert_eq!(
            emulate(&bus, &exit_at(rip, gpa, access, paging), &ram, &mut gprs),
            Err(fault),
            "case {i}"
        );
    }
    // RIP on an unmapped page.
    let exit = exit_at(0x4000_0000, DEVICE_GPA, EptAccess::Read, paging);
    assert_eq!(emulate(&bus, &exit, &ram, &mut gprs), Err(MmioFault::Unfetchable));
    assert_eq!(gprs, [7; 16]);
    assert!(device.state.lock().unwrap().accesses.is_empty());
    assert!(format!("{}", MmioFault::OutsideDevice { size: 8 }).contains("8-byte"));
}

#[test]
fn real_mode_code_uses_cs_base_and_wraps_ip() {
    let device = Doorbell::default();
    let mut bus = MmioBus::<1>::new();
    bus.register(0xB_8000, 0x10, &device).unwrap();
    let (mut ram, _) = guest();
    // mov [bx], al at CS:IP = 0x1000:0xFFFE (linear 0x1FFFE).
    ram.0[0x1_FFFE..0x2_0000].copy_from_slice(&[0x88, 0x07]);
    let exit = MmioExit {
        gpa: 0xB_8000,
        access: EptAccess::Write,
        rip: 0xFFFE,
        cs_base: 0x1_0000,
        bitness: 16,
        paging: Paging::default(),
    };
    let mut gprs = [0u64; 16];
    gprs[RAX] = 0x41;
    assert_eq!(emulate(&bus, &exit, &ram, &mut gprs).unwrap().next_rip, 0, "IP wraps at 16 bits");
    assert_eq!(device.state.lock().unwrap().registers[0], 0x41);
}

proptest! {
    #[test]
    fn hostile_bytes_and_registers_never_panic(
        code in proptest::collection::vec(any::<u8>(), 0..16),
        regs in proptest::array::uniform16(any::<u64>()),
        offset in 0u64..0x40,
        access in 0u64..8,
        bitness in prop::sample::select(vec![16u32, 32, 64]),
    ) {
        let device = Doorbell::default();
        let mut bus = MmioBus::<1>::new();
        bus.register(DEVICE_GPA, 0x20, &device).unwrap();
        let (mut ram, paging) = guest();
        let rip = place(&mut ram, 0xFF8, &code);
        let mut gprs = regs;
        let exit = MmioExit {
            gpa: DEVICE_GPA + offset,
            access: EptAccess::from_qualification(access),
            rip,
            cs_base: 0,
            bitness,
            paging,
        };
        match emulate(&bus, &exit, &ram, &mut gprs) {
            Ok(done) => {
                let length = done.next_rip.wrapping_sub(rip) & 0xFFFF;
                prop_assert!((1..=15).contains(&length));
                let changed: Vec<usize> = (0..16).filter(|&i| gprs[i] != regs[i]).collect();
                match done.written_register {
                    Some(r) => prop_assert!(changed.iter().all(|&i| i == usize::from(r))),
                    None => prop_assert!(changed.is_empty()),
                }
                let s = device.state.lock().unwrap();
                prop_assert_eq!(s.accesses.len(), 1);
                let (_, at, size) = s.accesses[0];
                prop_assert!(at + u64::from(size) <= 0x20);
            }
            Err(_) => {
                prop_assert_eq!(gprs, regs);
                prop_assert!(device.state.lock().unwrap().accesses.is_empty());
            }
        }
    }
}

/// A channel's register block (the hybrid bridge's BAR0) read by the instructions Linux
/// uses on an `ioremap`ped or `mmap`ped BAR: the layout at every width, the peer's state
/// live, writes ignored.
#[test]
fn a_channel_register_block_answers_through_the_mmio_path() {
    use hallows_abi::bridge::{REGISTER_BLOCK_BYTES, REGISTER_MAGIC, REG_NAME, REG_PEER_STATE};
    use hallows_vmm::channel_pci::{ChannelDescription, ChannelRegisters};
    use std::sync::atomic::{AtomicU32, Ordering};

    let peer = AtomicU32::new(3);
    let description = ChannelDescription {
        magic: REGISTER_MAGIC,
        version: 1,
        kind: 2,
        direction: 1,
        msg_size: 16,
        depth: 64,
        region_bytes: 0x3000,
        writer_bytes: 0x2000,
        channel_index: 0,
        name: ChannelDescription::name_field("readings"),
    };
    let block = ChannelRegisters::new(description, || peer.load(Ordering::SeqCst));
    let mut bus = MmioBus::<4>::new();
    bus.register(DEVICE_GPA, REGISTER_BLOCK_BYTES, &block).unwrap();
    let (mut ram, paging) = guest();
    let mut gprs = [0u64; 16];
    gprs[RDI] = DEVICE_GPA;

    // mov eax, [rdi] (magic)
    let rip = place(&mut ram, 0x100, &[0x8B, 0x07]);
    emulate(&bus, &exit_at(rip, DEVICE_GPA, EptAccess::Read, paging), &ram, &mut gprs).unwrap();
    assert_eq!(gprs[RAX], u64::from(REGISTER_MAGIC));
    // mov r9, [rdi+0x40] (the name's first 8 bytes)
    let rip = place(&mut ram, 0x200, &[0x4C, 0x8B, 0x4F, 0x40]);
    emulate(&bus, &exit_at(rip, DEVICE_GPA + REG_NAME, EptAccess::Read, paging), &ram, &mut gprs).unwrap();
    assert_eq!(gprs[R9].to_le_bytes(), *b"readings");
    // mov ecx, [rdi+0x28] (peer state), before and after the peer starts running
    let rip = place(&mut ram, 0x300, &[0x8B, 0x4F, 0x28]);
    let exit = exit_at(rip, DEVICE_GPA + REG_PEER_STATE, EptAccess::Read, paging);
    emulate(&bus, &exit, &ram, &mut gprs).unwrap();
    assert_eq!(gprs[RCX], 3);
    peer.store(0, Ordering::SeqCst);
    emulate(&bus, &exit, &ram, &mut gprs).unwrap();
    assert_eq!(gprs[RCX], 0);
    // mov [rdi], eax: completes (the guest moves on) and changes nothing.
    let rip = place(&mut ram, 0x400, &[0x89, 0x07]);
    gprs[RAX] = 0xDEAD_BEEF;
    let done = emulate(&bus, &exit_at(rip, DEVICE_GPA, EptAccess::Write, paging), &ram, &mut gprs).unwrap();
    assert_eq!(done.next_rip, rip + 2);
    assert_eq!(block.read(0, 4), u64::from(REGISTER_MAGIC));
}

/// Linux's management mailbox driven by the MOVs a tool on an `mmap`ped BAR0 executes:
/// the request in two quadword writes, the doorbell, one read of the done count and
/// response length together, then the response.
#[test]
fn the_management_mailbox_serves_a_request_through_the_mmio_path() {
    use hallows_abi::manage::mailbox::{
        MAILBOX_BYTES, REG_DONE, REG_DOORBELL, REQUEST_OFFSET, RESPONSE_OFFSET,
    };
    use hallows_abi::manage::{put_body_u32, put_header, Op, Request, Status, RESPONSE_HEADER_BYTES};
    use hallows_vmm::manage_pci::{Mailbox, MailboxService};

    /// Answers every well-formed request with Ok and a 4-byte body: twice the target.
    struct Doubler;
    impl MailboxService for Doubler {
        fn serve(&self, request: &[u8], response: &mut [u8]) -> usize {
            match Request::decode(request) {
                Some(r) => {
                    put_header(response, Status::Ok, 4);
                    put_body_u32(&mut response[RESPONSE_HEADER_BYTES..], 0, r.target * 2);
                    RESPONSE_HEADER_BYTES + 4
                }
                None => {
                    put_header(response, Status::BadRequest, 0);
                    RESPONSE_HEADER_BYTES
                }
            }
        }
    }

    let mailbox = Mailbox::new(Doubler);
    let mut bus = MmioBus::<4>::new();
    bus.register(DEVICE_GPA, MAILBOX_BYTES, &mailbox).unwrap();
    let (mut ram, paging) = guest();
    let mut gprs = [0u64; 16];
    gprs[RDI] = DEVICE_GPA;
    let request = Request::new(Op::Stats, 21, 0).encode();
    gprs[RAX] = u64::from_le_bytes(request[..8].try_into().unwrap());
    gprs[RCX] = u64::from_le_bytes(request[8..].try_into().unwrap());
    let mut run = |at: u64, code: &[u8], gpa: u64, access: EptAccess, gprs: &mut [u64; 16]| {
        let rip = place(&mut ram, at, code);
        let done = emulate(&bus, &exit_at(rip, DEVICE_GPA + gpa, access, paging), &ram, gprs).unwrap();
        assert_eq!(done.next_rip, rip + code.len() as u64);
    };
    // mov [rdi+0x100], rax; mov [rdi+0x108], rcx
    run(0x100, &[0x48, 0x89, 0x87, 0x00, 0x01, 0, 0], REQUEST_OFFSET, EptAccess::Write, &mut gprs);
    run(0x200, &[0x48, 0x89, 0x8F, 0x08, 0x01, 0, 0], REQUEST_OFFSET + 8, EptAccess::Write, &mut gprs);
    // mov dword [rdi+8], 16 (the doorbell: the request's length)
    run(0x300, &[0xC7, 0x47, 0x08, 0x10, 0, 0, 0], REG_DOORBELL, EptAccess::Write, &mut gprs);
    // mov rax, [rdi+0xc]: done count (low half) and response length (high half)
    run(0x400, &[0x48, 0x8B, 0x47, 0x0C], REG_DONE, EptAccess::Read, &mut gprs);
    assert_eq!(gprs[RAX], 12 << 32 | 1);
    // mov ecx, [rdi+0x1000] (status); mov rdx, [rdi+0x1008] (the body)
    run(0x500, &[0x8B, 0x8F, 0x00, 0x10, 0, 0], RESPONSE_OFFSET, EptAccess::Read, &mut gprs);
    run(0x600, &[0x48, 0x8B, 0x97, 0x08, 0x10, 0, 0], RESPONSE_OFFSET + 8, EptAccess::Read, &mut gprs);
    assert_eq!(gprs[RCX], Status::Ok as u64);
    assert_eq!(gprs[2], 42, "rdx: twice the target, zero after the 4-byte body");
    // A short doorbell (8 bytes) gets the service's refusal of a short request.
    run(0x700, &[0xC7, 0x47, 0x08, 0x08, 0, 0, 0], REG_DOORBELL, EptAccess::Write, &mut gprs);
    run(0x500, &[0x8B, 0x8F, 0x00, 0x10, 0, 0], RESPONSE_OFFSET, EptAccess::Read, &mut gprs);
    assert_eq!(gprs[RCX], Status::BadRequest as u64);
}
