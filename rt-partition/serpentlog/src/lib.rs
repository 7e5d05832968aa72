//! SerpentLog: a small Kafka-like log broker that runs as a RustHallows real-time
//! partition and is reached over channel pairs by RT partitions and by Linux programs.
//!
//! - [`engine`]: topics, partitions, append-only segments with a CRC per batch, offsets,
//!   consumer groups, retention, idempotent producers, recovery after a restart. The
//!   [`engine::Engine`] trait is what the protocol layer needs of it.
//! - [`protocol`]: the binary request/response frames (one per channel message).
//! - [`serve`]: the broker's side: a request frame in, a response frame out.
//! - [`client`]: the client library for RT partitions and Linux, over any [`client::Transport`].
//! - [`config`]: the broker's topic declarations (text from its boot info).
//! - [`load`]: generated, self-numbered record values and an order checker (tests, CLI,
//!   benchmarks).
//! - [`error::ErrorCode`]: the small documented set of errors a client can see.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(any(test, feature = "std"))]
extern crate std;

pub mod client;
pub mod config;
pub mod engine;
pub mod error;
pub mod load;
pub mod protocol;
pub mod serve;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

pub use error::ErrorCode;
