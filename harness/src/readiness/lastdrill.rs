//! The last `kdrill drill` on record, as `check` reports it: when it ran, its verdict, and whether
//! it still counts (a drill is stale once the running kernel, the capture kernel or initrd, or the
//! kdump configuration changed after it).

/// The newest drill record under `/var/lib/kdrill/drill/` of the checked root.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LastDrill {
    /// The drill's id (`20261207T124400Z-3f2a`).
    pub id: String,
    /// When its collection finished, in seconds since the epoch.
    pub finished_unix: i64,
    /// Whether the drill passed: its dump was found, opened and held that crash.
    pub success: bool,
    /// Why it no longer counts, if it does not (`the running kernel changed: 6.1.0-40 → 6.12.9`).
    pub stale: Option<String>,
}
