//! Parseltongue: the language that says how RustHallows splits one machine, its
//! whole-system checker and its compiler to the hypervisor's binary partition table.
//!
//! ```text
//! source ──lexer──▶ tokens ──parser──▶ ast ──check──▶ diagnostics
//!                                        └──compile──▶ TableModel ──to_bytes──▶ table.bin
//! ```
//! Entry points: [`compile::compile_source`] (parse, check, compile), [`show::render`],
//! [`svg::render`], [`fmt::format_source`].

#![forbid(unsafe_code)]

pub mod ast;
pub mod check;
pub mod compile;
pub mod diagnostics;
pub mod explain;
pub mod fmt;
pub mod generate;
pub mod info;
pub mod lexer;
pub mod parser;
pub mod render;
pub mod show;
pub mod span;
pub mod svg;
