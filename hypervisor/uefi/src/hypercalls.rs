//! The hypercall environment of one calling partition: hallows-core's `dispatch` checks
//! every guest pointer, length, index and privilege; this gives it the partition's RAM,
//! console, clock and the other partitions' states.

use hallows_abi::health::EventClass;
use hallows_abi::hypercall::PartitionState;
use hallows_core::console::write_lossy;
use hallows_core::hypercall::{checked_range, HypercallEnv};
use hallows_core::manage::Served;

use crate::machine::Machine;
use crate::text::Text;

/// The environment of partition `caller` for one hypercall.
pub struct Env<'a> {
    pub machine: &'a Machine,
    pub caller: usize,
    /// The message of a `ReportFault`, for the health monitor's line (`None` until one
    /// is reported: the hypercall fast path does not even zero the buffer).
    pub fault_message: Option<Text<160>>,
}

impl HypercallEnv for Env<'_> {
    fn caller(&self) -> usize {
        self.caller
    }

    fn ram_bytes(&self) -> u64 {
        self.machine.partitions[self.caller].ram_bytes
    }

    fn read_ram(&self, gpa: u64, buf: &mut [u8]) {
        let p = &self.machine.partitions[self.caller];
        // `dispatch` checked gpa..gpa+len against ram_bytes; check again so this glue
        // stays safe on its own.
        if checked_range(gpa, buf.len() as u64, p.ram_bytes).is_none() {
            buf.fill(0);
            return;
        }
        // SAFETY: the range lies inside the caller's own RAM, identity-mapped host memory
        // reserved for it. The guest may change it concurrently; the bytes are only copied.
        unsafe {
            core::ptr::copy_nonoverlapping((p.ram_hpa + gpa) as *const u8, buf.as_mut_ptr(), buf.len())
        };
    }

    fn console_write(&mut self, bytes: &[u8]) -> bool {
        crate::console::partition_write(&self.machine.partitions[self.caller], bytes)
    }

    fn now_ns(&self) -> u64 {
        self.machine.now_ns()
    }

    fn partition_count(&self) -> usize {
        self.machine.partitions.len()
    }

    fn partition_state(&self, index: usize) -> PartitionState {
        self.machine.partitions.get(index).map_or(PartitionState::Halted, |p| p.state())
    }

    fn privileges(&self) -> u32 {
        self.machine.partitions[self.caller].privileges
    }

    fn report_fault(&mut self, _class: EventClass, message: &[u8]) {
        let _ = write_lossy(self.fault_message.insert(Text::new()), message);
    }

    fn write_ram(&mut self, gpa: u64, bytes: &[u8]) {
        let p = &self.machine.partitions[self.caller];
        // `dispatch` checked the range; check again so this glue stays safe on its own.
        if checked_range(gpa, bytes.len() as u64, p.ram_bytes).is_none() {
            return;
        }
        // SAFETY: the range lies inside the caller's own RAM, identity-mapped host memory
        // reserved for it; the bytes are only copied in (the guest asked for them there).
        unsafe { core::ptr::copy_nonoverlapping(bytes.as_ptr(), (p.ram_hpa + gpa) as *mut u8, bytes.len()) };
    }

    fn manage(&self, request: &[u8], response: &mut [u8]) -> Served {
        let privileges = self.machine.partitions[self.caller].privileges;
        hallows_core::manage::serve(
            self.caller,
            privileges,
            request,
            &crate::manage::View(self.machine),
            response,
        )
    }
}
