//! Many cases: the matrix of kernels x scenarios, running them (`verify`), and the summary of a run.

pub mod matrix;
pub mod summary;
pub mod verify;
