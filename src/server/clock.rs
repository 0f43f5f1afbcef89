//! The shell's clock: monotonic milliseconds for deadlines, wall time for logs, and the local
//! UTC offset (looked up at most once a minute).

use crate::chat::Now;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Reads the time once per loop pass.
pub struct Clock {
    start: Instant,
    offset_minute: i64,
    offset_s: i32,
}

impl Clock {
    /// A clock whose monotonic time starts now.
    pub fn new() -> Clock {
        Clock {
            start: Instant::now(),
            offset_minute: i64::MIN,
            offset_s: 0,
        }
    }

    /// The current time.
    pub fn now(&mut self) -> Now {
        let mono_ms = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        let unix_ms = match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
            Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
        };
        let minute = unix_ms.div_euclid(60_000);
        if minute != self.offset_minute {
            self.offset_minute = minute;
            self.offset_s = crate::timefmt::local_utc_offset_s(unix_ms);
        }
        Now {
            mono_ms,
            unix_ms,
            utc_offset_s: self.offset_s,
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Clock::new()
    }
}
