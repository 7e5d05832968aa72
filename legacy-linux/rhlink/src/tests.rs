//! The whole library against a fake sysfs tree of regular files; the test plays the
//! real-time partition with the ring crate over the same file.

use std::fs;
use std::time::Duration;

use hallows_abi::bridge::*;
use proptest::prelude::*;

use super::fake::{FakeSysfs, Function};
use super::*;

fn counter(k: u64, len: usize) -> Vec<u8> {
    let mut m = k.to_le_bytes().to_vec();
    m.resize(len.max(8), (k % 251) as u8);
    m
}

#[test]
fn list_finds_channel_functions_only_in_address_order() {
    let sys = FakeSysfs::new();
    sys.add(&Function::new("0000:00:05.0", "commands", true, true));
    sys.add(&Function::new("0000:00:04.0", "readings", false, false));
    sys.device("0000:00:01.0", 0x8086, 0x7000, 0); // a bridge
    sys.device("0000:00:06.0", PCI_VENDOR_ID, PCI_DEVICE_ID, 0x1100); // someone else's ivshmem
    let list = sys.bridge().list().unwrap();
    let summary: Vec<_> = list.iter().map(|c| (c.name.as_str(), c.kind, c.direction, c.msg_size)).collect();
    assert_eq!(
        summary,
        [
            ("readings", Kind::Sampling, Direction::LinuxReads, 64),
            ("commands", Kind::Queuing, Direction::LinuxWrites, 64)
        ]
    );
    assert_eq!(list[1].depth, 8);
    assert_eq!((list[1].peer_state, list[1].index), (PeerState::Running, 7));
    assert_eq!(device_name(&list[1].path), "0000:00:05.0");
}

#[test]
fn clear_errors_for_missing_channels_wrong_direction_and_large_messages() {
    let sys = FakeSysfs::new();
    sys.add(&Function::new("0000:00:04.0", "commands", true, true));
    sys.add(&Function::new("0000:00:05.0", "readings", true, false));
    let bridge = sys.bridge();
    assert!(matches!(bridge.open("nope"), Err(Error::NoSuchChannel(n)) if n == "nope"));
    let e = bridge.open("commands").unwrap().receiver().unwrap_err();
    assert!(matches!(e, Error::WrongDirection { linux_writes: true, .. }), "{e:?}");
    assert!(e.to_string().contains("Linux writes channel commands"));
    let e = bridge.open("readings").unwrap().sender().unwrap_err();
    assert!(matches!(e, Error::WrongDirection { linux_writes: false, .. }), "{e:?}");
    let mut tx = bridge.open("commands").unwrap().sender().unwrap();
    let e = tx.try_send(&[0; 65]).unwrap_err();
    assert!(matches!(e, Error::MessageTooLarge { len: 65, max: 64 }), "{e:?}");
    assert_eq!(e.to_string(), "message too large: 65 bytes, the channel carries at most 64");
}

#[test]
fn linux_to_rt_queue_delivers_in_order_and_blocks_when_full() {
    let sys = FakeSysfs::new();
    let f = Function::new("0000:00:04.0", "commands", true, true);
    sys.add(&f);
    let mut tx = sys.bridge().open("commands").unwrap().sender().unwrap();
    let pages = sys.peer_pages(&f);
    let region = pages.region();
    let mut rt = QueueReader::over(region, f.geometry()).unwrap();
    let mut buf = [0u8; 64];
    for round in 0..5u64 {
        for k in 0..8 {
            tx.try_send(&counter(round * 8 + k, 20)).unwrap();
        }
        assert!(matches!(tx.try_send(b"x"), Err(Error::WouldBlock)));
        assert!(matches!(tx.send_timeout(b"x", Duration::from_millis(5)), Err(Error::WouldBlock)));
        for k in 0..8 {
            assert_eq!(rt.receive(&mut buf), Ok(Some(20)));
            assert_eq!(buf[..20], counter(round * 8 + k, 20));
        }
    }
}

