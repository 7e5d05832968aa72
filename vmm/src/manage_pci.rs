//! Linux's management PCI function: how a Linux partition reaches the management
//! interface (`hallows_abi::manage`; the register layout is `hallows_abi::manage::mailbox`).
//!
//! - [`ManageFunction`] is the function's configuration header. It sits beside the
//!   channel functions in [`crate::channel_pci::ChannelFunctions`] (one configuration
//!   space behind the partition's PCI filter) and follows their rules: read-only, BAR0
//!   answers sizing probes with its true size, and no write moves or disables anything.
//! - [`Mailbox`] is BAR0, an [`MmioDevice`] on the partition's MMIO bus. Nothing of it is
//!   mapped in the partition's EPT, so every access traps: the request the hypervisor
//!   serves is the device's own copy, which no vCPU can change while it is served, and
//!   the response is read from the device's copy too. A request costs a few trapped
//!   accesses (the request's dwords, the doorbell, the done count, the response length
//!   and the response's words), which is nothing for an operator's occasional question.
//!
//! The exchange: write the request into the request area, write its length to the
//! doorbell, read the done count (it moved: the request was served while the doorbell
//! write trapped, so it has moved by the time the writing instruction completes), the
//! response length and the response. Serving happens under the mailbox's lock, so
//! requests from several vCPUs are served one at a time; two writers sharing the request
//! area must agree among themselves (Linux's tool holds a lock), as with any device
//! register set.

use spin::Mutex;

use hallows_abi::bridge::{PCI_SUBSYSTEM_ID, PCI_VENDOR_ID};
use hallows_abi::manage::mailbox::{
    MAGIC, MAILBOX_BYTES, PCI_CLASS, PCI_DEVICE_ID, REG_DONE, REG_DOORBELL, REG_MAGIC, REG_RESPONSE_LEN,
    REG_VERSION, REQUEST_OFFSET, RESPONSE_OFFSET,
};
use hallows_abi::manage::{REQUEST_BYTES, RESPONSE_MAX, VERSION};

use crate::mmio_bus::MmioDevice;
use crate::pci_config::{
    COMMAND_MEMORY, REG_BAR0, REG_CLASS_REVISION, REG_COMMAND, REG_HEADER, REG_SUBSYSTEM, REG_VENDOR,
};

// The areas must lie inside the BAR and apart from each other and the registers.
const _: () = assert!(REG_RESPONSE_LEN + 4 <= REQUEST_OFFSET);
const _: () = assert!(REQUEST_OFFSET + REQUEST_BYTES as u64 <= RESPONSE_OFFSET);
const _: () = assert!(RESPONSE_OFFSET + RESPONSE_MAX as u64 <= MAILBOX_BYTES);
const _: () = assert!(MAILBOX_BYTES.is_power_of_two() && MAILBOX_BYTES <= 1 << 31);

/// A Linux partition's management function: its place on bus 0 and its BAR0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ManageFunction {
    /// Device number on bus 0 (function 0).
    pub device: u8,
    /// Guest-physical address of the mailbox (BAR0): 32-bit, aligned to
    /// [`ManageFunction::BAR0_BYTES`].
    pub mailbox_gpa: u32,
}

impl ManageFunction {
    /// Size of BAR0, the mailbox.
    pub const BAR0_BYTES: u64 = MAILBOX_BYTES;

