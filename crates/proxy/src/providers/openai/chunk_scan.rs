//! The common shape of a stream chunk, read without serde: an object of `choices` and fields
//! nobody reads, each choice an object of such fields and a `delta` (or `message`) whose text
//! fields are plain strings. That is nearly every event of a chat stream; reading it this way
//! takes about a third of the instructions of the typed serde pass (bench/RESULTS.md, "Stop 30").
//!
//! A stream's events repeat their leading fields (`id`, `object`, `created`, `model`, …) byte
//! for byte, so the scanner remembers the leading run of fields nobody reads that it last saw
//! and, when the next event starts with the same bytes, resumes after them: the same bytes read
//! the same way.
//!
//! It reads bytes, not a `str`: every byte outside a string must be JSON's (ASCII), and a string
//! holding bytes above ASCII is checked as UTF-8 once its end is found, so the event needs no
//! separate UTF-8 pass (what the scanner answers for is valid UTF-8; serde checks the rest).
//!
//! The scanner never decides that an event is malformed: whatever it does not fully recognise
//! (usage, errors, tool calls, `\u` escapes, escaped keys, values nested deeper than
//! `MAX_DEPTH`, a known field given twice, anything not valid JSON) makes it answer `None`, and
//! the serde reader then reads the event and decides. So where it answers, it must agree with
//! that reader exactly; the tests hold it to that on generated and mutated events.

use super::stream::ChunkSummary;

/// The chunk's summary when the event has the common shape, `None` otherwise. `prefix` holds the
/// leading fields of the event read before (kept between calls; empty at first).
pub(super) fn scan(data: &[u8], prefix: &mut Vec<u8>) -> Option<ChunkSummary> {
    if !prefix.is_empty() && data.starts_with(prefix) {
        if let Some((summary, _)) = scan_from(data, Some(prefix.len())) {
            return Some(summary);
        }
    }
    let (summary, leading) = scan_from(data, None)?;
    prefix.clear();
    prefix.extend_from_slice(data.get(..leading).unwrap_or_default());
    Some(summary)
}

/// The whole event read from its start, or from `resume_at` (the end of leading fields read
/// before); with where its leading fields end.
fn scan_from(data: &[u8], resume_at: Option<usize>) -> Option<(ChunkSummary, usize)> {
    let mut s = Scanner { b: data, i: 0 };
    let read = s.chunk(resume_at)?;
    s.ws();
    (s.i == s.b.len()).then_some(read)
}

/// Bytes that end a run of plain string bytes byte by byte: the quote, the backslash, the
/// control characters JSON forbids unescaped, and bytes above ASCII (which the caller notes for
/// a UTF-8 check and steps over).
static STOPS: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 0x20 {
        t[c] = true;
        c += 1;
    }
    while c < 0x100 {
        t[c] = c >= 0x80;
        c += 1;
    }
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t
};

/// How many bytes at the start of `s` are plain string bytes (before a quote, a backslash or a
/// control character), eight at a time: a byte's high bit is set in `hits` where it equals the
/// quote or the backslash, or is below 0x20. A borrow can set it falsely only above a true hit,
/// so the lowest set bit is exact. Also whether a byte above ASCII may be in the eight-byte
/// words read (bytes past the run's end count too: a false alarm costs only a UTF-8 check);
/// byte by byte, at the end, such a byte ends the run instead.
#[inline(always)]
fn plain_run(s: &[u8]) -> (usize, bool) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut at = 0;
    let mut high = 0;
    while let Some(word) = s.get(at..at + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
        let x = u64::from_le_bytes(word);
        high |= x;
        let hits = zero(x ^ (ONES * u64::from(b'"')))
            | zero(x ^ (ONES * u64::from(b'\\')))
            | (x.wrapping_sub(ONES * 0x20) & !x & HIGH);
        if hits != 0 {
            return (at + (hits.trailing_zeros() / 8) as usize, high & HIGH != 0);
        }
        at += 8;
    }
    let tail = s.get(at..).unwrap_or_default();
    let run = tail
        .iter()
        .position(|&c| STOPS[usize::from(c)])
        .unwrap_or(tail.len());
    (at + run, high & HIGH != 0)
}

struct Scanner<'a> {
    b: &'a [u8],
    i: usize,
}