#[test]
fn rt_to_linux_queue_is_received_blocking_and_non_blocking() {
    let sys = FakeSysfs::new();
    let f = Function::new("0000:00:04.0", "readings", true, false);
    sys.add(&f);
    let mut rx = sys.bridge().open("readings").unwrap().receiver().unwrap();
    let pages = sys.peer_pages(&f);
    let region = pages.region();
    let mut rt = QueueWriter::over(region, f.geometry()).unwrap();
    let mut buf = [0u8; 64];
    assert!(rx.try_recv(&mut buf).unwrap().is_none());
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::from_millis(5)), Err(Error::WouldBlock)));
    std::thread::scope(|s| {
        s.spawn(move || {
            for k in 0..1000u64 {
                while rt.send(&counter(k, 16)) == Err(RingError::Full) {
                    std::thread::yield_now();
                }
            }
        });
        for k in 0..1000u64 {
            let m = rx.recv(&mut buf).unwrap();
            assert_eq!(buf[..m.len], counter(k, 16));
        }
    });
    assert!(rx.try_recv(&mut buf).unwrap().is_none());
}

#[test]
fn sampling_both_ways() {
    let sys = FakeSysfs::new();
    let out = Function::new("0000:00:04.0", "setpoint", false, true);
    let inn = Function::new("0000:00:05.0", "status", false, false);
    sys.add(&out);
    sys.add(&inn);
    let bridge = sys.bridge();
    let mut tx = bridge.open("setpoint").unwrap().sender().unwrap();
    let mut rx = bridge.open("status").unwrap().receiver().unwrap();
    let p1 = sys.peer_pages(&out);
    let r1 = p1.region();
    let p2 = sys.peer_pages(&inn);
    let r2 = p2.region();
    let mut rt_reader = SampleReader::over(r1, out.geometry()).unwrap();
    let mut rt_writer = SampleWriter::over(r2, inn.geometry()).unwrap();
    let mut buf = [0u8; 64];
    for k in 0..10u64 {
        tx.try_send(&counter(k, 12)).unwrap();
        tx.send(&counter(k + 100, 12)).unwrap();
        let s = rt_reader.read(&mut buf).unwrap().unwrap();
        assert_eq!((buf[..s.len].to_vec(), s.fresh), (counter(k + 100, 12), true));
        rt_writer.write(&counter(k, 30)).unwrap();
        let m = rx.recv(&mut buf).unwrap();
        assert_eq!(buf[..m.len], counter(k, 30));
        assert_eq!(m.count, k + 1);
        // Not new: nothing to receive, but the latest value is still readable.
        assert!(rx.try_recv(&mut buf).unwrap().is_none());
        assert_eq!(rx.read_latest(&mut buf).unwrap().map(|m| m.count), Some(k + 1));
    }
}

#[test]
fn a_halted_peer_is_reported() {
    let sys = FakeSysfs::new();
    let mut halted = Function::new("0000:00:04.0", "dead", true, false);
    halted.peer = PEER_HALTED;
    sys.add(&halted);
    sys.add(&Function::new("0000:00:05.0", "commands", true, true));
    sys.add(&Function::new("0000:00:06.0", "readings", true, false));
    let bridge = sys.bridge();
    let e = bridge.open("dead").unwrap_err();
    assert!(matches!(e, Error::PeerNotRunning { state: PeerState::Halted, .. }), "{e:?}");
    assert_eq!(e.to_string(), "peer not running: the other end of dead is halted");
    let mut tx = bridge.open("commands").unwrap().sender().unwrap();
    let mut rx = bridge.open("readings").unwrap().receiver().unwrap();
    for _ in 0..8 {
        tx.send(b"cmd").unwrap();
    }
    sys.set_register("0000:00:05.0", REG_PEER_STATE, PEER_HALTED);
    sys.set_register("0000:00:06.0", REG_PEER_STATE, PEER_HALTED);
    assert_eq!(tx.peer_state(), PeerState::Halted, "the register is read live");
    assert!(matches!(tx.send(b"cmd"), Err(Error::PeerNotRunning { .. })));
    let mut buf = [0u8; 64];
    assert!(matches!(rx.recv(&mut buf), Err(Error::PeerNotRunning { .. })));
    sys.set_register("0000:00:06.0", REG_PEER_STATE, PEER_RESTARTING);
    assert!(matches!(rx.recv_timeout(&mut buf, Duration::from_millis(20)), Err(Error::WouldBlock)));
}

