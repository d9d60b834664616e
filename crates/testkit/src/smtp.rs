//! A small but real SMTP server for tests: plain TCP on 127.0.0.1, one task per connection,
//! recording every accepted message. It can demand AUTH (PLAIN or LOGIN) and refuse one
//! recipient, so a mailer's failure paths can be exercised over the wire.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// What the server should demand or refuse.
#[derive(Debug, Clone, Default)]
pub struct SmtpOptions {
    /// When set, AUTH PLAIN/LOGIN is advertised and required before MAIL FROM; other
    /// credentials get 535.
    pub credentials: Option<(String, String)>,
    /// RCPT TO this address (case-insensitive) gets 550.
    pub reject_rcpt: Option<String>,
}

/// One message accepted with DATA.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    /// The MAIL FROM address, without angle brackets.
    pub from: String,
    /// The accepted RCPT TO addresses, without angle brackets.
    pub to: Vec<String>,
    /// The message as sent (headers and body, CRLF line endings), dot-stuffing undone and
    /// the terminating `.` line removed.
    pub data: String,
}

impl ReceivedMail {
    /// The first header with this name (case-insensitive), folded lines joined.
    pub fn header(&self, name: &str) -> Option<String> {
        let mut value: Option<String> = None;
        for line in self.data.split("\r\n") {
            if line.is_empty() {
                break;
            }
            let continues = line.starts_with([' ', '\t']);
            match &mut value {
                Some(v) if continues => v.push_str(line),
                Some(_) => break,
                None if continues => {}
                None => {
                    if let Some((n, v)) = line.split_once(':') {
                        if n.eq_ignore_ascii_case(name) {
                            value = Some(v.trim_start().to_owned());
                        }
                    }
                }
            }
        }
        value
    }
}

struct Inner {
    options: SmtpOptions,
    messages: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
}

impl Inner {
    fn messages(&self) -> MutexGuard<'_, Vec<ReceivedMail>> {
        // A panicking connection task must not hide the messages from the test.
        self.messages.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The running server; it stops accepting connections when dropped.
pub struct SmtpServer {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl SmtpServer {
    /// A server that accepts any sender and recipient without authentication.
    pub async fn start() -> SmtpServer {
        SmtpServer::start_with(SmtpOptions::default()).await
    }

    pub async fn start_with(options: SmtpOptions) -> SmtpServer {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the test SMTP server");
        let addr = listener.local_addr().expect("test SMTP server address");
        let inner = Arc::new(Inner {
            options,
            messages: Mutex::new(Vec::new()),
            arrived: Notify::new(),
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&inner)));
        SmtpServer {
            addr,
            inner,
            accept,
        }
    }

    /// Messages accepted so far, in order.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        self.inner.messages().clone()
    }

    /// Waits until at least `n` messages have arrived or `timeout` passes, then returns what
    /// has arrived (possibly fewer than `n`: the caller's assertion reports it).
    pub async fn wait_for_messages(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + timeout;
        loop {
            // Register interest before looking, so an arrival in between is not missed.
            let arrived = self.inner.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            let messages = self.messages();
            if messages.len() >= n {
                return messages;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.messages();
            }
        }
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(session(stream, Arc::clone(&inner)));
    }
}

/// Envelope state of the transaction in progress.
#[derive(Default)]
struct Transaction {
    from: Option<String>,
    to: Vec<String>,
}

async fn session(stream: TcpStream, inner: Arc<Inner>) {
    // I/O errors just end the session: the client under test sees the connection drop.
    let _ = serve(stream, &inner).await;
}

