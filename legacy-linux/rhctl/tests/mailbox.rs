//! The mailbox transport against a fake sysfs: discovery, the checks at open, the bytes
//! of an exchange, a thread serving the doorbell as the hypervisor does, and two clients
//! at once (the `flock`).

mod common;

use std::fs;
use std::time::Duration;

use common::{management_function, shared, FakeMachine, MailboxServer, LINUX, SENSOR};
use hallows_abi::manage::mailbox::{
    MAILBOX_BYTES, PCI_CLASS, PCI_DEVICE_ID, REG_DONE, REG_DOORBELL, REG_MAGIC, REG_RESPONSE_LEN,
    REG_VERSION, REQUEST_OFFSET,
};
use hallows_abi::manage::{Op, Request, REQUEST_BYTES};
use rhctl::client::Client;
use rhctl::mailbox::{self, Mailbox};
use rhctl::{Error, Transport};
use rhlink::fake::FakeSysfs;

fn set_word(path: &std::path::Path, offset: u64, value: u32) {
    let mut bytes = fs::read(path).unwrap();
    bytes[offset as usize..][..4].copy_from_slice(&value.to_le_bytes());
    fs::write(path, bytes).unwrap();
}

fn word(bytes: &[u8], offset: u64) -> u32 {
    u32::from_le_bytes(bytes[offset as usize..][..4].try_into().unwrap())
}

#[test]
fn the_function_is_found_by_its_ids_and_class() {
    let sys = FakeSysfs::new();
    // A channel function (same vendor, another device) and one with the right ids but
    // another class are not it.
    sys.device("0000:00:01.0", 0x1af4, 0x1110, 0x5248);
    let other = sys.device("0000:00:02.0", 0x1af4, PCI_DEVICE_ID, 0);
    fs::write(other.join("class"), "0x020000\n").unwrap();
    match mailbox::find(&sys.root) {
        Err(e @ Error::NoManagementFunction { .. }) => assert!(
            e.to_string().starts_with(
                "no RustHallows management function on the PCI bus: is this Linux running as a RustHallows partition?"
            ),
            "{e}"
        ),
        other => panic!("{other:?}"),
    }
    let dir = management_function(&sys, "0000:00:07.0");
    assert_eq!(mailbox::find(&sys.root).unwrap(), dir);
    assert_eq!(fs::read_to_string(dir.join("class")).unwrap(), format!("{PCI_CLASS:#08x}\n"));
}

#[test]
fn a_mailbox_that_is_not_ours_is_refused_at_open() {
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    let resource = dir.join("resource0");
    set_word(&resource, REG_MAGIC, 0x1234);
    let e = Mailbox::open(&sys.root).err().unwrap();
    assert!(e.to_string().ends_with("mailbox magic 0x00001234 is not RHMG"), "{e}");
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    set_word(&dir.join("resource0"), REG_VERSION, 9);
    let e = Mailbox::open(&sys.root).err().unwrap();
    assert!(
        e.to_string().ends_with("mailbox speaks version 9 of the management interface, rhctl speaks 1"),
        "{e}"
    );
    // A BAR shorter than the mailbox.
    fs::write(dir.join("resource0"), [0u8; 64]).unwrap();
    assert!(matches!(Mailbox::open(&sys.root), Err(Error::Io { .. })));
}

#[test]
fn not_being_allowed_to_open_resource0_says_root_is_needed() {
    let e = Error::NotPermitted { path: "/sys/bus/pci/devices/0000:00:07.0/resource0".into() };
    assert_eq!(
        e.to_string(),
        "permission denied opening /sys/bus/pci/devices/0000:00:07.0/resource0: managing partitions needs \
         root (the file's permissions decide who may manage)"
    );
    // As a user without rights to the file (root is allowed whatever the mode says).
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    let resource = dir.join("resource0");
    std::process::Command::new("chmod").arg("000").arg(&resource).status().unwrap();
    let euid = std::process::Command::new("id").arg("-u").output().unwrap().stdout;
    if String::from_utf8_lossy(&euid).trim() != "0" {
        assert!(matches!(Mailbox::open(&sys.root), Err(Error::NotPermitted { .. })));
    }
}

