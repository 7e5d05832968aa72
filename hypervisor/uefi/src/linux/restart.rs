//! Restarting a Linux partition (issue 12): after a reset request or a triple fault whose
//! table action is `restart` (decided by `hallows_core::vcpu::after_health` within the
//! restart budget), every vCPU of the partition leaves the guest (the stop flag and NMIs
//! of `LinuxVcpu::stop_partition`) and parks on its core; once all are parked, the boot
//! vCPU scrubs the partition's RAM, lays out the kernel and initramfs kept since boot as
//! boot did (`BootFiles::lay_out`), resets the device models and enters the boot entry
//! state again; the other vCPUs wait for its SIPI as at boot. The meeting is
//! `hallows_core::linux_vcpu::restart::Rendezvous`. Channels keep their shared pages (their
//! peers run on) and the console prefix stays the partition's.

use core::sync::atomic::Ordering;

use hallows_core::lifecycle::{Cause, Event};
use hallows_core::linux_vcpu::restart::RestartStep;
use hallows_core::linux_vcpu::stats::MarkerMatch;
use hallows_vmm::uart16550::Uart16550;

use super::vcpu::LinuxVcpu;
use crate::cpu;
use crate::machine::Machine;
use crate::vmx::GuestRegs;

/// A stopped Linux vCPU's turn in a restart of its partition.
pub enum Restarting {
    /// No restart concerns it: it stays stopped.
    No,
    /// A restart is under way: come back later.
    Wait,
    /// The partition was rebuilt: the vCPU starts from these registers (the boot vCPU at
    /// the boot entry state; the others wait for a SIPI, `awaiting_sipi`).
    Booted(GuestRegs),
}

impl LinuxVcpu {
    /// The health monitor (or another partition, or the operator: `cause`) chose to
    /// restart the partition: stops every vCPU of it (the first event of a restart does;
    /// later ones before it is done change nothing).
    pub fn begin_restart(&self, cause: Cause) {
        let _ = self.p.apply(Event::Restart(cause));
        if self.linux.rendezvous.request() {
            // The statistics of the next boot count from the request (request -> /init).
            self.linux.first_entry_tsc.store(cpu::rdtsc(), Ordering::SeqCst);
            self.linux.init_marker_tsc.store(0, Ordering::SeqCst);
        }
        self.stop_partition();
    }

    /// What this stopped vCPU does now about a restart of its partition.
    pub fn restart_turn(&mut self, m: &Machine) -> Restarting {
        let vcpus = self.linux.mailboxes.len();
        match self.linux.rendezvous.step(self.index, vcpus, self.generation) {
            RestartStep::None => Restarting::No,
            RestartStep::Wait => Restarting::Wait,
            RestartStep::Rebuild => self.rebuild(m),
            // The boot vCPU rebuilt the partition (or failed to: then it stays stopped).
            RestartStep::Rejoin(generation) => {
                self.generation = generation;
                if self.partition_stopped() {
                    return Restarting::No;
                }
                self.reset_policies(m);
                self.awaiting_sipi = true;
                Restarting::Booted(GuestRegs::default())
            }
        }
    }

    /// The boot vCPU, every vCPU parked: lays the partition out again, resets its devices
    /// and this vCPU, and lets the others wait for its SIPI.
    fn rebuild(&mut self, m: &Machine) -> Restarting {
        let (linux, p) = (self.linux, self.p);
        let t0 = cpu::rdtsc();
        // SAFETY: every vCPU of the partition is parked (the rendezvous said so).
        let laid_out = unsafe { linux.boot.lay_out(p) };
        let entered = laid_out.and_then(|plan| {
            *linux.uart.lock() = Uart16550::new();
            *linux.pci.lock() = linux.pci_at_boot.clone();
            if let Some(mailbox) = linux.manage {
                mailbox.reset();
            }
            linux.mailboxes.iter().for_each(|mb| mb.clear());
            crate::vmx::setup::linux_boot_entry(m, &self.controls, &plan.entry)
        });
        let ticks = cpu::rdtsc().wrapping_sub(t0);
        let outcome = match entered {
            Ok(regs) => {
                let n = p.restarts.fetch_add(1, Ordering::SeqCst) + 1;
                linux.stopped.store(false, Ordering::SeqCst);
                let _ = p.apply(Event::RestartDone);
                self.reset_policies(m);
                crate::hvlog_for!(
                    p,
                    "partition {}: Linux restarted (restart {n}): {} MiB scrubbed, kernel and initramfs laid out again in {} ms",
                    p.name,
                    p.ram_bytes >> 20,
                    m.ticks_to_ns(ticks) / 1_000_000
                );
                Restarting::Booted(regs)
            }
            Err(e) => {
                crate::hvlog_for!(p, "partition {}: restart failed: {e}; halted", p.name);
                let _ = p.apply(Event::Halt(Cause::Hypervisor));
                Restarting::No
            }
        };
        linux.rendezvous.finish();
        self.generation = linux.rendezvous.generation();
        outcome
    }

    /// Back to the policies' boot state (emulated MSRs, the console marker, tracing).
    fn reset_policies(&mut self, m: &Machine) {
        self.rebuild_policies(m);
        self.marker = MarkerMatch::default();
    }
}
