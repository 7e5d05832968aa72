//! Host-testable logic of the RustHallows hypervisor
#![no_std]