async fn serve(stream: TcpStream, inner: &Inner) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::new(read);
    let needs_auth = inner.options.credentials.is_some();
    let mut greeted = false;
    let mut authenticated = false;
    let mut tx = Transaction::default();

    write
        .write_all(b"220 tollgate-testkit ESMTP ready\r\n")
        .await?;
    while let Some(line) = read_line(&mut read).await? {
        let (verb, arg) = match line.split_once(' ') {
            Some((verb, arg)) => (verb.to_ascii_uppercase(), arg.trim()),
            None => (line.to_ascii_uppercase(), ""),
        };
        let reply: String = match verb.as_str() {
            "EHLO" => {
                greeted = true;
                tx = Transaction::default();
                let mut lines = vec!["tollgate-testkit".to_owned(), "8BITMIME".to_owned()];
                if needs_auth {
                    lines.push("AUTH PLAIN LOGIN".to_owned());
                }
                multiline(250, &lines)
            }
            "HELO" => {
                greeted = true;
                tx = Transaction::default();
                "250 tollgate-testkit\r\n".to_owned()
            }
            "AUTH" if !needs_auth => "502 5.5.1 AUTH not available\r\n".to_owned(),
            "AUTH" if authenticated => "503 5.5.1 Already authenticated\r\n".to_owned(),
            "AUTH" => {
                let (mechanism, initial) = match arg.split_once(' ') {
                    Some((m, i)) => (m.to_ascii_uppercase(), Some(i.trim().to_owned())),
                    None => (arg.to_ascii_uppercase(), None),
                };
                match auth(&mechanism, initial, &mut read, &mut write).await? {
                    AuthOutcome::Credentials(user, pass) => {
                        if inner.options.credentials.as_ref() == Some(&(user, pass)) {
                            authenticated = true;
                            "235 2.7.0 Authentication successful\r\n".to_owned()
                        } else {
                            "535 5.7.8 Authentication credentials invalid\r\n".to_owned()
                        }
                    }
                    AuthOutcome::Reply(reply) => reply.to_owned(),
                    AuthOutcome::Closed => return Ok(()),
                }
            }
            "MAIL" if !greeted => "503 5.5.1 Say EHLO first\r\n".to_owned(),
            "MAIL" if needs_auth && !authenticated => {
                "530 5.7.0 Authentication required\r\n".to_owned()
            }
            "MAIL" => match path_arg(arg, "FROM:") {
                Some(from) => {
                    tx = Transaction {
                        from: Some(from),
                        to: Vec::new(),
                    };
                    "250 2.1.0 OK\r\n".to_owned()
                }
                None => "501 5.5.4 Syntax: MAIL FROM:<address>\r\n".to_owned(),
            },
            "RCPT" if tx.from.is_none() => "503 5.5.1 Need MAIL first\r\n".to_owned(),
            "RCPT" => match path_arg(arg, "TO:") {
                Some(to)
                    if inner
                        .options
                        .reject_rcpt
                        .as_deref()
                        .is_some_and(|r| r.eq_ignore_ascii_case(&to)) =>
                {
                    format!("550 5.1.1 <{to}>: Recipient address rejected\r\n")
                }
                Some(to) => {
                    tx.to.push(to);
                    "250 2.1.5 OK\r\n".to_owned()
                }
                None => "501 5.5.4 Syntax: RCPT TO:<address>\r\n".to_owned(),
            },
            "DATA" if tx.to.is_empty() => "503 5.5.1 Need RCPT first\r\n".to_owned(),
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let Some(data) = read_data(&mut read).await? else {
                    return Ok(());
                };
                let tx = std::mem::take(&mut tx);
                inner.messages().push(ReceivedMail {
                    from: tx.from.unwrap_or_default(),
                    to: tx.to,
                    data,
                });
                inner.arrived.notify_waiters();
                "250 2.0.0 OK queued\r\n".to_owned()
            }
            "RSET" => {
                tx = Transaction::default();
                "250 2.0.0 OK\r\n".to_owned()
            }
            "NOOP" => "250 2.0.0 OK\r\n".to_owned(),
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => "500 5.5.2 Command not recognized\r\n".to_owned(),
        };
        write.write_all(reply.as_bytes()).await?;
    }
    Ok(())
}

