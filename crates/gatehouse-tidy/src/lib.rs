//! Repository rules as tests (see `tests/tidy.rs`): which crate may depend on which, and the lint
//! headers every crate carries. This crate has no code of its own.
#![forbid(unsafe_code)]
