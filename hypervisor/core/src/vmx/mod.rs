//! Intel VMX: what the logic crate knows of the vendor. Today only the translation of
//! exits into arch-neutral [`crate::vcpu::Exit`]s lives here; an AMD SVM backend adds a
//! `svm` module beside this one with the same role.

pub mod translate;
