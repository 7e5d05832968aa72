//! The `rhctl` binary against a fake sysfs whose mailbox a thread serves with the
//! hypervisor's own decisions: output, messages and exit codes.

mod common;

use std::process::{Command, Output};

use common::{management_function, shared, FakeMachine, MailboxServer, LINUX, SENSOR};
use hallows_core::lifecycle::State;
use rhlink::fake::FakeSysfs;

fn rhctl(sys: &FakeSysfs, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rhctl")).arg("--sysfs").arg(&sys.root).args(args).output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn commands_through_the_mailbox() {
    let sys = FakeSysfs::new();
    let dir = management_function(&sys, "0000:00:07.0");
    let machine = shared(FakeMachine::demo());
    let _server = MailboxServer::start(&dir.join("resource0"), machine.clone(), LINUX);

    let out = rhctl(&sys, &["list"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).starts_with("Name    ID  Kind   State"));
    assert_eq!(text(&out.stdout).lines().count(), 4);

    let out = rhctl(&sys, &["stats", "sensor", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["partitions"][0]["windows"], 1230);

    let out = rhctl(&sys, &["events", "sensor"]);
    assert!(text(&out.stdout).contains("port 0x80 at RIP 0x1234"));

    let out = rhctl(&sys, &["restart", "sensor", "--clean"]);
    assert_eq!(
        (out.status.code(), text(&out.stdout)),
        (Some(0), "restarting sensor (persistent region scrubbed)\n".into())
    );
    let out = rhctl(&sys, &["halt", "sensor"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(machine.lock().unwrap().partitions[SENSOR].state, State::Halted);

    // Refusals: exit status 1 and a message on stderr that says what to do.
    let out = rhctl(&sys, &["restart", "sensor"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "rhctl: sensor is halted: use `rhctl start sensor`\n");
    assert_eq!(text(&out.stdout), "");
    let out = rhctl(&sys, &["restart", "linux"]);
    assert_eq!(
        text(&out.stderr),
        "rhctl: linux is this Linux partition itself: to restart this Linux partition, reboot it\n"
    );
    let out = rhctl(&sys, &["start", "nobody"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("the partitions are: linux, sensor, logger"));

    machine.lock().unwrap().partitions[LINUX].facts.privileges = 0;
    let out = rhctl(&sys, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("lacks `privileges manage`"));
}

#[test]
fn usage_errors_exit_with_2() {
    let sys = FakeSysfs::new();
    for args in [&["restart"][..], &["frobnicate"], &["stats", "--jsn"], &[]] {
        let out = rhctl(&sys, args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
    }
    let out = rhctl(&sys, &["--help"]);
    assert_eq!(out.status.code(), Some(0));
    for command in ["list", "stats", "events", "restart", "halt", "start"] {
        assert!(text(&out.stdout).contains(command), "{command} missing from --help");
    }
}

#[test]
fn no_management_function_is_explained() {
    let sys = FakeSysfs::new();
    let out = rhctl(&sys, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).starts_with(
        "rhctl: no RustHallows management function on the PCI bus: is this Linux running as a RustHallows partition?"
    ));
}
