//! Integration tests of the dump reader over synthetic dumps built in code.

mod deep;
mod deep7;
mod formats;
mod hardening;
mod invariants;
mod real_dump;
mod robustness;
mod style;