/// The fields of a delta or message that carry generated text, and those the scanner leaves to
/// serde unless they are null.
const TEXT_FIELDS: [&[u8]; 3] = [b"content", b"reasoning_content", b"refusal"];
const PART_DEFERRED: [&[u8]; 2] = [b"tool_calls", b"function_call"];
/// How deep an ignored value may nest before serde is left to read the event.
const MAX_DEPTH: usize = 16;

impl<'a> Scanner<'a> {
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    /// Skips whitespace, then takes `byte` if it comes next.
    fn eat(&mut self, byte: u8) -> bool {
        self.ws();
        if self.peek() == Some(byte) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    /// Reads `{ member (, member)* }` (or `{}`), calling `member` with each key (the value comes
    /// next); stops with `None` as soon as `member` does.
    fn object(&mut self, member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        self.expect(b'{')?;
        if self.eat(b'}') {
            return Some(());
        }
        self.members(member)
    }

    /// The rest of an object after a member's value.
    fn object_after_member(
        &mut self,
        member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>,
    ) -> Option<()> {
        if self.eat(b'}') {
            return Some(());
        }
        self.expect(b',')?;
        self.members(member)
    }

    fn members(&mut self, mut member: impl FnMut(&mut Self, &'a [u8]) -> Option<()>) -> Option<()> {
        loop {
            self.ws();
            let key = self.key()?;
            self.expect(b':')?;
            self.ws();
            member(self, key)?;
            if self.eat(b'}') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// A key without escapes (an escaped key could decode to a known field's name).
    fn key(&mut self) -> Option<&'a [u8]> {
        let start = self.i + 1;
        let len = self.string()?;
        let key = self.b.get(start..self.i - 1)?;
        (key.len() == len).then_some(key)
    }

    /// A string at the cursor: its decoded length in bytes. `\u` escapes and anything JSON
    /// forbids in a string are left to serde.
    fn string(&mut self) -> Option<usize> {
        let b = self.b;
        if b.get(self.i) != Some(&b'"') {
            return None;
        }
        let start = self.i + 1;
        let mut at = start;
        // Bytes the escapes take beyond the one each decodes to.
        let mut escaped = 0;
        let mut above_ascii = false;
        loop {
            let (run, high) = plain_run(b.get(at..)?);
            at += run;
            above_ascii |= high;
            match *b.get(at)? {
                b'"' => {
                    // Escapes are ASCII, so the string's bytes are UTF-8 when its raw bytes are.
                    if above_ascii && std::str::from_utf8(b.get(start..at)?).is_err() {
                        return None;
                    }
                    self.i = at + 1;
                    return Some(at - start - escaped);
                }
                0x80.. => {
                    above_ascii = true;
                    at += 1;
                }
                b'\\' => match b.get(at + 1)? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {
                        at += 2;
                        escaped += 1;
                    }
                    _ => return None,
                },
                _ => return None,
            }
        }
    }

    /// A string or null: its decoded length (0 for null).
    fn text(&mut self) -> Option<usize> {
        if self.null() {
            Some(0)
        } else {
            self.string()
        }
    }

    fn literal(&mut self, word: &[u8]) -> bool {
        let found = self.b.get(self.i..self.i + word.len()) == Some(word);
        if found {
            self.i += word.len();
        }
        found
    }

    /// The value of a field nobody reads (serde skips it as `IgnoredAny`, checking only that it
    /// is JSON): a string, a number, `true`, `false`, `null`, or an array or object of such
    /// values nested at most `MAX_DEPTH` deep (Azure puts content-filter objects in every choice).
    fn ignored(&mut self, depth: usize) -> Option<()> {
        match self.peek()? {
            b'"' => self.string().map(drop),
            b't' => self.literal(b"true").then_some(()),
            b'f' => self.literal(b"false").then_some(()),
            b'n' => self.null().then_some(()),
            b'{' if depth < MAX_DEPTH => self.object(|s, _| s.ignored(depth + 1)),
            b'[' if depth < MAX_DEPTH => self.array(depth + 1),
            _ => self.number(),
        }
    }

    fn array(&mut self, depth: usize) -> Option<()> {
        self.list(|s| s.ignored(depth))
    }

    /// Reads `[ item (, item)* ]` (or `[]`), calling `item` at each; stops with `None` as soon
    /// as `item` does.
    fn list(&mut self, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.expect(b'[')?;
        if self.eat(b']') {
            return Some(());
        }
        loop {
            self.ws();
            item(self)?;
            if self.eat(b']') {
                return Some(());
            }
            self.expect(b',')?;
        }
    }

    /// A JSON number, by its grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek()? {
            b'0' => self.i += 1,
            b'1'..=b'9' => self.digits(),
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            self.some_digits()?;
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            self.some_digits()?;
        }
        Some(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
    }

    /// One digit or more.
    fn some_digits(&mut self) -> Option<()> {
        let start = self.i;
        self.digits();
        (self.i > start).then_some(())
    }

    /// Takes `null` if it comes next.
    fn null(&mut self) -> bool {
        self.literal(b"null")
    }

    /// The top-level object, and where its leading run of ignored fields ends (0 when resumed).
    /// `resume_at` is the end of the leading fields already read in an earlier event that this
    /// one starts with.
    fn chunk(&mut self, resume_at: Option<usize>) -> Option<(ChunkSummary, usize)> {
        let mut summary = ChunkSummary {
            no_choices: true,
            ..ChunkSummary::default()
        };
        let (mut choices, mut usage, mut error) = (false, false, false);
        let mut leading = 0;
        let mut plain_so_far = true;
        let member = |s: &mut Self, key: &[u8]| {
            match key {
                b"choices" => {
                    once(&mut choices)?;
                    if !s.null() {
                        let (count, text) = s.choices()?;
                        summary.no_choices = count == 0;
                        summary.text_bytes = text;
                    }
                }
                // Usage and in-band errors are rare (once a stream at most): serde reads them.
                b"usage" => {
                    once(&mut usage)?;
                    s.null().then_some(())?;
                }
                b"error" => {
                    once(&mut error)?;
                    s.null().then_some(())?;
                }
                _ => {
                    s.ignored(0)?;
                    if plain_so_far {
                        leading = s.i;
                    }
                    return Some(());
                }
            }
            plain_so_far = false;
            Some(())
        };
        match resume_at {
            Some(at) => {
                self.i = at;
                self.object_after_member(member)?;
            }
            None => self.object(member)?,
        }
        Some((summary, leading))
    }

    /// `[choice, …]`: how many, and the text they carry.
    fn choices(&mut self) -> Option<(usize, usize)> {
        let (mut count, mut text) = (0, 0);
        self.list(|s| {
            text += s.choice()?;
            count += 1;
            Some(())
        })?;
        Some((count, text))
    }

    fn choice(&mut self) -> Option<usize> {
        let mut text = 0;
        let (mut delta, mut message, mut completion) = (false, false, false);
        self.object(|s, key| {
            match key {
                b"delta" => {
                    once(&mut delta)?;
                    text += s.part()?;
                }
                b"message" => {
                    once(&mut message)?;
                    text += s.part()?;
                }
                b"text" => {
                    once(&mut completion)?;
                    text += s.text()?;
                }
                _ => s.ignored(0)?,
            }
            Some(())
        })?;
        Some(text)
    }

    /// A delta or message (or null): the text it carries.
    fn part(&mut self) -> Option<usize> {
        if self.null() {
            return Some(0);
        }
        let mut text = 0;
        let mut seen = [false; TEXT_FIELDS.len() + PART_DEFERRED.len()];
        self.object(|s, key| {
            if let Some(at) = TEXT_FIELDS.iter().position(|f| *f == key) {
                once(&mut seen[at])?;
                text += s.text()?;
            } else if let Some(at) = PART_DEFERRED.iter().position(|f| *f == key) {
                once(&mut seen[TEXT_FIELDS.len() + at])?;
                s.null().then_some(())?;
            } else {
                s.ignored(0)?;
            }
            Some(())
        })?;
        Some(text)
    }
}

/// Marks a known field as read; `None` the second time (serde refuses a duplicate field).
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

#[cfg(test)]
mod tests {
    use super::super::stream::read_chunk_typed;
    use super::*;
    use proptest::prelude::*;

