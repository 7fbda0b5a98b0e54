//! Iterable's export API (`GET /api/export/data.json`), for the sync engine's `users` and
//! message-event kinds: one time window per call, within the 4-per-minute budget, newline-
//! delimited JSON.
//!
//! **Streamed.** An export has no size bound (a million users is about a gigabyte), so it is
//! never read whole: [`IterableConnector::export_page`] reads it line by line from the open
//! response, parses each line on its own and hands out pages of rows while the download
//! continues; the [`OpenExport`] between pages holds the connection and at most one line of
//! unread bytes. A line longer than [`MAX_EXPORT_LINE`] stops the read with an error naming the
//! export (it is not buffered), and a page closes early once its rows hold
//! [`MAX_EXPORT_PAGE_BYTES`].
//!
//! **Cut streams.** Iterable drops long-running export responses mid-stream. What the consumer
//! committed is an [`ExportPlace`]: the time slice being read and how many of its rows were
//! served. After a cut the rows read so far are handed out, and the next page re-exports from
//! that place:
//!
//! * while the slice's rows have come in time order (the field the export filters on:
//!   `profileUpdatedAt` for users, `createdAt` for events), the new slice starts at the second of
//!   the last row served, skipping the rows of that second already served: nothing is re-read;
//! * otherwise the same slice is exported again and the rows already served are skipped (read,
//!   not parsed);
//! * a slice that is cut [`SPLIT_AFTER_CUTS`] times, or whose attempt got no new row, is split:
//!   its (remaining) time range is halved, and once a slice completes the next one is twice as
//!   long (adaptive, as Airbyte's Iterable source shrinks its slices on `ChunkedEncodingError`).
//!   Without time order a split re-reads the first half from its start: rows are upserted by id,
//!   so that costs writes, never doubles.
//!
//! Every (re-)export is one call of the `export` budget, 4 a minute per key, so a stream that
//! keeps breaking is retried at that pace and never draws a 429.
//!
//! Iterable's exports are eventually consistent (rows appear some minutes after the fact), so an
//! incremental read starts a lookback window before the last cursor and the consumer
//! de-duplicates (users by `email`/`userId`, events by `messageId` + type + `createdAt`).

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Credentials, IterableConnector, errors, sync::row_time};
use crate::{
    ConnectorError, ErrorKind, Retry,
    http::{BodyBreak, Call, Streamed, StreamedBody},
};

/// How far before the last cursor an incremental export starts (Airbyte uses 5 minutes; we
/// allow more for a busy project).
pub const DEFAULT_LOOKBACK: Duration = Duration::from_secs(15 * 60);

/// The longest export line (one user profile or event) read: 1 MiB. Iterable caps a profile at
/// 1,000 fields; a longer line is refused, not buffered.
pub const MAX_EXPORT_LINE: usize = 1024 * 1024;

/// A page of export rows closes early once its lines hold this many bytes (16 MiB), whatever
/// its row count.
pub const MAX_EXPORT_PAGE_BYTES: usize = 16 * 1024 * 1024;

/// Cuts of one slice after which its time range is halved.
pub const SPLIT_AFTER_CUTS: u32 = 2;

/// The export `dataTypeName`s of the sync kinds: `users` → `user`; `events` → the message
/// events below.
pub const EVENT_TYPES: [&str; 16] = [
    "emailSend",
    "emailOpen",
    "emailClick",
    "emailBounce",
    "emailComplaint",
    "emailSubscribe",
    "emailUnSubscribe",
    "hostedUnsubscribeClick",
    "smsSend",
    "smsBounce",
    "smsClick",
    "pushSend",
    "pushOpen",
    "pushBounce",
    "inAppSend",
    "inAppOpen",
];

/// One export read.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportBatch {
    pub rows: Vec<Value>,
    /// Where the next incremental read continues from (the window's end).
    pub cursor: DateTime<Utc>,
}

fn iterable_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S +00:00").to_string()
}

/// The row field an export of `data_type` is windowed on.
pub fn time_key(data_type: &str) -> &'static str {
    if data_type == "user" {
        "profileUpdatedAt"
    } else {
        "createdAt"
    }
}

fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn second() -> chrono::Duration {
    chrono::Duration::seconds(1)
}

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// The stream broke (cut off, or silent past the timeout): resumable from what was read.
    Cut(String),
    /// Reading on cannot help (a line over the limit).
    Fatal(ConnectorError),
}

/// An export's body as lines, holding at most one line (plus one network chunk) of unread bytes.
pub struct ExportLines {
    data_type: String,
    body: StreamedBody,
    buf: BytesMut,
    /// How much of `buf` is known to hold no newline.
    scanned: usize,
    ended: bool,
    max_line: usize,
}

impl std::fmt::Debug for ExportLines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportLines")
            .field("data_type", &self.data_type)
            .field("buffered", &self.buf.len())
            .finish_non_exhaustive()
    }
}

impl ExportLines {
    pub fn new(data_type: &str, body: StreamedBody, max_line: usize) -> Self {
        Self {
            data_type: data_type.to_owned(),
            body,
            buf: BytesMut::new(),
            scanned: 0,
            ended: false,
            max_line,
        }
    }

    fn too_long(&self) -> LineError {
        LineError::Fatal(
            ConnectorError::new(
                domain::Platform::Iterable,
                ErrorKind::Unsupported,
                format!(
                    "Iterable's `{}` export has a line longer than {} bytes, the most read as one row; the export was stopped there. Leave the oversized fields out of the profile or event (or out of the sync's event types).",
                    self.data_type, self.max_line
                ),
            )
            .with_retry(Retry::Permanent),
        )
    }

    /// The next non-blank line, trimmed, without its newline; `None` at the body's end.
    pub async fn next_line(&mut self) -> Result<Option<Bytes>, LineError> {
        loop {
            if let Some(i) = self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
                let end = self.scanned + i;
                let line = self.buf.split_to(end + 1).freeze();
                self.scanned = 0;
                if end > self.max_line {
                    return Err(self.too_long());
                }
                let line = trim(line.slice(..end));
                if line.is_empty() {
                    continue;
                }
                return Ok(Some(line));
            }
            self.scanned = self.buf.len();
            if self.buf.len() > self.max_line {
                return Err(self.too_long());
            }
            if self.ended {
                // A body that ended cleanly ends with a whole line, newline or not.
                let line = trim(self.buf.split().freeze());
                self.scanned = 0;
                return Ok((!line.is_empty()).then_some(line));
            }
            match self.body.chunk().await {
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
                Ok(None) => self.ended = true,
                Err(BodyBreak::Idle) => {
                    return Err(LineError::Cut("no data within the timeout".to_owned()));
                }
                Err(BodyBreak::Cut(why)) => return Err(LineError::Cut(why)),
            }
        }
    }
}

fn trim(b: Bytes) -> Bytes {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    b.slice(start..end.max(start))
}

/// Where the read of one export window stands: the time slice `[from, to)` being exported (the
/// whole window when unset) and what of it was served. Serialisable: it is what a consumer
/// commits with each page, and what a resumed read starts from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportPlace {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<DateTime<Utc>>,
    /// Rows of the slice already served (skipped when it is exported again).
    #[serde(default)]
    pub skip: u64,
    /// Times this slice was cut off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub cuts: u32,
    /// The second of the last row served, while the slice's rows came in time order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<DateTime<Utc>>,
    /// Rows served whose time is that second.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ties: u64,
    /// A row came out of time order (or without a time): resume by count, not by time.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub unordered: bool,
}

fn is_zero<T: Default + PartialEq>(n: &T) -> bool {
    *n == T::default()
}

