//! SerpentLog: a small Kafka-like log broker that runs as a RustHallows real-time
//! partition and is reached over channel pairs by RT partitions and by Linux programs.
//!
//! - [`engine`]: topics, partitions, append-only segments with a CRC per batch, offsets,
//!   consumer groups, retention, idempotent producers, recovery after a restart. The
//!   [`engine::Engine`] trait is what the protocol layer needs of it.
//! - [`error::ErrorCode`]: the small documented set of errors a client can see.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod engine;
pub mod error;

pub use error::ErrorCode;