    /// The dword at `register & !3` of the header; BAR0 reads its size mask while
    /// `bar0_sizing` (the last write to it was the all-ones probe).
    pub(crate) fn header_dword(&self, register: u8, bar0_sizing: bool) -> u32 {
        match register & !3 {
            REG_VENDOR => u32::from(PCI_DEVICE_ID) << 16 | u32::from(PCI_VENDOR_ID),
            // Status 0 (no capabilities list); memory decoding always on, because the
            // mailbox is on the MMIO bus for the partition's whole life.
            REG_COMMAND => u32::from(COMMAND_MEMORY),
            // Revision = the request and record layouts' version.
            REG_CLASS_REVISION => PCI_CLASS << 8 | (VERSION & 0xFF),
            // Header type 0, single function; no BIST, latency timer or cache line size.
            REG_HEADER => 0,
            // 32-bit non-prefetchable memory: the type bits are all 0.
            REG_BAR0 if bar0_sizing => !(MAILBOX_BYTES as u32 - 1),
            REG_BAR0 => self.mailbox_gpa,
            REG_SUBSYSTEM => u32::from(PCI_SUBSYSTEM_ID) << 16 | u32::from(PCI_VENDOR_ID),
            // BAR1-5 and the ROM BAR (absent: they size as 0), capabilities pointer,
            // interrupt line and pin (no interrupt), everything after the header.
            _ => 0,
        }
    }
}

/// Who answers the requests a mailbox receives: in the hypervisor, the management
/// interface's decisions over the running machine for the partition that owns the
/// mailbox.
pub trait MailboxService {
    /// Serves `request` (the bytes the doorbell covered: at most `REQUEST_BYTES`, fewer
    /// when Linux rang with a shorter length) into `response` (`RESPONSE_MAX` bytes,
    /// zeroed); returns the response's length. Called under the mailbox's lock.
    fn serve(&self, request: &[u8], response: &mut [u8]) -> usize;
}

/// What a mailbox holds between accesses.
struct Exchange {
    /// The device's own copy of the request area.
    request: [u8; REQUEST_BYTES],
    /// The last response, zero past its length.
    response: [u8; RESPONSE_MAX],
    response_len: u32,
    /// Requests served (wraps).
    done: u32,
}

impl Exchange {
    const EMPTY: Exchange =
        Exchange { request: [0; REQUEST_BYTES], response: [0; RESPONSE_MAX], response_len: 0, done: 0 };

    /// The byte a read at `offset` of the BAR returns.
    fn byte(&self, offset: u64) -> u8 {
        let field = |start: u64, bytes: &[u8]| {
            usize::try_from(offset - start).ok().and_then(|i| bytes.get(i)).copied().unwrap_or(0)
        };
        match offset {
            REG_MAGIC..REG_VERSION => field(REG_MAGIC, &MAGIC.to_le_bytes()),
            REG_VERSION..REG_DOORBELL => field(REG_VERSION, &VERSION.to_le_bytes()),
            REG_DONE..REG_RESPONSE_LEN => field(REG_DONE, &self.done.to_le_bytes()),
            REG_RESPONSE_LEN.. if offset < REG_RESPONSE_LEN + 4 => {
                field(REG_RESPONSE_LEN, &self.response_len.to_le_bytes())
            }
            REQUEST_OFFSET.. if offset < REQUEST_OFFSET + REQUEST_BYTES as u64 => {
                field(REQUEST_OFFSET, &self.request)
            }
            RESPONSE_OFFSET.. => field(RESPONSE_OFFSET, &self.response),
            // The doorbell (write-only) and the gaps.
            _ => 0,
        }
    }
}

/// The management function's BAR0 (see the module documentation), serving through `S`.
pub struct Mailbox<S> {
    service: S,
    exchange: Mutex<Exchange>,
}

impl<S: MailboxService> Mailbox<S> {
    /// An empty mailbox: no request, no response, nothing served.
    pub const fn new(service: S) -> Self {
        Self { service, exchange: Mutex::new(Exchange::EMPTY) }
    }

    /// Back to empty, as at boot (the partition restarts: the new Linux finds no stale
    /// request or response).
    pub fn reset(&self) {
        *self.exchange.lock() = Exchange::EMPTY;
    }

