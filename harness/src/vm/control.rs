//! The host's words to the guest: lines written to the status channel's socket (the guest's
//! ttyS1, which its init reads in raw mode), e.g. a restored guest's case settings. Everything
//! the guest writes back arrives in `status.log` (QEMU's logfile of the same chardev); the socket
//! is drained so QEMU never stalls on a full buffer.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::host::deadline::wait_until;

/// A connection to the status channel's socket.
pub struct Control {
    stream: UnixStream,
}

impl Control {
    /// Connects to `socket` (QEMU creates it while it starts), waiting up to `limit`.
    pub fn connect(socket: &Path, limit: Duration) -> Result<Control, String> {
        let stream = wait_until(limit, || UnixStream::connect(socket).ok()).ok_or_else(|| {
            format!(
                "the status channel's socket {} did not accept a connection within {}s",
                socket.display(),
                limit.as_secs()
            )
        })?;
        let mut drain = stream
            .try_clone()
            .map_err(|e| format!("status channel: {e}"))?;
        std::thread::spawn(move || {
            let mut sink = [0u8; 4096];
            while matches!(drain.read(&mut sink), Ok(n) if n > 0) {}
        });
        Ok(Control { stream })
    }

    /// Writes one line (a newline is added).
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        self.stream
            .write_all(format!("{line}\n").as_bytes())
            .map_err(|e| format!("cannot write to the status channel: {e}"))
    }
}
