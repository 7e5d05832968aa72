//! The RustHallows ABI: everything the hypervisor shares with the tools that feed it and
//! with the partitions that run under it.
//!
//! - [`table`]: the compiled partition table (`table.bin`), its reader and, with the
//!   `alloc` feature, its writer. The reader needs no heap.
//! - [`hypercall`]: hypercall numbers, register convention and status codes.
//! - [`bootinfo`]: the page the hypervisor hands every real-time partition at entry.
//! - [`layout`]: fixed guest-physical addresses shared by the hypervisor and the SDK.
//! - [`health`]: health-monitor event classes and actions.
//! - [`manage`]: the management interface's requests and responses (hypercall and Linux
//!   mailbox alike).
//! - [`limits`]: every limit and layout rule a table must satisfy to boot, shared by the
//!   checker, the re-validator and the boot path.
#![no_std]
#![forbid(unsafe_code)]

#[cfg(feature = "alloc")]
extern crate alloc;

pub mod bootinfo;
pub mod bridge;
pub mod channel;
pub mod health;
pub mod hypercall;
pub mod layout;
pub mod limits;
pub mod manage;
pub mod table;
pub mod text;
