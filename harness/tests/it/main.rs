//! Integration tests that need no VM: the `kdrill` binary's CLI, fixture trees, and the crasher module built for real.
mod crasher;
mod verify;
