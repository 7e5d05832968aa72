//! Parseltongue.
