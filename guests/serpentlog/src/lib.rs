//! The host-testable logic of the SerpentLog partition programs (`src/bin/`):
//!
//! - [`clients`]: which channel pairs of the broker's boot info are clients
//!   (`<client>_req` read by the broker, `<client>_resp` written by it).
//! - [`options`]: the broker's args: topic declarations (`serpentlog::config`) plus the
//!   test hook `crash_after N`.
#![cfg_attr(not(test), no_std)]
#![forbid(unsafe_code)]

extern crate alloc;

pub mod clients;
pub mod options;
