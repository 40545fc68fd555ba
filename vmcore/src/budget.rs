//! The memory budget of one open and log read: every allocation sized by the dump is charged to it.
//!
//! Checks against the file length stop a header from claiming data the file
//! does not hold; this stops a dump from claiming, in many pieces that each
//! fit, more memory than a reader should spend on one dump. Real dumps stay
//! far below it: an 18 MB kdump of a 1 GiB guest takes about 2 MiB.

use std::cell::Cell;

use crate::error::{Error, Result};

/// Bytes one [`crate::Vmcore::open`] plus one [`crate::Vmcore::dmesg_records`] may allocate
/// for what the dump describes (bitmaps, headers, notes, the log buffers and records); all
/// deep reading of one open dump (symbols, BTF, tasks, modules, backtraces) shares what the
/// open left.
pub const MEMORY_BUDGET: u64 = 256 << 20;

/// What is left of [`MEMORY_BUDGET`].
pub(crate) struct Budget {
    left: Cell<u64>,
}

impl Budget {
    pub(crate) fn new(bytes: u64) -> Budget {
        Budget {
            left: Cell::new(bytes),
        }
    }

    /// Charges `bytes` for `what`, or says that the dump asks for too much.
    pub(crate) fn take(&self, what: &'static str, bytes: u64) -> Result<()> {
        let left = self.left.get();
        if bytes > left {
            return Err(Error::OverBudget {
                what,
                need: bytes,
                left,
            });
        }
        self.left.set(left - bytes);
        Ok(())
    }

    pub(crate) fn left(&self) -> u64 {
        self.left.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_until_empty_then_refuses() {
        let b = Budget::new(100);
        b.take("a", 60).unwrap();
        let err = b.take("b", 41).unwrap_err();
        assert!(
            matches!(
                err,
                Error::OverBudget {
                    what: "b",
                    need: 41,
                    left: 40
                }
            ),
            "{err}"
        );
        assert_eq!(b.left(), 40);
    }
}
