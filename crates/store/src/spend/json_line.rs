//! A record as one line of JSON, written by hand for the spend journal (one line per call on the
//! hot path). The bytes are exactly what `serde_json` makes of the record's `Serialize`, so the
//! journal is read back with `Deserialize` as before; serde's writer escaped every key and
//! string byte by byte (~3 % of a call's instructions), where the keys here are constants and a
//! string is copied as is unless it holds a byte JSON must escape.

use super::SpendRecord;

impl SpendRecord {
    /// Appends the record as JSON (no newline) to `out`.
    pub fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        out.extend_from_slice(b"{\"request_id\":");
        string(out, &self.request_id)?;
        out.extend_from_slice(b",\"call_type\":");
        string(out, &self.call_type)?;
        out.extend_from_slice(b",\"api_key\":");
        string(out, &self.api_key)?;
        out.extend_from_slice(b",\"user_id\":");
        opt_string(out, self.user_id.as_deref())?;
        out.extend_from_slice(b",\"team_id\":");
        opt_string(out, self.team_id.as_deref())?;
        out.extend_from_slice(b",\"end_user\":");
        opt_string(out, self.end_user.as_deref())?;
        out.extend_from_slice(b",\"model\":");
        string(out, &self.model)?;
        out.extend_from_slice(b",\"model_group\":");
        string(out, &self.model_group)?;
        out.extend_from_slice(b",\"model_id\":");
        opt_string(out, self.model_id.as_deref())?;
        out.extend_from_slice(b",\"custom_llm_provider\":");
        opt_string(out, self.custom_llm_provider.as_deref())?;
        out.extend_from_slice(b",\"spend_nanos\":");
        int(out, self.spend_nanos);
        out.extend_from_slice(b",\"priced\":");
        boolean(out, self.priced);
        out.extend_from_slice(b",\"prompt_tokens\":");
        int(out, self.prompt_tokens);
        out.extend_from_slice(b",\"completion_tokens\":");
        int(out, self.completion_tokens);
        out.extend_from_slice(b",\"cache_read_input_tokens\":");
        int(out, self.cache_read_input_tokens);
        out.extend_from_slice(b",\"cache_creation_input_tokens\":");
        int(out, self.cache_creation_input_tokens);
        out.extend_from_slice(b",\"usage_estimated\":");
        boolean(out, self.usage_estimated);
        out.extend_from_slice(b",\"stream\":");
        boolean(out, self.stream);
        out.extend_from_slice(b",\"status\":\"");
        out.extend_from_slice(self.status.as_str().as_bytes());
        out.extend_from_slice(b"\",\"http_status\":");
        int(out, i64::from(self.http_status));
        out.extend_from_slice(b",\"error_type\":");
        opt_string(out, self.error_type.as_deref())?;
        out.extend_from_slice(b",\"attempts\":");
        int(out, i64::from(self.attempts));
        // Times as whole microseconds, as `instant` serializes them.
        out.extend_from_slice(b",\"start_time\":");
        int(out, self.start_time.timestamp_micros());
        out.extend_from_slice(b",\"end_time\":");
        int(out, self.end_time.timestamp_micros());
        out.extend_from_slice(b",\"completion_start_time\":");
        opt_int(
            out,
            self.completion_start_time.map(|t| t.timestamp_micros()),
        );
        out.extend_from_slice(b",\"request_duration_ms\":");
        int(out, self.request_duration_ms);
        out.extend_from_slice(b",\"ttft_ms\":");
        opt_int(out, self.ttft_ms);
        out.extend_from_slice(b",\"metadata\":");
        serde_json::to_writer(&mut *out, &self.metadata)?;
        out.push(b'}');
        Ok(())
    }
}

/// JSON escapes `"`, `\` and control characters; anything else is copied as is.
fn needs_escape(s: &str) -> bool {
    s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\')
}

fn string(out: &mut Vec<u8>, s: &str) -> Result<(), serde_json::Error> {
    if needs_escape(s) {
        return serde_json::to_writer(&mut *out, s);
    }
    out.push(b'"');
    out.extend_from_slice(s.as_bytes());
    out.push(b'"');
    Ok(())
}

fn opt_string(out: &mut Vec<u8>, s: Option<&str>) -> Result<(), serde_json::Error> {
    match s {
        Some(s) => string(out, s),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

fn int(out: &mut Vec<u8>, n: i64) {
    // itoa, not `write!`: core::fmt took ~230 instructions per number, ten numbers a record.
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn opt_int(out: &mut Vec<u8>, n: Option<i64>) {
    match n {
        Some(n) => int(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SpendStatus;

    /// The plain case: no optional field set, a key's hash as `api_key`.
    fn record() -> SpendRecord {
        let mut r = super::super::instant::tests::record();
        r.api_key = "ab".repeat(32);
        r.completion_start_time = None;
        r.ttft_ms = None;
        r
    }

    fn same_as_serde(r: &SpendRecord) {
        let mut ours = Vec::new();
        r.write_json(&mut ours).unwrap();
        assert_eq!(
            String::from_utf8(ours.clone()).unwrap(),
            serde_json::to_string(r).unwrap()
        );
        let back: SpendRecord = serde_json::from_slice(&ours).unwrap();
        assert_eq!(&back, r);
    }

    #[test]
    fn a_plain_record_is_written_as_serde_writes_it() {
        same_as_serde(&record());
    }

    #[test]
    fn every_optional_field_set_and_strings_json_must_escape() {
        let mut r = record();
        r.user_id = Some("user \"quoted\" \\ back".into());
        r.team_id = Some("line\nbreak\tand\u{1}control".into());
        r.end_user = Some("unicode é ✓ 🚀 stays as is".into());
        r.model = "m/\u{7f}del".into();
        r.model_id = Some(String::new());
        r.custom_llm_provider = Some("openai".into());
        r.spend_nanos = -5;
        r.priced = false;
        r.usage_estimated = true;
        r.stream = true;
        r.status = SpendStatus::Failure;
        r.http_status = 499;
        r.error_type = Some("client_disconnected".into());
        r.attempts = 3;
        r.completion_start_time = Some(r.start_time + chrono::Duration::milliseconds(7));
        r.ttft_ms = Some(7);
        r.request_duration_ms = i64::MAX;
        r.metadata = serde_json::json!({"tags": ["a\"b", "c"]});
        same_as_serde(&r);
    }
}
