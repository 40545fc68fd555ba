//! Tools nobody here wrote, run on the same dumps to check kdrill's deep reading: drgn
//! (`crosscheck/drgn.rs`: symbols from kallsyms, in the test suite), crash and gdb
//! (`crosscheck/crash.rs`, `crosscheck/gdb.rs`: in `cargo xtask deep`).

pub mod crash;
pub mod drgn;
pub mod gdb;