    /// Events as OpenAI and the bench's mock send them.
    const COMMON: &[&str] = &[
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","service_tier":"default","system_fingerprint":"fp_1","choices":[{"index":0,"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"usage":null,"obfuscation":"ab12"}"#,
        r#"{"id":"chatcmpl-1","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}"#,
        r#"{"id":"c","choices":[{"delta":{"content":"a\"b\\c\nd\/"}}]}"#,
        r#"{"id":"c","choices":[{"delta":{"content":"déjà vu ✓"},"index":1}]}"#,
        r#"{"choices":[{"text":"xy","index":0,"finish_reason":null}],"created":-5}"#,
        r#"{"choices":[{"message":{"role":"assistant","content":"whole"}}]}"#,
        r#"{"choices":[]}"#,
        r#"{"choices":null}"#,
        r#"{}"#,
        " {\n \"choices\" : [ { \"delta\" : { \"content\" : \"abc\" } } ] } \n",
        // Azure's content filters; numbers of every form in fields nobody reads.
        r#"{"choices":[{"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}},"delta":{"content":"Hi"},"finish_reason":null,"index":0,"logprobs":null}],"created":1700000000,"id":"c","model":"gpt-4o","prompt_filter_results":[],"system_fingerprint":"fp"}"#,
        r#"{"choices":[{"logprobs":{"content":[{"token":"a","logprob":-0.25,"top_logprobs":[]}]},"delta":{"content":"a"}}]}"#,
        r#"{"created":1.5,"a":-0,"b":1e3,"c":2.5E-7,"d":1234567890123456789012,"e":[[],{}]}"#,
    ];

