//! Every log line a test binary writes, captured as the functions write them (JSON), so a
//! test can look for what must never be logged. The server runs in the test's process:
//! its lines land here too.

use std::sync::{Arc, Mutex, OnceLock};

/// The captured lines (shared by every test of the binary).
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// Starts the capture (the binary's logging goes here from then on) and returns it.
pub fn captured() -> &'static Captured {
    static LOGS: OnceLock<Captured> = OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        accounts::telemetry::init_to(true, move || writer.clone());
        captured
    })
}
