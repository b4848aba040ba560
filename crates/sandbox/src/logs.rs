//! What an invocation printed, as its bootstrap streams it (`log` messages): kept by the host
//! so that a call that never answers (killed at its timeout, or for memory) still has its logs.
//! The bootstrap shares its interpreter with the function, which can write `log` messages of
//! its own, so the bound is the host's: at most `limit` bytes, then the bootstrap's marker.

/// The marker the bootstraps append to logs they cut (docs/PROTOCOL.md).
pub const TRUNCATED_MARKER: &str = "\n[fnbox: logs truncated]";

#[derive(Debug, Default)]
pub(crate) struct StreamedLogs {
    text: String,
    limit: usize,
    cut: bool,
}

impl StreamedLogs {
    pub(crate) fn new(limit: usize) -> Self {
        StreamedLogs { text: String::new(), limit, cut: false }
    }

    /// Appends a chunk, cutting at the limit (on a character boundary); later chunks are dropped.
    pub(crate) fn push(&mut self, chunk: &str) {
        if self.cut {
            return;
        }
        let room = self.limit.saturating_sub(self.text.len());
        if chunk.len() <= room {
            self.text.push_str(chunk);
            return;
        }
        let mut end = room;
        while !chunk.is_char_boundary(end) {
            end -= 1;
        }
        self.text.push_str(&chunk[..end]);
        self.cut = true;
    }

    /// The streamed text followed by `rest` (what came with the answer, if any), still bounded.
    pub(crate) fn finish(mut self, rest: &str) -> String {
        if self.text.is_empty() && !self.cut {
            return rest.to_owned();
        }
        if !self.cut {
            // The answer's part carries the bootstrap's marker when it cut the logs.
            match rest.strip_suffix(TRUNCATED_MARKER) {
                Some(body) => {
                    self.push(body);
                    self.cut = true;
                }
                None => self.push(rest),
            }
        }
        if self.cut {
            self.text.push_str(TRUNCATED_MARKER);
        }
        self.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_chunks_and_the_answer_within_the_limit() {
        let mut l = StreamedLogs::new(10);
        l.push("abc");
        l.push("def");
        assert_eq!(l.finish("gh"), "abcdefgh");
        assert_eq!(StreamedLogs::new(10).finish("only the answer"), "only the answer", "an older bootstrap");
    }

    #[test]
    fn a_function_writing_its_own_log_messages_is_still_bounded() {
        let mut l = StreamedLogs::new(8);
        for _ in 0..1000 {
            l.push("éééé");
        }
        let text = l.finish("more");
        assert_eq!(text, format!("éééé{TRUNCATED_MARKER}"));
        let mut l = StreamedLogs::new(100);
        l.push("line\n");
        assert_eq!(l.finish(TRUNCATED_MARKER), format!("line\n{TRUNCATED_MARKER}"), "the bootstrap's cut is kept, once");
        // A bootstrap that cut at the limit streams its marker too, and sends it in its answer.
        let mut l = StreamedLogs::new(4);
        l.push("abcd");
        l.push(TRUNCATED_MARKER);
        assert_eq!(l.finish(TRUNCATED_MARKER), format!("abcd{TRUNCATED_MARKER}"));
    }
}