    #[test]
    fn reads_the_common_shape_as_serde_does() {
        for data in COMMON {
            let fast = scan(data.as_bytes(), &mut Vec::new());
            assert!(fast.is_some(), "the scanner left {data:?} to serde");
            assert_eq!(fast, read_chunk_typed(data).ok(), "{data:?}");
        }
    }

    #[test]
    fn resumes_after_the_leading_fields_the_last_event_had() {
        let mut prefix = Vec::new();
        let first = r#"{"id":"c1","created":17,"choices":[{"delta":{"content":"ab"}}]}"#;
        assert_eq!(
            scan(first.as_bytes(), &mut prefix).map(|s| s.text_bytes),
            Some(2)
        );
        assert_eq!(prefix, br#"{"id":"c1","created":17"#);
        let next = r#"{"id":"c1","created":17,"choices":[{"delta":{"content":"xyz"}}]}"#;
        assert_eq!(
            scan(next.as_bytes(), &mut prefix).map(|s| s.text_bytes),
            Some(3)
        );
        // Same leading bytes, but the number goes on: read again from the start.
        let longer = r#"{"id":"c1","created":175,"choices":[]}"#;
        let read = scan(longer.as_bytes(), &mut prefix);
        assert_eq!(read, read_chunk_typed(longer).ok());
        assert_eq!(prefix, br#"{"id":"c1","created":175"#);
        // What follows the leading fields is still checked.
        assert_eq!(
            scan(r#"{"id":"c1","created":175,}"#.as_bytes(), &mut prefix),
            None
        );
        assert_eq!(
            scan(r#"{"id":"c1","created":175"#.as_bytes(), &mut prefix),
            None
        );
        assert_eq!(
            scan(r#"{"id":"c1","created":175} x"#.as_bytes(), &mut prefix),
            None
        );
    }

    #[test]
    fn leaves_the_rest_to_serde() {
        for data in [
            // Usage, errors, tool calls and content parts are serde's.
            r#"{"choices":[],"usage":{"prompt_tokens":1}}"#,
            r#"{"error":{"message":"x"}}"#,
            r#"{"choices":[{"delta":{"tool_calls":[{"function":{"arguments":"{}"}}]}}]}"#,
            r#"{"choices":[{"delta":{"content":[{"type":"text","text":"ab"}]}}]}"#,
            r#"{"choices":[{"delta":{"content":"\u00e9"}}]}"#,
            r#"{"created":0123}"#,
            r#"{"created":1.}"#,
            r#"{"created":1e}"#,
            r#"{"created":-}"#,
            r#"{"a":{"k\u0065y":1}}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]}"#,
            // A known field twice, an escaped key.
            r#"{"choices":[],"choices":[]}"#,
            r#"{"choices":[{"delta":{"content":"a","content":"b"}}]}"#,
            r#"{"ch\u006fices":[]}"#,
            // Not a chunk at all.
            "",
            "[1]",
            "{",
            r#"{"choices":[{"delta":{}}]} x"#,
            r#"{"a":"tab	in string"}"#,
            r#"{"a":1,}"#,
            r#"{"a" 1}"#,
            r#"{"choices":[{"delta":{}},]}"#,
            r#"{"a":tru}"#,
        ] {
            assert_eq!(scan(data.as_bytes(), &mut Vec::new()), None, "{data:?}");
        }
    }

    #[test]
    fn leaves_bytes_that_are_not_utf8_to_serde() {
        for data in [
            &b"{\"choices\":[{\"delta\":{\"content\":\"a\xffb\"}}]}"[..],
            b"{\"id\":\"\xc3\",\"choices\":[]}",
            b"{\"id\":\"\xe2\x9c\",\"choices\":[]}",
            b"{\"id\":\"\xed\xa0\x80\",\"choices\":[]}",
            b"{\"k\xc3\":1}",
            b"{\"a\":1}\xc2\xa0",
        ] {
            assert_eq!(scan(data, &mut Vec::new()), None, "{data:?}");
        }
        let valid = "{\"id\":\"ab\u{e9}cdefgh\u{2713}\",\"choices\":[]}";
        assert!(scan(valid.as_bytes(), &mut Vec::new()).is_some());
    }

    /// A JSON value of the chunk's shape, with gaps and escapes where JSON allows them.
    fn gap() -> impl Strategy<Value = String> {
        "[ \t\n\r]{0,2}"
    }

    fn string() -> impl Strategy<Value = String> {
        prop::collection::vec(
            prop_oneof![
                "[a-zA-Zé✓ ]{1,4}".prop_map(|s| s),
                Just("\\\"".to_string()),
                Just("\\n".to_string()),
                Just("\\/".to_string()),
                Just("\\u00e9".to_string()),
            ],
            0..4,
        )
        .prop_map(|parts| format!("\"{}\"", parts.concat()))
    }

    fn scalar() -> impl Strategy<Value = String> {
        prop_oneof![
            string(),
            Just("null".to_string()),
            Just("true".to_string()),
            Just("false".to_string()),
            (-1000i64..100_000).prop_map(|n| n.to_string()),
            Just("1.5".to_string()),
            Just("-0.25e+3".to_string()),
            Just("1E400".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just(r#"[1, {"a": null}, "x"]"#.to_string()),
            Just(r#"{"filtered":false,"severity":"safe","n":[true]}"#.to_string()),
            Just(r#"{"k\u0065y":1}"#.to_string()),
        ]
    }

    fn object(members: Vec<(String, String)>, g: String) -> String {
        let inner: Vec<String> = members
            .into_iter()
            .map(|(k, v)| format!("{g}\"{k}\"{g}:{g}{v}{g}"))
            .collect();
        format!("{{{}}}", inner.join(","))
    }

    fn part() -> impl Strategy<Value = String> {
        let key = prop_oneof![
            Just("content"),
            Just("reasoning_content"),
            Just("refusal"),
            Just("role"),
            Just("tool_calls"),
            Just("function_call"),
        ];
        (prop::collection::vec((key, scalar()), 0..4), gap())
            .prop_map(|(m, g)| object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect(), g))
    }

    fn choice() -> impl Strategy<Value = String> {
        let member = prop_oneof![
            part().prop_map(|p| ("delta".to_string(), p)),
            part().prop_map(|p| ("message".to_string(), p)),
            scalar().prop_map(|v| ("text".to_string(), v)),
            scalar().prop_map(|v| ("index".to_string(), v)),
            scalar().prop_map(|v| ("finish_reason".to_string(), v)),
        ];
        (prop::collection::vec(member, 0..4), gap()).prop_map(|(m, g)| object(m, g))
    }

    fn chunk_members() -> impl Strategy<Value = Vec<(String, String)>> {
        let choices = (prop::collection::vec(choice(), 0..3), gap())
            .prop_map(|(c, g)| format!("[{g}{}{g}]", c.join(",")));
        let member = prop_oneof![
            4 => choices.prop_map(|c| ("choices".to_string(), c)),
            1 => Just(("choices".to_string(), "null".to_string())),
            1 => scalar().prop_map(|v| ("usage".to_string(), v)),
            1 => scalar().prop_map(|v| ("error".to_string(), v)),
            2 => scalar().prop_map(|v| ("id".to_string(), v)),
            2 => scalar().prop_map(|v| ("created".to_string(), v)),
        ];
        prop::collection::vec(member, 0..5)
    }

    fn chunk() -> impl Strategy<Value = String> {
        (chunk_members(), gap()).prop_map(|(m, g)| object(m, g))
    }

    /// The plain leading fields a stream's events repeat.
    fn leading() -> impl Strategy<Value = Vec<(String, String)>> {
        let key = prop_oneof![Just("id"), Just("object"), Just("created"), Just("model")];
        let value = prop_oneof![
            string(),
            Just("null".to_string()),
            Just("true".to_string()),
            (-1000i64..100_000).prop_map(|n| n.to_string()),
        ];
        prop::collection::vec((key.prop_map(str::to_string), value), 1..4)
    }

    /// What the scanner answers, serde answers too: read alone, and read after `before`.
    fn agrees_after(before: &[u8], data: &[u8]) -> Result<(), TestCaseError> {
        let mut prefix = Vec::new();
        let _ = scan(before, &mut prefix);
        for prefix in [prefix, Vec::new()] {
            if let Some(fast) = scan(data, &mut prefix.clone()) {
                let text = std::str::from_utf8(data);
                prop_assert!(
                    text.is_ok(),
                    "the scanner read bytes that are not UTF-8: {:?}",
                    data
                );
                let slow = text.ok().and_then(|t| read_chunk_typed(t).ok());
                prop_assert_eq!(Some(fast), slow, "{:?}", data);
            }
        }
        Ok(())
    }

    fn agrees(data: &str) -> Result<(), TestCaseError> {
        agrees_after(data.as_bytes(), data.as_bytes())
    }

    proptest! {
        // About a third of generated chunks have the common shape (the rest exercise the
        // scanner's refusals); more cases than the default so both are well covered.
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn generated_chunks_read_as_serde_reads_them(data in chunk()) {
            agrees(&data)?;
        }

        #[test]
        fn events_after_one_with_the_same_leading_fields_read_as_serde_reads_them(
            lead in leading(),
            first in chunk_members(),
            next in chunk_members(),
            g in gap(),
            longer in prop::option::of(0..10u8),
        ) {
            // `choices` ends the leading fields: what `first` has after it differs from `next`.
            let choices = ("choices".to_string(), "[]".to_string());
            let before = object(
                lead.iter().cloned().chain([choices]).chain(first).collect(),
                g.clone(),
            );
            let mut next_lead = lead.clone();
            if let (Some(d), Some((_, v))) = (longer, next_lead.last_mut()) {
                // The last leading value runs on: a number with one more digit, or worse.
                v.push(char::from(b'0' + d));
            }
            let data = object(next_lead.into_iter().chain(next).collect(), g);
            let mut prefix = Vec::new();
            if scan(before.as_bytes(), &mut prefix).is_some() && longer.is_none() {
                // The next event is read from where the leading fields end.
                prop_assert!(!prefix.is_empty() && data.as_bytes().starts_with(&prefix));
            }
            agrees_after(before.as_bytes(), data.as_bytes())?;
        }

        #[test]
        fn chunks_read_after_another_as_serde_reads_them(
            before in chunk(),
            rest in chunk(),
            cut in any::<prop::sample::Index>(),
        ) {
            // The next event starts with some of the one before it, as a stream's events do.
            let at = cut.index(before.len() + 1);
            let data = match (before.get(..at), rest.get(1..)) {
                (Some(head), Some(tail)) => format!("{head},{tail}"),
                _ => rest.clone(),
            };
            agrees_after(before.as_bytes(), data.as_bytes())?;
            agrees_after(before.as_bytes(), rest.as_bytes())?;
        }

        #[test]
        fn mutated_chunks_read_as_serde_reads_them(
            data in chunk(),
            at in any::<prop::sample::Index>(),
            // Bytes of JSON's grammar, and bytes above ASCII that make or break UTF-8.
            byte in prop_oneof![Just(b'"'), Just(b'\\'), Just(b','), Just(b'}'), Just(b']'), Just(b'0'), Just(b'\n'), Just(0x01u8), Just(b'x'), Just(0x80u8), Just(0xa9u8), Just(0xc3u8), Just(0xe2u8), Just(0xffu8)],
            how in 0..3u8,
        ) {
            let mut bytes = data.clone().into_bytes();
            let i = at.index(bytes.len() + 1);
            match how {
                0 => bytes.insert(i, byte),
                1 if i < bytes.len() => { bytes.remove(i); }
                _ if i < bytes.len() => bytes[i] = byte,
                _ => bytes.push(byte),
            }
            agrees_after(&bytes, &bytes)?;
            agrees_after(data.as_bytes(), &bytes)?;
        }

        #[test]
        fn any_text_reads_as_serde_reads_it(data in "\\PC{0,80}") {
            agrees(&data)?;
        }
    }
}