#[test]
fn register_blocks_that_do_not_match_the_layout_are_refused() {
    let sys = FakeSysfs::new();
    sys.add(&Function::new("0000:00:04.0", "a", true, true));
    sys.set_register("0000:00:04.0", REG_MAGIC, 0x1234);
    assert!(matches!(sys.bridge().list(), Err(Error::BadDevice { .. })));
    sys.set_register("0000:00:04.0", REG_MAGIC, REGISTER_MAGIC);
    sys.set_register("0000:00:04.0", REG_VERSION, LAYOUT_VERSION + 1);
    assert!(matches!(sys.bridge().list(), Err(Error::BadDevice { .. })));
    sys.set_register("0000:00:04.0", REG_VERSION, LAYOUT_VERSION);
    sys.set_register("0000:00:04.0", REG_DEPTH, 40); // region bytes no longer match
    let e = sys.bridge().list().unwrap_err();
    assert!(e.to_string().contains("does not match the layout"), "{e}");
    sys.set_register("0000:00:04.0", REG_DEPTH, 0);
    assert!(matches!(sys.bridge().list(), Err(Error::BadDevice { .. })));
    sys.set_register("0000:00:04.0", REG_DEPTH, 8);
    assert_eq!(sys.bridge().list().unwrap().len(), 1);
}

/// The protection of the mapping that contains `address`, from /proc/self/maps.
fn protection_at(address: usize) -> String {
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    for line in maps.lines() {
        let (range, rest) = line.split_once(' ').unwrap();
        let (start, end) = range.split_once('-').unwrap();
        let (start, end) =
            (usize::from_str_radix(start, 16).unwrap(), usize::from_str_radix(end, 16).unwrap());
        if (start..end).contains(&address) {
            return rest[..4].to_string();
        }
    }
    panic!("{address:#x} is not mapped")
}

#[test]
fn only_the_pages_of_linux_s_role_are_mapped_writable() {
    let sys = FakeSysfs::new();
    let w = Function::new("0000:00:04.0", "out", true, true);
    let r = Function::new("0000:00:05.0", "in", true, false);
    sys.add(&w);
    sys.add(&r);
    let tx = sys.bridge().open("out").unwrap().sender().unwrap();
    let rx = sys.bridge().open("in").unwrap().receiver().unwrap();
    let writer_bytes = w.geometry().writer_bytes() as usize;
    let (tx_base, rx_base) = (tx._pages.base() as usize, rx._pages.base() as usize);
    assert_eq!(protection_at(tx_base), "rw-s");
    assert_eq!(protection_at(tx_base + writer_bytes - 1), "rw-s");
    assert_eq!(protection_at(tx_base + writer_bytes), "r--s");
    assert_eq!(protection_at(rx_base), "r--s");
    assert_eq!(protection_at(rx_base + writer_bytes - 1), "r--s");
    assert_eq!(protection_at(rx_base + writer_bytes), "rw-s");
    assert_eq!(protection_at(tx.channel.registers.base() as usize), "r--s");
}

#[test]
fn functions_are_found_by_vendor_device_and_class() {
    let sys = FakeSysfs::new();
    let class = |address: &str, class: &str| fs::write(sys.root.join(address).join("class"), class).unwrap();
    sys.device("0000:00:09.0", 0x1af4, 0x1111, 0);
    class("0000:00:09.0", "0x088000\n");
    sys.device("0000:00:03.0", 0x1af4, 0x1111, 0);
    class("0000:00:03.0", "0x088000\n");
    sys.device("0000:00:04.0", 0x1af4, 0x1111, 0);
    class("0000:00:04.0", "0x020000\n"); // same ids, another class
    sys.device("0000:00:05.0", 0x1af4, 0x1110, 0);
    class("0000:00:05.0", "0x088000\n"); // another device
    sys.device("0000:00:06.0", 0x1af4, 0x1111, 0); // no class file
    let found = find_functions(&sys.root, 0x1af4, 0x1111, 0x08_80_00).unwrap();
    let names: Vec<String> = found.iter().map(|p| device_name(p)).collect();
    assert_eq!(names, ["0000:00:03.0", "0000:00:09.0"]);
    assert!(find_functions(&sys.root.join("missing"), 0x1af4, 0x1111, 0).is_err());
}

