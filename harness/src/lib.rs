//! kdrill: boot guests, crash them by every route, capture and open the dump; check hosts for kdump readiness.

pub mod readiness;
