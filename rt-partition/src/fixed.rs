//! The fixed-capacity text buffer (one for the whole project: `hallows_abi::text`).

pub use hallows_abi::text::FixedText;
