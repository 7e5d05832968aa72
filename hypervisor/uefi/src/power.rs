//! Powering the machine off, before and after ExitBootServices (the health monitor's
//! `halt_system`, a refused boot, the last partition gone).

use uefi::Status;

use crate::cpu;

/// Asks the firmware to power the machine off (ends the emulator).
pub fn power_off() -> ! {
    crate::serial::drain();
    uefi::runtime::reset(uefi::runtime::ResetType::SHUTDOWN, Status::ABORTED, None)
}

/// Powers off after ExitBootServices: first Bochs's shutdown port (an unused port
/// elsewhere), then the UEFI runtime services, which stay valid after ExitBootServices.
pub fn power_off_runtime() -> ! {
    if let Some(m) = crate::machine::MACHINE.get() {
        crate::summary::print(m, &"power-off");
    }
    crate::serial::drain();
    for b in b"Shutdown" {
        // Bochs: writing "Shutdown" to port 0x8900 ends the emulation.
        cpu::outb(0x8900, *b);
    }
    uefi::runtime::reset(uefi::runtime::ResetType::SHUTDOWN, Status::ABORTED, None)
}