    /// Serves the first `min(length, REQUEST_BYTES)` bytes of the request area: a short
    /// length gives the service a short request, which it refuses as malformed.
    fn ring(&self, exchange: &mut Exchange, length: u32) {
        let len = usize::try_from(length).map_or(REQUEST_BYTES, |l| l.min(REQUEST_BYTES));
        exchange.response.fill(0);
        let served = self.service.serve(&exchange.request[..len], &mut exchange.response);
        // A service that claims more than the buffer would have Linux read past it.
        let served = served.min(RESPONSE_MAX);
        exchange.response[served..].fill(0);
        exchange.response_len = served as u32;
        exchange.done = exchange.done.wrapping_add(1);
    }
}

impl<S: MailboxService> MmioDevice for Mailbox<S> {
    /// Byte by byte, as the channel register blocks: an access may be unaligned or span
    /// fields, and each byte reads what its offset holds (0 past the fields and the BAR).
    /// One lock for the whole access, so an 8-byte read of the done count and the
    /// response length sees one moment.
    fn read(&self, offset: u64, size: u8) -> u64 {
        let size = u64::from(size.clamp(1, 8));
        let exchange = self.exchange.lock();
        (0..size).fold(0u64, |value, i| {
            let at = offset.saturating_add(i);
            let byte = if at < MAILBOX_BYTES { exchange.byte(at) } else { 0 };
            value | u64::from(byte) << (8 * i)
        })
    }

