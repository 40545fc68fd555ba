//! Reading a captured dump back on the host and judging it: the native log, the makedumpfile cross-check, the scenario's expectations.
