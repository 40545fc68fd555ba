//! A small QMP client over a unix socket: greeting, capabilities, commands with a deadline.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Value};

use crate::host::deadline::wait_until;

#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("QMP socket {0} did not accept a connection in time")]
    Connect(String),
    #[error("QMP I/O failed")]
    Io(#[from] std::io::Error),
    #[error("QMP sent something that is not JSON: {0}")]
    Json(String),
    #[error("QMP command `{command}` failed: {message}")]
    Command { command: String, message: String },
    #[error("QMP closed the connection")]
    Closed,
}

pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Qmp {
    /// Connects (retrying until `timeout`, QEMU creates the socket while it starts) and negotiates
    /// capabilities; each answer may then take up to `reply` (see [`Qmp::set_timeout`]). Callers
    /// pass both already scaled by `KDRILL_TIMEOUT_SCALE`.
    pub fn connect(socket: &Path, timeout: Duration, reply: Duration) -> Result<Qmp, QmpError> {
        let stream = wait_until(timeout, || UnixStream::connect(socket).ok())
            .ok_or_else(|| QmpError::Connect(socket.display().to_string()))?;
        stream.set_read_timeout(Some(reply))?;
        let writer = stream.try_clone()?;
        let mut qmp = Qmp {
            reader: BufReader::new(stream),
            writer,
        };
        let greeting = qmp.read_message()?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Json(format!(
                "expected a QMP greeting, got {greeting}"
            )));
        }
        qmp.execute("qmp_capabilities", None)?;
        Ok(qmp)
    }

    /// How long a command may take to answer (a memory dump takes seconds).
    pub fn set_timeout(&mut self, timeout: Duration) -> Result<(), QmpError> {
        self.reader.get_ref().set_read_timeout(Some(timeout))?;
        Ok(())
    }

    fn read_message(&mut self) -> Result<Value, QmpError> {
        let mut line = String::new();
        if self.reader.read_line(&mut line)? == 0 {
            return Err(QmpError::Closed);
        }
        serde_json::from_str(&line).map_err(|_| QmpError::Json(line.trim().to_string()))
    }

    /// Runs `command` and returns its `return` value; asynchronous events in between are skipped.
    pub fn execute(&mut self, command: &str, arguments: Option<Value>) -> Result<Value, QmpError> {
        let mut request = json!({ "execute": command });
        if let Some(arguments) = arguments {
            request["arguments"] = arguments;
        }
        writeln!(self.writer, "{request}")?;
        loop {
            let message = self.read_message()?;
            if let Some(value) = message.get("return") {
                return Ok(value.clone());
            }
            if let Some(error) = message.get("error") {
                let message = error
                    .get("desc")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown error")
                    .to_string();
                return Err(QmpError::Command {
                    command: command.into(),
                    message,
                });
            }
        }
    }
}