    /// A write of at least 4 bytes at the doorbell serves the request (the low 32 bits
    /// are its length); bytes written inside the request area land in the device's copy;
    /// everything else (read-only registers, narrow or misaligned doorbell writes, the
    /// response, the gaps) is ignored.
    fn write(&self, offset: u64, size: u8, value: u64) {
        let size = u64::from(size.clamp(1, 8));
        let mut exchange = self.exchange.lock();
        if offset == REG_DOORBELL && size >= 4 {
            self.ring(&mut exchange, value as u32);
            return;
        }
        for i in 0..size {
            let at = offset.saturating_add(i);
            let Some(index) = at.checked_sub(REQUEST_OFFSET).and_then(|i| usize::try_from(i).ok()) else {
                continue;
            };
            if let Some(byte) = exchange.request.get_mut(index) {
                *byte = (value >> (8 * i)) as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::channel_pci::{ChannelFunction, ChannelFunctionError, ChannelFunctions};
    use crate::pci_config::{
        Bdf, PciConfigFilter, PciConfigSpace, CONFIG_ADDRESS_PORT, CONFIG_DATA_PORT, CONFIG_ENABLE,
    };
    use std::sync::Mutex as StdMutex;
    use std::vec::Vec;

    const MANAGE: ManageFunction = ManageFunction { device: 17, mailbox_gpa: 0xF001_0000 };
    const CHANNEL: ChannelFunction = ChannelFunction {
        device: 1,
        revision: 1,
        registers_gpa: 0xF000_0000,
        shared_gpa: 0xE000_0000,
        shared_bytes: 0x1000,
    };

    /// Bus 0 with one channel function and the management function, behind the filter.
    struct Bus {
        filter: PciConfigFilter<2>,
        functions: ChannelFunctions<1>,
    }

    impl Bus {
        fn new() -> Self {
            let mut functions = ChannelFunctions::new();
            let mut filter = PciConfigFilter::new();
            filter.allow(functions.add(CHANNEL).unwrap()).unwrap();
            filter.allow(functions.add_manage(MANAGE).unwrap()).unwrap();
            Self { filter, functions }
        }
        fn read(&mut self, device: u8, register: u8, size: u8) -> u32 {
            let address = CONFIG_ENABLE | u32::from(device) << 11 | u32::from(register & !3);
            self.filter.write(CONFIG_ADDRESS_PORT, 4, address, &mut self.functions);
            self.filter.read(CONFIG_DATA_PORT + u16::from(register & 3), size, &mut self.functions).0
        }
        fn write(&mut self, device: u8, register: u8, size: u8, value: u32) {
            let address = CONFIG_ENABLE | u32::from(device) << 11 | u32::from(register & !3);
            self.filter.write(CONFIG_ADDRESS_PORT, 4, address, &mut self.functions);
            self.filter.write(CONFIG_DATA_PORT + u16::from(register & 3), size, value, &mut self.functions);
        }
    }

    #[test]
    fn the_function_is_found_beside_the_channels_with_its_identity() {
        let mut bus = Bus::new();
        let present: Vec<u8> = (0..32).filter(|&d| bus.read(d, REG_VENDOR, 2) != 0xFFFF).collect();
        assert_eq!(present, [1, 17]);
        assert_eq!(bus.read(17, REG_VENDOR, 4), u32::from(PCI_DEVICE_ID) << 16 | 0x1AF4);
        assert_eq!(bus.read(17, REG_CLASS_REVISION, 4), PCI_CLASS << 8 | VERSION);
        assert_eq!(bus.read(17, REG_CLASS_REVISION + 3, 1), 0x08, "system peripheral");
        assert_eq!(bus.read(17, REG_SUBSYSTEM, 4), 0x5248_1AF4);
        assert_eq!(bus.read(17, REG_HEADER + 2, 1), 0, "header type 0, single function");
        assert_eq!(bus.read(17, REG_COMMAND, 2), u32::from(COMMAND_MEMORY));
        assert_eq!(bus.read(17, 0x34, 1), 0, "no capabilities");
        assert_eq!(bus.read(17, 0x3D, 1), 0, "no interrupt pin");
        assert_eq!(bus.read(17, 0x80, 4), 0);
        assert_eq!(bus.read(18, REG_VENDOR, 4), u32::MAX);
        // The channel function is unchanged by its neighbour.
        assert_eq!(bus.read(1, REG_VENDOR, 4), 0x1110_1AF4);
    }

    #[test]
    fn bar0_is_a_fixed_32_bit_memory_bar_of_the_mailbox_size() {
        let mut bus = Bus::new();
        assert_eq!(bus.read(17, REG_BAR0, 4), 0xF001_0000, "memory, 32-bit, not prefetchable");
        bus.write(17, REG_BAR0, 4, u32::MAX);
        assert_eq!(bus.read(17, REG_BAR0, 4), 0xFFFF_E000, "8 KiB");
        bus.write(17, REG_BAR0, 4, 0xF001_0000);
        assert_eq!(bus.read(17, REG_BAR0, 4), 0xF001_0000);
        // A move is refused by the filter, and would change nothing here either.
        bus.write(17, REG_BAR0, 4, 0xC000_0000);
        assert_eq!(bus.read(17, REG_BAR0, 4), 0xF001_0000);
        for register in [0x14, 0x18, 0x1C, 0x20, 0x24, 0x30] {
            bus.write(17, register, 4, u32::MAX);
            assert_eq!(bus.read(17, register, 4), 0, "register {register:#x} is absent");
        }
        bus.write(17, REG_COMMAND, 2, 0);
        assert_eq!(bus.read(17, REG_COMMAND, 2), u32::from(COMMAND_MEMORY));
        // Sizing one function's BAR does not size the other's.
        bus.write(17, REG_BAR0, 4, u32::MAX);
        assert_eq!(bus.read(1, REG_BAR0, 4), 0xF000_0000);
    }

    #[test]
    fn the_function_is_checked_when_added() {
        let mut f = ChannelFunctions::<2>::new();
        f.add(CHANNEL).unwrap();
        assert_eq!(
            f.add_manage(ManageFunction { device: 1, ..MANAGE }),
            Err(ChannelFunctionError::BadDevice)
        );
        assert_eq!(
            f.add_manage(ManageFunction { device: 32, ..MANAGE }),
            Err(ChannelFunctionError::BadDevice)
        );
        let misaligned = ManageFunction { mailbox_gpa: 0xF001_1000, ..MANAGE };
        assert_eq!(f.add_manage(misaligned), Err(ChannelFunctionError::BadBar));
        assert_eq!(f.add_manage(MANAGE), Ok(Bdf { bus: 0, device: 17, function: 0 }));
        assert_eq!(f.add_manage(ManageFunction { device: 18, ..MANAGE }), Err(ChannelFunctionError::Full));
        assert_eq!(f.add(ChannelFunction { device: 17, ..CHANNEL }), Err(ChannelFunctionError::BadDevice));
        f.add(ChannelFunction { device: 2, ..CHANNEL }).unwrap();
        assert_eq!(f.bdfs().map(|b| b.device).collect::<Vec<_>>(), [1, 2, 17]);
        // Other buses and functions hold nothing.
        assert_eq!(f.read(Bdf { bus: 1, device: 17, function: 0 }, 0, 4), u32::MAX);
        assert_eq!(f.read(Bdf { bus: 0, device: 17, function: 1 }, 0, 4), u32::MAX);
    }

    /// A service that records each request and answers with `answer` bytes, each the
    /// request's length plus its position, claiming `claim` bytes (`None`: `answer`).
    struct Fake {
        requests: StdMutex<Vec<Vec<u8>>>,
        answer: usize,
        claim: Option<usize>,
    }

    impl Fake {
        fn new(answer: usize) -> Self {
            Self { requests: StdMutex::new(Vec::new()), answer, claim: None }
        }
        fn requests(&self) -> Vec<Vec<u8>> {
            self.requests.lock().unwrap().clone()
        }
    }

    impl MailboxService for &Fake {
        fn serve(&self, request: &[u8], response: &mut [u8]) -> usize {
            assert_eq!(response.len(), RESPONSE_MAX);
            assert!(response.iter().all(|&b| b == 0), "the response buffer starts zeroed");
            self.requests.lock().unwrap().push(request.to_vec());
            for (i, b) in response.iter_mut().take(self.answer).enumerate() {
                *b = (request.len() + i) as u8;
            }
            self.claim.unwrap_or(self.answer)
        }
    }

    fn write_request(mailbox: &Mailbox<&Fake>, bytes: &[u8; REQUEST_BYTES]) {
        for (i, chunk) in bytes.chunks(4).enumerate() {
            let word = u32::from_le_bytes(chunk.try_into().unwrap());
            mailbox.write(REQUEST_OFFSET + 4 * i as u64, 4, u64::from(word));
        }
    }

    #[test]
    fn a_request_is_served_on_the_doorbell_from_the_devices_copy() {
        let fake = Fake::new(40);
        let mailbox = Mailbox::new(&fake);
        assert_eq!(mailbox.read(REG_MAGIC, 4), u64::from(u32::from_le_bytes(*b"RHMG")));
        assert_eq!(mailbox.read(REG_VERSION, 4), u64::from(VERSION));
        assert_eq!(mailbox.read(REG_DONE, 8), 0, "nothing served, no response");
        let request: [u8; REQUEST_BYTES] = core::array::from_fn(|i| 0xA0 + i as u8);
        write_request(&mailbox, &request);
        assert_eq!(mailbox.read(REQUEST_OFFSET, 8), u64::from_le_bytes(request[..8].try_into().unwrap()));
        assert!(fake.requests().is_empty(), "writing the request serves nothing");
        mailbox.write(REG_DOORBELL, 4, REQUEST_BYTES as u64);
        assert_eq!(fake.requests(), [request.to_vec()]);
        assert_eq!(mailbox.read(REG_DONE, 4), 1);
        assert_eq!(mailbox.read(REG_RESPONSE_LEN, 4), 40);
        assert_eq!(mailbox.read(REG_DONE, 8), 40 << 32 | 1, "done count and length in one read");
        assert_eq!(mailbox.read(RESPONSE_OFFSET, 1), 16);
        assert_eq!(
            mailbox.read(RESPONSE_OFFSET + 32, 8),
            u64::from_le_bytes(core::array::from_fn(|i| 48 + i as u8))
        );
        assert_eq!(mailbox.read(RESPONSE_OFFSET + 40, 8), 0, "zero past the response");
        assert_eq!(mailbox.read(REG_DOORBELL, 4), 0, "the doorbell reads 0");
        // The request stays for the next ring; the doorbell serves it again.
        mailbox.write(REG_DOORBELL, 8, 0xFFFF_FFFF_0000_0010);
        assert_eq!(mailbox.read(REG_DONE, 4), 2);
        assert_eq!(fake.requests().len(), 2);
    }

    #[test]
    fn the_doorbell_length_is_capped_and_a_short_one_gives_a_short_request() {
        let fake = Fake::new(8);
        let mailbox = Mailbox::new(&fake);
        write_request(&mailbox, &[7; REQUEST_BYTES]);
        mailbox.write(REG_DOORBELL, 4, 5);
        mailbox.write(REG_DOORBELL, 4, 0);
        mailbox.write(REG_DOORBELL, 4, u64::from(u32::MAX));
        let lengths: Vec<usize> = fake.requests().iter().map(Vec::len).collect();
        assert_eq!(lengths, [5, 0, REQUEST_BYTES]);
        assert_eq!(mailbox.read(REG_DONE, 4), 3);
    }

    #[test]
    fn narrow_or_misaligned_doorbell_writes_and_read_only_fields_change_nothing() {
        let fake = Fake::new(8);
        let mailbox = Mailbox::new(&fake);
        for (offset, size) in
            [(REG_DOORBELL, 1), (REG_DOORBELL, 2), (REG_DOORBELL + 1, 4), (REG_DOORBELL - 4, 8)]
        {
            mailbox.write(offset, size, 16);
        }
        for offset in [REG_MAGIC, REG_VERSION, REG_DONE, REG_RESPONSE_LEN, RESPONSE_OFFSET, 0x80, 0x1FFC] {
            mailbox.write(offset, 4, 0x1234_5678);
        }
        assert!(fake.requests().is_empty());
        assert_eq!(mailbox.read(REG_MAGIC, 4), u64::from(MAGIC));
        assert_eq!(mailbox.read(REG_DONE, 8), 0);
        assert_eq!(mailbox.read(RESPONSE_OFFSET, 8), 0);
        assert_eq!(mailbox.read(0x80, 4), 0);
    }

    #[test]
    fn request_writes_land_byte_by_byte_even_when_they_straddle_the_area() {
        let fake = Fake::new(0);
        let mailbox = Mailbox::new(&fake);
        // Eight bytes from 4 below the area: only the upper four land.
        mailbox.write(REQUEST_OFFSET - 4, 8, 0x4433_2211_DDCC_BBAA);
        // Eight bytes from 4 before its end: only the lower four land.
        mailbox.write(REQUEST_OFFSET + REQUEST_BYTES as u64 - 4, 8, 0x8877_6655_0000_0000 | 0x0F0E_0D0C);
        mailbox.write(REQUEST_OFFSET + 5, 2, 0xBEEF);
        mailbox.write(REQUEST_OFFSET + 9, 1, 0x99);
        let mut expected = [0u8; REQUEST_BYTES];
        expected[..4].copy_from_slice(&[0x11, 0x22, 0x33, 0x44]);
        expected[5..7].copy_from_slice(&[0xEF, 0xBE]);
        expected[9] = 0x99;
        expected[12..].copy_from_slice(&[0x0C, 0x0D, 0x0E, 0x0F]);
        let read: Vec<u8> =
            (0..REQUEST_BYTES as u64).map(|i| mailbox.read(REQUEST_OFFSET + i, 1) as u8).collect();
        assert_eq!(read, expected);
        assert_eq!(
            mailbox.read(REQUEST_OFFSET - 4, 8),
            0x4433_2211_0000_0000,
            "unaligned read across the edge"
        );
        assert_eq!(mailbox.read(REQUEST_OFFSET + REQUEST_BYTES as u64, 4), 0, "past the area");
        mailbox.write(REG_DOORBELL, 4, REQUEST_BYTES as u64);
        assert_eq!(fake.requests(), [expected.to_vec()]);
    }

    #[test]
    fn responses_are_capped_and_never_keep_stale_bytes() {
        let mut fake = Fake::new(RESPONSE_MAX);
        fake.claim = Some(RESPONSE_MAX + 100);
        let mailbox = Mailbox::new(&fake);
        mailbox.write(REG_DOORBELL, 4, 16);
        assert_eq!(mailbox.read(REG_RESPONSE_LEN, 4), RESPONSE_MAX as u64, "capped at the buffer");
        assert_eq!(
            mailbox.read(RESPONSE_OFFSET + RESPONSE_MAX as u64 - 1, 1),
            u64::from((16 + RESPONSE_MAX - 1) as u8)
        );
        assert_eq!(mailbox.read(MAILBOX_BYTES - 4, 8), mailbox.read(MAILBOX_BYTES - 4, 4), "0 past the BAR");
        assert_eq!(mailbox.read(u64::MAX, 8), 0);
        // A shorter answer next: the tail of the previous one is gone.
        let short = Fake::new(4);
        let mailbox = Mailbox::new(&short);
        mailbox.write(REG_DOORBELL, 4, 16);
        assert_eq!(mailbox.read(RESPONSE_OFFSET, 8), 0x1312_1110);
        mailbox.reset();
        assert_eq!(mailbox.read(REG_DONE, 8), 0);
        assert_eq!(mailbox.read(RESPONSE_OFFSET, 8), 0);
        assert_eq!(mailbox.read(REG_MAGIC, 4), u64::from(MAGIC), "reset keeps the identity");
    }

    proptest::proptest! {
        /// Any sequence of accesses at any offset and size: no panic, the identity never
        /// changes, the request area is what its bytes' last writes made it, the done
        /// count is the number of doorbell rings and each ring serves the area's bytes
        /// up to its length.
        #[test]
        fn arbitrary_accesses_keep_the_mailbox_consistent(
            ops in proptest::collection::vec(
                (
                    proptest::prop_oneof![0u64..0x2100, proptest::prelude::Just(REG_DOORBELL), proptest::prelude::any::<u64>()],
                    0u8..10,
                    proptest::prelude::any::<u64>(),
                    proptest::prelude::any::<bool>(),
                ),
                0..200,
            ),
        ) {
            let fake = Fake::new(24);
            let mailbox = Mailbox::new(&fake);
            let mut model = [0u8; REQUEST_BYTES];
            let mut served: Vec<Vec<u8>> = Vec::new();
            for (offset, size, value, is_write) in ops {
                if !is_write {
                    let _ = mailbox.read(offset, size);
                    continue;
                }
                mailbox.write(offset, size, value);
                let width = u64::from(size.clamp(1, 8));
                if offset == REG_DOORBELL && width >= 4 {
                    let len = (value as u32 as usize).min(REQUEST_BYTES);
                    served.push(model[..len].to_vec());
                    continue;
                }
                for i in 0..width {
                    let at = offset.saturating_add(i);
                    if (REQUEST_OFFSET..REQUEST_OFFSET + REQUEST_BYTES as u64).contains(&at) {
                        model[(at - REQUEST_OFFSET) as usize] = (value >> (8 * i)) as u8;
                    }
                }
            }
            proptest::prop_assert_eq!(mailbox.read(REG_MAGIC, 8), u64::from(VERSION) << 32 | u64::from(MAGIC));
            let area: Vec<u8> = (0..REQUEST_BYTES as u64).map(|i| mailbox.read(REQUEST_OFFSET + i, 1) as u8).collect();
            proptest::prop_assert_eq!(area, model.to_vec());
            proptest::prop_assert_eq!(mailbox.read(REG_DONE, 4), served.len() as u64);
            proptest::prop_assert!(mailbox.read(REG_RESPONSE_LEN, 4) <= RESPONSE_MAX as u64);
            proptest::prop_assert_eq!(fake.requests(), served);
        }
    }
}