enum AuthOutcome {
    Credentials(String, String),
    Reply(&'static str),
    Closed,
}

type Reader = BufReader<tokio::net::tcp::OwnedReadHalf>;
type Writer = tokio::net::tcp::OwnedWriteHalf;

/// Runs the AUTH exchange (RFC 4954) up to the point where the credentials are known.
async fn auth(
    mechanism: &str,
    initial: Option<String>,
    read: &mut Reader,
    write: &mut Writer,
) -> std::io::Result<AuthOutcome> {
    const BAD: AuthOutcome = AuthOutcome::Reply("501 5.5.2 Cannot decode response\r\n");
    match mechanism {
        "PLAIN" => {
            let response = match initial {
                Some(r) => r,
                None => match challenge(read, write, "").await? {
                    Some(r) => r,
                    None => return Ok(AuthOutcome::Closed),
                },
            };
            if response == "*" {
                return Ok(AuthOutcome::Reply("501 5.0.0 Authentication cancelled\r\n"));
            }
            // authzid NUL authcid NUL passwd
            let Some(decoded) = decode_base64(&response) else {
                return Ok(BAD);
            };
            let mut fields = decoded.split('\0').skip(1);
            match (fields.next(), fields.next(), fields.next()) {
                (Some(user), Some(pass), None) => {
                    Ok(AuthOutcome::Credentials(user.to_owned(), pass.to_owned()))
                }
                _ => Ok(BAD),
            }
        }
        "LOGIN" => {
            let user = match initial {
                Some(r) => r,
                // base64 of "Username:"
                None => match challenge(read, write, "VXNlcm5hbWU6").await? {
                    Some(r) => r,
                    None => return Ok(AuthOutcome::Closed),
                },
            };
            // base64 of "Password:"
            let Some(pass) = challenge(read, write, "UGFzc3dvcmQ6").await? else {
                return Ok(AuthOutcome::Closed);
            };
            if user == "*" || pass == "*" {
                return Ok(AuthOutcome::Reply("501 5.0.0 Authentication cancelled\r\n"));
            }
            match (decode_base64(&user), decode_base64(&pass)) {
                (Some(user), Some(pass)) => Ok(AuthOutcome::Credentials(user, pass)),
                _ => Ok(BAD),
            }
        }
        _ => Ok(AuthOutcome::Reply(
            "504 5.5.4 Unrecognized authentication type\r\n",
        )),
    }
}

async fn challenge(
    read: &mut Reader,
    write: &mut Writer,
    prompt: &str,
) -> std::io::Result<Option<String>> {
    write
        .write_all(format!("334 {prompt}\r\n").as_bytes())
        .await?;
    Ok(read_line(read).await?.map(|l| l.trim().to_owned()))
}

/// One command line without its line ending; `None` at end of stream.
async fn read_line(read: &mut Reader) -> std::io::Result<Option<String>> {
    let mut buf = Vec::new();
    if read.read_until(b'\n', &mut buf).await? == 0 {
        return Ok(None);
    }
    let line = String::from_utf8_lossy(&buf);
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_owned()))
}

/// Reads the message after DATA up to the `.` line, undoing dot-stuffing (RFC 5321 4.5.2).
async fn read_data(read: &mut Reader) -> std::io::Result<Option<String>> {
    let mut data = String::new();
    loop {
        let mut buf = Vec::new();
        if read.read_until(b'\n', &mut buf).await? == 0 {
            return Ok(None);
        }
        let line = String::from_utf8_lossy(&buf);
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Ok(Some(data));
        }
        let content = content.strip_prefix('.').unwrap_or(content);
        data.push_str(content);
        data.push_str("\r\n");
    }
}

/// The address of `FROM:<a@b> PARAMS` / `TO:<a@b>`, brackets removed; `<>` gives "".
fn path_arg(arg: &str, keyword: &str) -> Option<String> {
    let head = arg.get(..keyword.len())?;
    if !head.eq_ignore_ascii_case(keyword) {
        return None;
    }
    let rest = arg[keyword.len()..].trim_start();
    let path = rest.split_whitespace().next()?;
    let address = path.strip_prefix('<')?.strip_suffix('>')?;
    Some(address.to_owned())
}

fn multiline(code: u16, lines: &[String]) -> String {
    let mut out = String::new();
    for (i, line) in lines.iter().enumerate() {
        let sep = if i + 1 == lines.len() { ' ' } else { '-' };
        out.push_str(&format!("{code}{sep}{line}\r\n"));
    }
    out
}

/// Standard base64 with padding; the crate is not a testkit dependency and AUTH needs only
/// this.
fn decode_base64(s: &str) -> Option<String> {
    let mut bits: u32 = 0;
    let mut nbits = 0;
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for c in s.trim_end_matches('=').bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(v);
        nbits += 6;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_decodes() {
        assert_eq!(
            decode_base64("AHVzZXIAcGFzcw==").as_deref(),
            Some("\0user\0pass")
        );
        assert_eq!(decode_base64("VXNlcm5hbWU6").as_deref(), Some("Username:"));
        assert_eq!(decode_base64("not base64!"), None);
    }

    #[test]
    fn path_args() {
        assert_eq!(
            path_arg("FROM:<a@b.c> BODY=8BITMIME", "FROM:").as_deref(),
            Some("a@b.c")
        );
        assert_eq!(path_arg("to: <x@y>", "TO:").as_deref(), Some("x@y"));
        assert_eq!(path_arg("FROM:<>", "FROM:").as_deref(), Some(""));
        assert_eq!(path_arg("FROM:a@b", "FROM:"), None);
    }

    #[test]
    fn header_lookup_unfolds() {
        let mail = ReceivedMail {
            from: String::new(),
            to: Vec::new(),
            data: "Subject: a\r\n long\r\nTo: x@y\r\n\r\nTo: body\r\n".to_owned(),
        };
        assert_eq!(mail.header("subject").as_deref(), Some("a long"));
        assert_eq!(mail.header("TO").as_deref(), Some("x@y"));
        assert_eq!(mail.header("From"), None);
    }
}
