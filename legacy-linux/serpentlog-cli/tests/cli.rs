//! The `serpentlog` binary against a fake sysfs: the test plays the broker partition at the
//! other end of the channel pair (the ring protocol over the same files, `serve` and the
//! vector-backed engine), in a thread.

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use hallows_ring::{QueueReader, QueueWriter, RingError};
use rhlink::fake::{FakeSysfs, Function};
use serpentlog::serve::Server;
use serpentlog::testing::MemoryEngine;

fn serpentlog(sys: &FakeSysfs, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_serpentlog"))
        .arg("--sysfs")
        .arg(&sys.root)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

/// Runs legacy-linux/rhlink/tests-initramfs/serpentlog.sh with `serpentlog` on its PATH
/// (a wrapper adding `--sysfs`) and `env` as the kernel command line would set it.
fn initramfs_script(sys: &FakeSysfs, env: &[(&str, &str)]) -> Output {
    let bin = sys.root.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let wrapper = bin.join("serpentlog");
    let script = format!(
        "#!/bin/sh\nexec '{}' --sysfs '{}' \"$@\"\n",
        env!("CARGO_BIN_EXE_serpentlog"),
        sys.root.display()
    );
    std::fs::write(&wrapper, script).unwrap();
    Command::new("chmod").arg("755").arg(&wrapper).status().unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../rhlink/tests-initramfs/serpentlog.sh");
    Command::new("sh").arg(script).env("PATH", path).envs(env.iter().copied()).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn channel(address: &'static str, name: &'static str, linux_writes: bool) -> Function {
    Function { msg_size: 1024, depth: 16, ..Function::new(address, name, true, linux_writes) }
}

/// Serves requests on the pair until `stop`.
fn broker(sys: &FakeSysfs, requests: &Function, responses: &Function, stop: &AtomicBool) -> MemoryEngine {
    let (req_pages, resp_pages) = (sys.peer_pages(requests), sys.peer_pages(responses));
    let mut rx = QueueReader::over(req_pages.region(), requests.geometry()).unwrap();
    let mut tx = QueueWriter::over(resp_pages.region(), responses.geometry()).unwrap();
    let mut engine = MemoryEngine::new(&[("sensor", 1), ("events", 2)]);
    let mut server = Server::new();
    let (mut request, mut response) = ([0u8; 1024], [0u8; 1024]);
    while !stop.load(Ordering::Relaxed) {
        match rx.receive(&mut request) {
            Ok(Some(n)) => {
                let len = server.serve(&mut engine, &request[..n], 0, &mut response);
                loop {
                    match tx.send(&response[..len]) {
                        Err(RingError::Full) if !stop.load(Ordering::Relaxed) => std::thread::yield_now(),
                        _ => break,
                    }
                }
            }
            _ => std::thread::sleep(std::time::Duration::from_micros(50)),
        }
    }
    engine
}

/// Sets the flag when dropped (also while a panic unwinds).
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn produce_consume_topics_bench_over_the_channel_pair() {
    let sys = FakeSysfs::new();
    let requests = channel("0000:00:04.0", "linux_req", true);
    let responses = channel("0000:00:05.0", "linux_resp", false);
    sys.add(&requests);
    sys.add(&responses);
    let stop = AtomicBool::new(false);
    let engine = std::thread::scope(|scope| {
        let peer = scope.spawn(|| broker(&sys, &requests, &responses, &stop));
        // A failed assertion below must stop the broker too, or the scope waits forever.
        let _stop_on_panic = StopOnDrop(&stop);

        let out = serpentlog(&sys, &["produce", "sensor"], b"hello\nworld\n");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "produced 2 records to sensor partition 0 offsets 0..=1\n");

        let out = serpentlog(
            &sys,
            &["produce", "events", "--partition", "1", "--count", "3000", "--size", "32"],
            b"",
        );
        assert!(out.status.success(), "{}", text(&out.stderr));

        let out = serpentlog(&sys, &["consume", "sensor", "--group", "g"], b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout), "offset 0: hello\noffset 1: world\n");

        let out = serpentlog(
            &sys,
            &["consume", "events", "--partition", "1", "--sequence", "--count", "3000"],
            b"",
        );
        assert!(out.status.success(), "{}", text(&out.stderr));
        assert_eq!(text(&out.stdout).lines().last(), Some("offset 2999: counter 3000"));

        let out = serpentlog(&sys, &["topics"], b"");
        assert_eq!(
            text(&out.stdout),
            "topic sensor partition 0 start 0 end 2\ntopic events partition 0 start 0 end 0\n\
             topic events partition 1 start 0 end 3000\n"
        );

        let out = serpentlog(&sys, &["bench", "events", "--count", "2000", "--size", "100"], b"");
        assert!(out.status.success(), "{}", text(&out.stderr));
        let report = text(&out.stdout);
        assert!(
            report.contains("bench produce: 2000 records of 100 bytes")
                && report.contains("bench consume: 2000 records"),
            "{report}"
        );
        eprintln!("{report}");

        // The initramfs script, with `serpentlog` on its PATH pointed at the fake sysfs.
        let out = initramfs_script(&sys, &[("sltopic", "events"), ("slpartition", "1"), ("slcount", "700")]);
        let stdout = text(&out.stdout);
        assert!(
            stdout.contains("SERPENTLOG-LAST offset 3699: counter 700\n")
                && stdout.contains("SERPENTLOG-SENSOR offset 1: world\n")
                && stdout.contains("SERPENTLOG-TOPICS topic events partition 1 start 0 end 3700\n")
                && stdout.ends_with("RHTEST-RESULT ok\n"),
            "{}{}",
            stdout,
            text(&out.stderr)
        );

        let out = serpentlog(&sys, &["consume", "nope"], b"");
        assert!(!out.status.success());
        assert!(text(&out.stderr).contains("unknown topic `nope`"), "{}", text(&out.stderr));

        stop.store(true, Ordering::Relaxed);
        peer.join().unwrap()
    });
    assert_eq!(engine.values("sensor", 0), [b"hello".to_vec(), b"world".to_vec()]);
    assert_eq!(engine.values("events", 0).len(), 2000);
}

#[test]
fn missing_channels_say_what_to_do() {
    let sys = FakeSysfs::new();
    let out = serpentlog(&sys, &["--client", "rt7", "topics"], b"");
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(
        err.contains("no channel rt7_req") && err.contains("rt7_resp") && err.contains("rhlink list"),
        "{err}"
    );
}

#[test]
fn a_silent_broker_times_out_with_advice() {
    let sys = FakeSysfs::new();
    sys.add(&channel("0000:00:04.0", "linux_req", true));
    sys.add(&channel("0000:00:05.0", "linux_resp", false));
    let out = serpentlog(&sys, &["--timeout-ms", "50", "topics"], b"");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no answer from the broker"), "{}", text(&out.stderr));
}
