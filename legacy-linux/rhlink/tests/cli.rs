//! The `rhlink` binary against a fake sysfs tree; the test plays the real-time partition.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use hallows_ring::{QueueReader, QueueWriter, SampleWriter};
use rhlink::fake::{FakeSysfs, Function};

fn rhlink(sys: &FakeSysfs, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rhlink"))
        .arg("--sysfs")
        .arg(&sys.root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that does not read stdin may have exited already (broken pipe).
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn list_send_recv_and_errors() {
    let sys = FakeSysfs::new();
    let commands = Function::new("0000:00:04.0", "commands", true, true);
    let readings = Function::new("0000:00:05.0", "readings", true, false);
    let status = Function::new("0000:00:06.0", "status", false, false);
    for f in [&commands, &readings, &status] {
        sys.add(f);
    }

    let out = rhlink(&sys, &["list"], b"");
    assert!(out.status.success());
    assert_eq!(
        text(&out.stdout),
        "commands queuing linux->rt message 64 B depth 8 peer running pci 0000:00:04.0\n\
         readings queuing rt->linux message 64 B depth 8 peer running pci 0000:00:05.0\n\
         status sampling rt->linux message 64 B depth 1 peer running pci 0000:00:06.0\n\
         3 channel(s)\n"
    );

    // Lines of stdin, one message each, arrive at the RT reader.
    let peer = sys.peer_pages(&commands);
    let mut rt = QueueReader::over(peer.region(), commands.geometry()).unwrap();
    let out = rhlink(&sys, &["send", "commands"], b"start\nstop\n");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut buf = [0u8; 64];
    for want in [&b"start"[..], b"stop"] {
        let n = rt.receive(&mut buf).unwrap().unwrap();
        assert_eq!(&buf[..n], want);
    }

    // Counter messages from the RT writer, received in order with the sequence check.
    let peer = sys.peer_pages(&readings);
    let mut rt = QueueWriter::over(peer.region(), readings.geometry()).unwrap();
    for k in 5u64..10 {
        rt.send(&k.to_le_bytes()).unwrap();
    }
    let out = rhlink(&sys, &["recv", "readings", "--count", "5", "--sequence"], b"");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "5\n6\n7\n8\n9\n");
    for k in [10u64, 12] {
        rt.send(&k.to_le_bytes()).unwrap();
    }
    let out = rhlink(&sys, &["recv", "readings", "--count", "2", "--sequence"], b"");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("expected counter 11, got 12"), "{}", text(&out.stderr));
    // Without --count or --follow: what is there, as text, then stop.
    rt.send(b"reading 0000001\0\0\0").unwrap();
    let out = rhlink(&sys, &["recv", "readings"], b"");
    assert_eq!(text(&out.stdout), "reading 0000001\n");

    // A sampling value is printed once it exists.
    let peer = sys.peer_pages(&status);
    let mut rt = SampleWriter::over(peer.region(), status.geometry()).unwrap();
    rt.write(b"ok").unwrap();
    let out = rhlink(&sys, &["recv", "status", "--count", "1"], b"");
    assert_eq!(text(&out.stdout), "ok\n");

    // Errors: no such channel, wrong direction, message too large, timeout.
    let out = rhlink(&sys, &["send", "nope"], b"x\n");
    assert_eq!(text(&out.stderr), "rhlink: no such channel: nope\n");
    let out = rhlink(&sys, &["send", "readings"], b"x\n");
    assert!(text(&out.stderr).contains("wrong direction: Linux reads channel readings"));
    let out = rhlink(&sys, &["send", "commands", "--count", "1", "--size", "65"], b"");
    assert!(text(&out.stderr).contains("message too large: 65 bytes"), "{}", text(&out.stderr));
    let out = rhlink(&sys, &["recv", "readings", "--count", "1", "--timeout-ms", "10"], b"");
    assert_eq!(
        (out.status.success(), text(&out.stderr)),
        (false, "rhlink: would block: the queue is full, or nothing arrived in time\n".into())
    );
}
