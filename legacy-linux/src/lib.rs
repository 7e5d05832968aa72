//! Linux boot protocol support for RustHallows
#![no_std]
