//! Field readiness checklist: pure checks over a host's /proc, /sys and /etc files.