#[test]
fn an_exchange_writes_the_request_and_rings_the_doorbell_then_waits_for_done() {
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    let resource = dir.join("resource0");
    // Nobody serves: the exchange gives up, having written the request and its length.
    let mut mailbox = Mailbox::open(&sys.root).unwrap().with_timeout(Duration::from_millis(50));
    let request = Request::new(Op::Restart, 2, 1).encode();
    match mailbox.exchange(&request) {
        Err(e @ Error::NoAnswer { .. }) => {
            assert!(e.to_string().ends_with("the hypervisor did not serve the request within 50 ms"))
        }
        other => panic!("{other:?}"),
    }
    let bar = fs::read(&resource).unwrap();
    assert_eq!(bar.len(), MAILBOX_BYTES as usize);
    assert_eq!(&bar[REQUEST_OFFSET as usize..][..REQUEST_BYTES], &request);
    assert_eq!(word(&bar, REG_DOORBELL), REQUEST_BYTES as u32);

    // With a thread serving the doorbell as the hypervisor does, the answer comes back
    // whole and the mailbox is left ready for the next request.
    let sys2 = FakeSysfs::new();
    let dir2 = management_function(&sys2, "0000:00:07.0");
    let machine = shared(FakeMachine::demo());
    let _server = MailboxServer::start(&dir2.join("resource0"), machine, LINUX);
    let mut served = Mailbox::open(&sys2.root).unwrap();
    let response = served.exchange(&Request::new(Op::Stats, SENSOR as u32, 0).encode()).unwrap();
    assert_eq!(response.len(), 8 + hallows_abi::manage::StatsRecord::BYTES);
    let after = fs::read(dir2.join("resource0")).unwrap();
    assert_eq!(word(&after, REG_DONE), 1);
    assert_eq!(word(&after, REG_DOORBELL), 0);
}

#[test]
fn a_response_longer_than_the_mailbox_is_refused() {
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    let resource = dir.join("resource0");
    let mut mailbox = Mailbox::open(&sys.root).unwrap().with_timeout(Duration::from_secs(5));
    // A hypervisor that answers with an impossible length.
    let bar = rhlink::Mapping::open(
        &resource,
        MAILBOX_BYTES as usize,
        rhlink::Writable::Range { start: 0, len: MAILBOX_BYTES as usize },
    )
    .unwrap();
    let liar = std::thread::spawn(move || {
        while bar.read_u32(REG_DOORBELL as usize) == 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
        bar.write_u32(REG_RESPONSE_LEN as usize, 4097);
        bar.write_u32(REG_DONE as usize, 1);
    });
    let e = mailbox.exchange(&Request::new(Op::List, 0, 0).encode()).unwrap_err();
    liar.join().unwrap();
    assert!(e.to_string().ends_with("response of 4097 bytes, at most 4096 fit"), "{e}");
}

#[test]
fn the_client_over_the_mailbox_lists_and_restarts() {
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    let machine = shared(FakeMachine::demo());
    let _server = MailboxServer::start(&dir.join("resource0"), machine.clone(), LINUX);
    let mut client = Client::new(Mailbox::open(&sys.root).unwrap());
    let names: Vec<String> =
        client.list().unwrap().iter().map(|r| rhctl::client::name(r).to_string()).collect();
    assert_eq!(names, ["linux", "sensor", "logger"]);
    assert_eq!(client.events(SENSOR as u32).unwrap().total, 2);
    client.restart(SENSOR as u32, true).unwrap();
    assert_eq!(machine.lock().unwrap().partitions[SENSOR].restarts, 2);
    assert!(matches!(
        client.start(SENSOR as u32),
        Err(Error::Refused { status: hallows_abi::manage::Status::WrongState, .. })
    ));
}

#[test]
fn two_clients_at_once_never_mix_their_exchanges() {
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    let machine = shared(FakeMachine::demo());
    let _server = MailboxServer::start(&dir.join("resource0"), machine, LINUX);
    // Each client has its own open file (as two processes would): the flock orders them.
    let clients: Vec<_> = (0..2u32)
        .map(|who| {
            let root = sys.root.clone();
            std::thread::spawn(move || {
                let mut client = Client::new(Mailbox::open(&root).unwrap());
                for _ in 0..150 {
                    // Each asks about its own partition and must get its answer.
                    let target = 1 + who;
                    assert_eq!(client.stats(target).unwrap().index, target);
                }
            })
        })
        .collect();
    for c in clients {
        c.join().unwrap();
    }
}
