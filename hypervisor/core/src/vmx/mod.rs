//! Intel VMX: everything in the logic crate that knows the vendor. The VMCS field
//! encodings (`vmcs`), the capability MSRs and the VM-execution controls computed from them
//! (`caps`), the guest-state plans written at entry (`guest_state`), the I/O and MSR
//! bitmaps (`bitmaps`), the EPT format (`ept`), the exit reasons and qualifications
//! (`exit`), and the translation of an exit into an arch-neutral [`crate::vcpu::Exit`]
//! (`translate`). An AMD SVM backend adds an `svm` module beside this one with the same
//! roles (VMCB, intercept vectors, IOPM/MSRPM, NPT, exit codes); nothing outside these
//! two modules knows which vendor runs the guests.

pub mod bitmaps;
pub mod caps;
pub mod controls_plan;
pub mod ept;
pub mod exit;
pub mod guest_state;
pub mod host_state;
pub mod translate;
pub mod vmcs;
