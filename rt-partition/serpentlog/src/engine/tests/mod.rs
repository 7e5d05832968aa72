//! Engine tests: rules one by one (`unit`), random operation sequences against a model
//! (`model`), and every cut point of a write (`torn`).

mod garbage;
mod model;
mod support;
mod torn;
mod unit;
