//! Rebuilding state from the chat log at start-up: the shell reads the log's tail and hands
//! every record in it, oldest first, to [`ChatCore::restore`].

use super::ChatCore;
use crate::log_store::LogLine;
use crate::record::Record;

impl ChatCore {
    /// Takes one record of the log's tail into account (channel topics). Records must come
    /// oldest first; a record of any other kind is passed over.
    pub fn restore(&mut self, line: &LogLine) {
        if let Record::Topic { channel, topic, .. } = &line.record {
            self.restore_topic(channel, topic);
        }
    }
}
