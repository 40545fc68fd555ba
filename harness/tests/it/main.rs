//! Integration tests: the `kdrill` binary's CLI, fixture trees, the crasher module built for real, and one real VM case that must FAIL.
mod calibrate;
mod check;
mod crasher;
mod drgn;
mod fetch;
mod inspect;
mod support;
mod tidy;
mod verify;
mod vmlinux;
mod xtask;
