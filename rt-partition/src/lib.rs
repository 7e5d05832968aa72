//! The SDK for RustHallows real-time partitions
#![no_std]
