//! Many cases: the matrix of kernels x scenarios, running them (`verify`), soak runs of one case, the benchmark's plain-QEMU baseline, the summary of a run and its JUnit report, the JSON lines of `--format json`.

pub mod baseline;
pub mod compat;
pub mod junit;
pub mod matrix;
pub mod soak;
pub mod stream;
pub mod summary;
pub mod verify;
