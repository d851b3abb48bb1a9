//! `SystemClock`: the wall clock a scheduler runs on, kept out of the kernel so the
//! kernel never reads time except through the `Clock` port. The one wall clock of the
//! workspace (the facade and the CLI use it; only the sled crate's crash-test writer,
//! which cannot depend on this crate, reads the time itself).

use std::time::{SystemTime, UNIX_EPOCH};

use ledgerflow_kernel::Clock;

/// The operating system's wall clock, in milliseconds since the Unix epoch.
///
/// A clock set before 1970 reads as negative milliseconds; one past the year 292 million
/// saturates. Neither happens on a working machine.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(since) => i64::try_from(since.as_millis()).unwrap_or(i64::MAX),
            Err(before) => -i64::try_from(before.duration().as_millis()).unwrap_or(i64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_plausible_time() {
        let now = SystemClock.now_ms();
        assert!(now > 1_600_000_000_000, "clock reads {now}");
    }
}
