//! The host-testable logic of the `rogue` partition (the program itself is `main.rs`):
//! which misbehaviour a partition name selects ([`mode`]), the boot count the `keeper` mode
//! keeps in its persistent region ([`keep`]) and the register-state model the
//! `plant`/`snoop` pair uses to detect state leaking between partitions that share a core
//! ([`state`]). Nothing here touches hardware; `cargo test -p rogue --lib` runs the tests
//! on the host.
#![cfg_attr(not(test), no_std)]

pub mod keep;
pub mod mode;
pub mod state;