impl ExportPlace {
    /// The slice of the window `[start, end)` this place reads.
    pub fn slice(
        &self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> (DateTime<Utc>, DateTime<Utc>) {
        (self.from.unwrap_or(start), self.to.unwrap_or(end))
    }

    /// Notes one served row of the slice `[from, to)` with time `t`.
    fn saw(&mut self, t: Option<DateTime<Utc>>, from: DateTime<Utc>, to: DateTime<Utc>) {
        self.skip += 1;
        if self.unordered {
            return;
        }
        match t.map(whole_seconds) {
            Some(t) if t >= from && t < to => match self.last {
                Some(l) if t < l => self.unordered = true,
                Some(l) if t == l => self.ties += 1,
                _ => {
                    self.last = Some(t);
                    self.ties = 1;
                }
            },
            // Without a time, or outside the slice: the times cannot place a resume.
            _ => self.unordered = true,
        }
    }

    /// After the slice `[from, to)` ended: the next slice (twice as long, up to the window's
    /// `end`), or `None` when the window is done.
    pub fn after_slice(
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Option<ExportPlace> {
        if to >= end {
            return None;
        }
        let len = (to - from).max(second());
        let next_to = to.checked_add_signed(len * 2).unwrap_or(end).min(end);
        Some(ExportPlace {
            from: Some(to),
            to: Some(next_to),
            ..ExportPlace::default()
        })
    }

    /// After the slice `[from, to)` of a `data_type` export was cut off (this place counting the
    /// rows served so far; `progressed` when the attempt served a new row): where to export
    /// from next. Fails when even a one-second slice gets nowhere.
    pub fn after_cut(
        &self,
        data_type: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        progressed: bool,
    ) -> Result<ExportPlace, ConnectorError> {
        let cuts = self.cuts + 1;
        let split = cuts >= SPLIT_AFTER_CUTS || !progressed;
        let halve = |a: DateTime<Utc>| {
            let half = chrono::Duration::seconds((to - a).num_seconds() / 2);
            (half >= second()).then(|| a + half)
        };
        let stuck = || {
            ConnectorError::new(
                domain::Platform::Iterable,
                ErrorKind::Unavailable,
                format!(
                    "Iterable keeps cutting off the `{data_type}` export, even over a single second; the rows read so far are kept and the sync will try again later."
                ),
            )
        };
        if !self.unordered
            && let Some(last) = self.last
        {
            // Time order: start again at the last row's second, skipping its rows served.
            let from = last.max(from);
            let to = if split {
                match halve(from) {
                    Some(t) => t,
                    None if progressed => to,
                    None => return Err(stuck()),
                }
            } else {
                to
            };
            return Ok(ExportPlace {
                from: Some(from),
                to: Some(to),
                skip: self.ties,
                cuts,
                last: Some(last),
                ties: self.ties,
                unordered: false,
            });
        }
        if !split {
            // The same slice again, skipping what was served.
            return Ok(ExportPlace {
                from: Some(from),
                to: Some(to),
                cuts,
                ..self.clone()
            });
        }
        // Split: the first half of the slice from its start (re-read rows are upserted again).
        match halve(from) {
            Some(half) => Ok(ExportPlace {
                from: Some(from),
                to: Some(half),
                cuts,
                ..ExportPlace::default()
            }),
            None if progressed => Ok(ExportPlace {
                from: Some(from),
                to: Some(to),
                cuts,
                ..self.clone()
            }),
            None => Err(stuck()),
        }
    }
}

/// An export being read, kept by the consumer between pages (dropping it closes the
/// connection).
#[derive(Debug)]
pub struct OpenExport {
    data_type: String,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Rows read from this response, skipped ones included.
    served: u64,
    /// Rows of this response handed out (not skipped).
    fresh: u64,
    lines: ExportLines,
}

/// One page of an export read.
#[derive(Debug)]
pub struct ExportPage {
    pub rows: Vec<Value>,
    /// Where the read continues; `None` when the window is done.
    pub next: Option<ExportPlace>,
}

impl IterableConnector {
    /// Opens the export of `data_type` (`user`, `emailSend`, …) over `[start, end)` (users by
    /// `profileUpdatedAt`, events by `createdAt`), its body unread.
    pub async fn open_export(
        &self,
        creds: &Credentials,
        data_type: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<ExportLines, ConnectorError> {
        let header = creds.header()?;
        let url = self.url(creds.region, "/api/export/data.json");
        let query = [
            ("dataTypeName", data_type.to_owned()),
            ("startDateTime", iterable_time(start)),
            ("endDateTime", iterable_time(end)),
        ];
        let call = Call {
            operation: "export",
            class: "export",
            budget_key: creds.budget_key(),
            idempotent: true,
        };
        let answer = self
            .client
            .send_streamed(call, |http| {
                http.get(&url)
                    .header("Api-Key", header.clone())
                    .query(&query)
            })
            .await?;
        let answer = match answer {
            Streamed::Body(body) => return Ok(ExportLines::new(data_type, body, MAX_EXPORT_LINE)),
            Streamed::Answer(a) if a.is_success() => {
                let body = StreamedBody::from_chunks(vec![Ok(a.body)]);
                return Ok(ExportLines::new(data_type, body, MAX_EXPORT_LINE));
            }
            Streamed::Answer(a) => a,
        };
        let e = errors::map(&answer, "export");
        if errors::is_bad_key(&e) && self.list_channels(creds).await.is_ok() {
            return Err(ConnectorError {
                kind: ErrorKind::PermissionDenied,
                message: errors::read_only_message("export"),
                ..e
            });
        }
        Err(e)
    }

    /// Up to `max_rows` rows of the `data_type` export of the window `[start, end)`, from
    /// `place` (the default place: the window's start). `open` is the consumer's export between
    /// calls: continued when it stands at `place`, else replaced by a new export that skips what
    /// `place` says was served. A cut-off stream answers the rows read before the cut, with the
    /// place to resume from (see the module's notes).
    #[allow(clippy::too_many_arguments)]
    pub async fn export_page(
        &self,
        creds: &Credentials,
        open: &mut Option<OpenExport>,
        data_type: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        place: &ExportPlace,
        max_rows: usize,
    ) -> Result<ExportPage, ConnectorError> {
        let (from, to) = place.slice(start, end);
        let mut place = place.clone();
        let mut current = match open.take() {
            Some(o)
                if o.data_type == data_type
                    && o.from == from
                    && o.to == to
                    && o.served == place.skip =>
            {
                o
            }
            _ => {
                let lines = self.open_export(creds, data_type, from, to).await?;
                let mut o = OpenExport {
                    data_type: data_type.to_owned(),
                    from,
                    to,
                    served: 0,
                    fresh: 0,
                    lines,
                };
                while o.served < place.skip {
                    match o.lines.next_line().await {
                        Ok(Some(_)) => o.served += 1,
                        // Fewer rows than were served before: the slice is done.
                        Ok(None) => {
                            return Ok(ExportPage {
                                rows: Vec::new(),
                                next: ExportPlace::after_slice(from, to, end),
                            });
                        }
                        Err(LineError::Fatal(e)) => return Err(e),
                        Err(LineError::Cut(why)) => {
                            cut_note(data_type, from, to, &place, &why);
                            return Ok(ExportPage {
                                rows: Vec::new(),
                                next: Some(place.after_cut(data_type, from, to, false)?),
                            });
                        }
                    }
                }
                o
            }
        };
        let key = time_key(data_type);
        let mut rows = Vec::with_capacity(max_rows.min(1000));
        let mut bytes = 0usize;
        loop {
            match current.lines.next_line().await {
                Ok(Some(line)) => {
                    let row: Value = serde_json::from_slice(&line).map_err(|_| {
                        errors::malformed(
                            "export",
                            200,
                            &format!("a `{data_type}` line is not JSON"),
                        )
                    })?;
                    bytes += line.len();
                    place.saw(row_time(&row, key), from, to);
                    current.served += 1;
                    current.fresh += 1;
                    rows.push(row);
                    if rows.len() >= max_rows || bytes >= MAX_EXPORT_PAGE_BYTES {
                        *open = Some(current);
                        return Ok(ExportPage {
                            rows,
                            next: Some(place),
                        });
                    }
                }
                Ok(None) => {
                    return Ok(ExportPage {
                        rows,
                        next: ExportPlace::after_slice(from, to, end),
                    });
                }
                Err(LineError::Fatal(e)) => return Err(e),
                Err(LineError::Cut(why)) => {
                    cut_note(data_type, from, to, &place, &why);
                    let next = place.after_cut(data_type, from, to, current.fresh > 0)?;
                    return Ok(ExportPage {
                        rows,
                        next: Some(next),
                    });
                }
            }
        }
    }

    /// Rows of `data_type` (`user`, `emailSend`, …) in `[start, end)`, all at once: for small
    /// windows only. The rows' bytes are capped as any whole answer ([`UpstreamClient`]'s
    /// `max_body`); the sync reads exports a page at a time with [`Self::export_page`].
    ///
    /// [`UpstreamClient`]: crate::http::UpstreamClient
    pub async fn export(
        &self,
        creds: &Credentials,
        data_type: &str,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    ) -> Result<Vec<Value>, ConnectorError> {
        let mut lines = self.open_export(creds, data_type, start, end).await?;
        let max = self.client.max_body();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        loop {
            match lines.next_line().await {
                Ok(Some(line)) => {
                    bytes += line.len();
                    if bytes > max {
                        return Err(ConnectorError::new(
                            domain::Platform::Iterable,
                            ErrorKind::Unavailable,
                            format!(
                                "Iterable's `{data_type}` export is larger than {max} bytes, the most read at once; it is read a page at a time by the sync."
                            ),
                        )
                        .with_retry(Retry::Permanent));
                    }
                    rows.push(serde_json::from_slice(&line).map_err(|_| {
                        errors::malformed(
                            "export",
                            200,
                            &format!("a `{data_type}` line is not JSON"),
                        )
                    })?);
                }
                Ok(None) => return Ok(rows),
                Err(LineError::Fatal(e)) => return Err(e),
                Err(LineError::Cut(why)) => {
                    return Err(ConnectorError::new(
                        domain::Platform::Iterable,
                        ErrorKind::Unavailable,
                        format!(
                            "Iterable's `{data_type}` export was cut off after {} rows ({why}).",
                            rows.len()
                        ),
                    ));
                }
            }
        }
    }

    /// An incremental read: from `lookback` before `since` (or the beginning) to `now`.
    pub async fn export_since(
        &self,
        creds: &Credentials,
        data_type: &str,
        since: Option<DateTime<Utc>>,
        lookback: Duration,
        now: DateTime<Utc>,
    ) -> Result<ExportBatch, ConnectorError> {
        let start = match since {
            Some(s) => s - chrono::Duration::from_std(lookback).unwrap_or_default(),
            None => DateTime::<Utc>::UNIX_EPOCH,
        };
        let rows = self.export(creds, data_type, start, now).await?;
        Ok(ExportBatch { rows, cursor: now })
    }
}

fn cut_note(
    data_type: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    place: &ExportPlace,
    why: &str,
) {
    tracing::info!(
        data_type,
        from = %from,
        to = %to,
        served = place.skip,
        cuts = place.cuts + 1,
        why,
        "Iterable export cut off; resuming from what was served"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_714_564_800 + s, 0).unwrap()
    }

    #[test]
    fn iterable_time_format() {
        let t = DateTime::from_timestamp(1_714_564_800, 0).unwrap();
        assert_eq!(iterable_time(t), "2024-05-01 12:00:00 +00:00");
    }

    fn lines(chunks: &[&str], cut: bool, max_line: usize) -> ExportLines {
        let mut c: Vec<Result<Bytes, String>> = chunks
            .iter()
            .map(|s| Ok(Bytes::copy_from_slice(s.as_bytes())))
            .collect();
        if cut {
            c.push(Err("connection reset".to_owned()));
        }
        ExportLines::new("user", StreamedBody::from_chunks(c), max_line)
    }

    async fn all(l: &mut ExportLines) -> (Vec<String>, Option<LineError>) {
        let mut out = Vec::new();
        loop {
            match l.next_line().await {
                Ok(Some(b)) => out.push(String::from_utf8(b.to_vec()).unwrap()),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[tokio::test]
    async fn lines_span_chunks_blank_lines_go_and_the_last_needs_no_newline() {
        let mut l = lines(
            &["{\"a\":1}\n{\"b\"", ":2}\r\n\n  \n{\"c\":", "3}"],
            false,
            64,
        );
        let (got, err) = all(&mut l).await;
        assert!(err.is_none());
        assert_eq!(got, ["{\"a\":1}", "{\"b\":2}", "{\"c\":3}"]);
    }

    #[tokio::test]
    async fn a_cut_keeps_whole_lines_and_drops_the_partial_one() {
        let mut l = lines(&["{\"a\":1}\n{\"b\":2}\n{\"c\""], true, 64);
        let (got, err) = all(&mut l).await;
        assert_eq!(got, ["{\"a\":1}", "{\"b\":2}"]);
        assert!(matches!(err, Some(LineError::Cut(w)) if w.contains("reset")));
    }

    #[tokio::test]
    async fn a_line_over_the_limit_is_refused_naming_the_export() {
        // Within one chunk, and spread over chunks with no newline yet.
        for chunks in [
            vec![
                "{\"a\":1}\n",
                "{\"big\":\"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}\n",
            ],
            vec![
                "{\"a\":1}\n{\"big\":\"xxxxxxxxxx",
                "xxxxxxxxxxxxxxxxx",
                "xxxxxxxxxxxxxxxxxxxxxx",
            ],
        ] {
            let mut l = lines(&chunks, false, 32);
            let (got, err) = all(&mut l).await;
            assert_eq!(got, ["{\"a\":1}"]);
            let Some(LineError::Fatal(e)) = err else {
                panic!("{err:?}")
            };
            assert_eq!(e.kind, ErrorKind::Unsupported);
            assert_eq!(e.retry, Retry::Permanent);
            assert!(e.message.contains("`user` export"), "{}", e.message);
            assert!(e.message.contains("32 bytes"), "{}", e.message);
        }
    }

    #[test]
    fn served_rows_in_time_order_resume_at_the_last_second() {
        let (from, to) = (t(0), t(1000));
        let mut p = ExportPlace::default();
        for s in [10, 20, 20, 30, 30, 30] {
            p.saw(Some(t(s)), from, to);
        }
        assert_eq!(
            (p.skip, p.last, p.ties, p.unordered),
            (6, Some(t(30)), 3, false)
        );
        // First cut: the rest of the slice from the last row's second, its 3 rows skipped.
        let next = p.after_cut("user", from, to, true).unwrap();
        assert_eq!(
            (next.from, next.to, next.skip, next.cuts),
            (Some(t(30)), Some(t(1000)), 3, 1)
        );
        // Cut again: the rest is halved.
        let again = next.after_cut("user", t(30), t(1000), true).unwrap();
        assert_eq!(
            (again.from, again.to, again.skip),
            (Some(t(30)), Some(t(515)), 3)
        );
        // A completed slice leads to one twice as long, up to the window's end.
        let after = ExportPlace::after_slice(t(30), t(515), t(1000)).unwrap();
        assert_eq!(
            (after.from, after.to, after.skip, after.cuts),
            (Some(t(515)), Some(t(1000)), 0, 0)
        );
        assert!(ExportPlace::after_slice(t(515), t(1000), t(1000)).is_none());
    }

    #[test]
    fn unordered_rows_resume_by_count_then_split_from_the_start() {
        let (from, to) = (t(0), t(100));
        let mut p = ExportPlace::default();
        for s in [50, 10, 70] {
            p.saw(Some(t(s)), from, to);
        }
        assert!(p.unordered);
        let next = p.after_cut("emailSend", from, to, true).unwrap();
        assert_eq!(
            (next.from, next.to, next.skip, next.cuts),
            (Some(from), Some(to), 3, 1)
        );
        // Kept breaking: the first half, read from its start.
        let split = next.after_cut("emailSend", from, to, true).unwrap();
        assert_eq!(
            (split.from, split.to, split.skip, split.cuts),
            (Some(from), Some(t(50)), 0, 2)
        );
        // An attempt that got nothing new splits at once.
        let mut q = ExportPlace::default();
        q.saw(None, from, to);
        let split = q.after_cut("emailSend", from, to, false).unwrap();
        assert_eq!((split.to, split.skip), (Some(t(50)), 0));
    }

    #[test]
    fn a_second_that_gets_nowhere_is_an_error() {
        let mut p = ExportPlace::default();
        p.saw(Some(t(5)), t(5), t(6));
        let e = p.after_cut("user", t(5), t(6), false).unwrap_err();
        assert_eq!(e.kind, ErrorKind::Unavailable);
        assert!(e.message.contains("`user` export"), "{}", e.message);
    }
}
