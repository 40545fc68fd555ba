//! Integration tests that need no VM: the `kdrill` binary's CLI and fixture trees.
mod crasher;
mod verify;