#[test]
fn words_are_written_only_inside_the_writable_part() {
    let sys = FakeSysfs::new();
    let path = sys.root.join("mailbox");
    let page = page_size();
    fs::write(&path, vec![0u8; 2 * page]).unwrap();
    let mapping = Mapping::open(&path, 2 * page, Writable::Range { start: 0, len: page }).unwrap();
    mapping.write_u32(8, 0x1234_5678);
    mapping.write_u32(page - 4, 7);
    assert_eq!((mapping.read_u32(8), mapping.read_u32(page - 4)), (0x1234_5678, 7));
    assert_eq!(&fs::read(&path).unwrap()[8..12], &0x1234_5678u32.to_le_bytes());
    assert_eq!(protection_at(mapping.base() as usize + page), "r--s");
    for outside in [page, page - 2, 2 * page] {
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| mapping.write_u32(outside, 1)));
        assert!(caught.is_err(), "a write at {outside:#x} was allowed");
    }
}

#[test]
fn scribbling_stays_in_the_writer_pages_and_the_rt_reader_copes() {
    for queuing in [true, false] {
        let sys = FakeSysfs::new();
        let f = Function::new("0000:00:04.0", "commands", queuing, true);
        let dir = sys.add(&f);
        let writer_bytes = f.geometry().writer_bytes() as usize;
        let mut tx = sys.bridge().open("commands").unwrap().sender().unwrap();
        // Mark everything past the writer pages, scribble a lot, and find the marks intact.
        let mut file = fs::read(dir.join("resource2")).unwrap();
        file[writer_bytes..].fill(0x5A);
        fs::write(dir.join("resource2"), &file).unwrap();
        let mut seed = 42;
        tx.scribble(&mut seed, 10_000);
        let file = fs::read(dir.join("resource2")).unwrap();
        assert!(file[writer_bytes..].iter().all(|&b| b == 0x5A), "wrote outside the writer pages");
        assert!(file[..writer_bytes].iter().any(|&b| b != 0), "wrote nothing");
        file_reset(&dir, file.len());

        // An RT reader against a Linux writer that scribbles between its messages.
        let pages = sys.peer_pages(&f);
        let region = pages.region();
        let mut buf = [0u8; 64];
        let mut errors = 0;
        if queuing {
            let mut rt = QueueReader::over(region, f.geometry()).unwrap();
            for _ in 0..200 {
                tx.scribble(&mut seed, 16);
                for _ in 0..10 {
                    match rt.receive(&mut buf) {
                        Ok(Some(n)) => assert!(n <= 64),
                        Ok(None) => break,
                        Err(RingError::Inconsistent) => errors += 1,
                        Err(e) => panic!("{e:?}"),
                    }
                }
            }
        } else {
            let mut rt = SampleReader::over(region, f.geometry()).unwrap();
            for _ in 0..200 {
                tx.scribble(&mut seed, 16);
                match rt.read(&mut buf) {
                    Ok(Some(s)) => assert!(s.len <= 64),
                    Ok(None) => {}
                    Err(RingError::Inconsistent) => errors += 1,
                    Err(e) => panic!("{e:?}"),
                }
            }
        }
        assert!(errors > 0, "garbage went unnoticed (queuing {queuing})");
    }
}

/// Zeroes a function's shared pages (in place: the mappings stay valid).
fn file_reset(dir: &std::path::Path, len: usize) {
    fs::OpenOptions::new()
        .write(true)
        .open(dir.join("resource2"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, &vec![0u8; len]))
        .unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// A hostile real-time writer scribbles over its pages between Linux's receives: Linux
    /// gets errors or messages, never a panic, and stays within its mapping (a stray access
    /// would fault the test process).
    #[test]
    fn a_hostile_rt_writer_cannot_hurt_the_linux_reader(
        queuing: bool,
        words in proptest::collection::vec((0usize..4096, any::<u64>()), 1..64),
    ) {
        let sys = FakeSysfs::new();
        let f = Function::new("0000:00:04.0", "readings", queuing, false);
        sys.add(&f);
        let mut rx = sys.bridge().open("readings").unwrap().receiver().unwrap();
        let pages = sys.peer_pages(&f);
    let region = pages.region();
        let writer_bytes = f.geometry().writer_bytes() as usize;
        let mut buf = [0u8; 64];
        for (at, value) in words {
            let at = (at * 8) % writer_bytes;
            // SAFETY: (test) inside the peer's mapping of the writer pages, aligned.
            unsafe { region.base().add(at).cast::<u64>().write_volatile(value) };
            for _ in 0..4 {
                match rx.try_recv(&mut buf) {
                    Ok(Some(m)) => prop_assert!(m.len <= 64),
                    Ok(None) | Err(Error::Inconsistent) => {}
                    Err(e) => prop_assert!(false, "unexpected {e:?}"),
                }
            }
        }
    }
}
