//! Device emulation for RustHallows VM exits
#![no_std]
