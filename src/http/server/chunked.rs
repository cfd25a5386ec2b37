//! `Transfer-Encoding: chunked` request bodies: checking that a body is
//! complete and within its limits, then decoding it in place.
//!
//! Why in place: the handler gets `&mut [u8]` for simd-json to parse without
//! a copy, and decoded data is never longer than its encoding, so the chunks
//! can be slid down to the start of the body region.
//!
//! Parsing is strict (CRLF line ends, hex sizes only, bounded lines) because
//! a lenient chunk parser behind a strict proxy is how request smuggling works.

use super::codec::HttpError;

/// Bounds for one chunked body.
#[derive(Debug, Clone, Copy)]
pub(super) struct ChunkLimits {
    /// Largest decoded body.
    pub body_bytes_max: usize,
    /// Largest chunk-size line or trailer line.
    pub line_bytes_max: usize,
    /// Most framing bytes (encoded length minus decoded length).
    pub overhead_bytes_max: usize,
}

/// Where a scan of a chunked body stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Scan {
    /// More bytes are needed.
    Partial,
    /// The whole body is here: `raw_len` encoded bytes decode to `decoded_len`.
    Complete { raw_len: usize, decoded_len: usize },
}

/// Where a scan of an incomplete body stopped: at a chunk boundary (or at
/// a trailer line), with what it had counted. `Default` is the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Resume {
    pos: usize,
    decoded: usize,
    /// Start of the trailer section once the last chunk was seen.
    trailers_at: Option<usize>,
}

/// Checks a chunked body starting at `buf[0]` without changing it.
#[cfg(test)]
pub(super) fn scan(buf: &mut [u8], lim: &ChunkLimits) -> Result<Scan, HttpError> {
    scan_resume(buf, lim, &mut Resume::default())
}

/// `scan`, resuming where the last scan of this body (a prefix of `buf`)
/// stopped, so a body trickled in costs linear time.
pub(super) fn scan_resume(
    buf: &mut [u8],
    lim: &ChunkLimits,
    resume: &mut Resume,
) -> Result<Scan, HttpError> {
    walk(buf, lim, false, resume)
}

/// Decodes a body that `scan` found complete, in place; returns the decoded
/// length (the data is then `buf[..len]`).
pub(super) fn decode_in_place(buf: &mut [u8], lim: &ChunkLimits) -> Result<usize, HttpError> {
    match walk(buf, lim, true, &mut Resume::default())? {
        Scan::Complete { decoded_len, .. } => Ok(decoded_len),
        // `scan` said complete; a second walk over the same bytes agrees.
        Scan::Partial => Err(HttpError::BadRequest("incomplete chunked body")),
    }
}

/// One pass over the chunks, from `resume`. With `compact` (always from the
/// start), each chunk's data is moved down to follow the previous one; that
/// only writes behind the read cursor, so parsing ahead is unaffected.
fn walk(
    buf: &mut [u8],
    lim: &ChunkLimits,
    compact: bool,
    resume: &mut Resume,
) -> Result<Scan, HttpError> {
    let Resume {
        mut pos,
        mut decoded,
        trailers_at,
    } = *resume;
    if let Some(at) = trailers_at {
        return end_of_body(buf, lim, at, pos, decoded, resume);
    }
    loop {
        *resume = Resume {
            pos,
            decoded,
            trailers_at: None,
        };
        let Some((size, line_len)) = size_line(&buf[pos..], lim)? else {
            return Ok(Scan::Partial);
        };
        pos += line_len;
        // Everything consumed so far that is not data is framing.
        if pos - decoded > lim.overhead_bytes_max {
            return Err(HttpError::BodyTooLarge);
        }
        let data_at = decoded;
        decoded = decoded.checked_add(size).ok_or(HttpError::BodyTooLarge)?;
        if decoded > lim.body_bytes_max {
            return Err(HttpError::BodyTooLarge);
        }
        if size == 0 {
            return end_of_body(buf, lim, pos, pos, decoded, resume);
        }
        // The data plus its CRLF must be here before the chunk counts.
        let data_end = pos + size;
        if buf.len() < data_end + 2 {
            return Ok(Scan::Partial);
        }
        if &buf[data_end..data_end + 2] != b"\r\n" {
            return Err(HttpError::BadRequest("chunk data not followed by CRLF"));
        }
        if compact {
            buf.copy_within(pos..data_end, data_at);
        }
        pos = data_end + 2;
    }
}

/// The trailer section from `at`, checked from its line at `line_at`; on
/// `Partial`, `resume` points at the incomplete trailer line.
fn end_of_body(
    buf: &[u8],
    lim: &ChunkLimits,
    at: usize,
    line_at: usize,
    decoded: usize,
    resume: &mut Resume,
) -> Result<Scan, HttpError> {
    let trailer_len = match trailers(&buf[at..], line_at - at, lim)? {
        Ok(len) => len,
        Err(next_line) => {
            *resume = Resume {
                pos: at + next_line,
                decoded,
                trailers_at: Some(at),
            };
            return Ok(Scan::Partial);
        }
    };
    let raw_len = at + trailer_len;
    if raw_len - decoded > lim.overhead_bytes_max {
        return Err(HttpError::BodyTooLarge);
    }
    Ok(Scan::Complete {
        raw_len,
        decoded_len: decoded,
    })
}

/// Parses `1*HEXDIG [ ";" ext ] CRLF`: Some((size, line length)) or None if
/// the line is not complete yet.
fn size_line(buf: &[u8], lim: &ChunkLimits) -> Result<Option<(usize, usize)>, HttpError> {
    #[cfg(test)]
    tests::LINES.with(|c| c.set(c.get() + 1));
    let window = &buf[..buf.len().min(lim.line_bytes_max)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        if buf.len() >= lim.line_bytes_max {
            return Err(HttpError::BadRequest("chunk size line too long"));
        }
        return Ok(None);
    };
    if lf == 0 || buf[lf - 1] != b'\r' {
        return Err(HttpError::BadRequest("chunk size line must end in CRLF"));
    }
    let line = &buf[..lf - 1];
    let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
    if digits == 0 {
        return Err(HttpError::BadRequest("chunk size is not hexadecimal"));
    }
    let rest = &line[digits..];
    // Only whitespace (BWS) may sit between the size and a `;` extension:
    // `1 2` is no size of 1 (found by the `chunked` fuzz target; a lenient
    // parse behind a proxy that reads it otherwise is a smuggling vector).
    let bws = rest
        .iter()
        .take_while(|&&b| b == b' ' || b == b'\t')
        .count();
    if rest.get(bws).is_some_and(|&b| b != b';') {
        return Err(HttpError::BadRequest("chunk size is not hexadecimal"));
    }
    if rest.iter().any(|&b| b == b'\r' || b == 0) {
        return Err(HttpError::BadRequest("bad chunk extension"));
    }
    let mut size = 0usize;
    for &b in &line[..digits] {
        // A size over the body limit fails here, before its data is awaited.
        let d = (b as char).to_digit(16).unwrap_or(0) as usize;
        size = size
            .checked_mul(16)
            .and_then(|s| s.checked_add(d))
            .ok_or(HttpError::BodyTooLarge)?;
        if size > lim.body_bytes_max {
            return Err(HttpError::BodyTooLarge);
        }
    }
    Ok(Some((size, lf + 1)))
}

/// Skips the trailer section (`*( field-line CRLF ) CRLF`), checking lines
/// from `pos` (the ones before were checked); trailers are not passed on.
/// Ok(length), or Err(start of the incomplete line) if not complete yet.
fn trailers(
    buf: &[u8],
    mut pos: usize,
    lim: &ChunkLimits,
) -> Result<Result<usize, usize>, HttpError> {
    loop {
        #[cfg(test)]
        tests::LINES.with(|c| c.set(c.get() + 1));
        let rest = &buf[pos..];
        let window = &rest[..rest.len().min(lim.line_bytes_max)];
        let Some(lf) = window.iter().position(|&b| b == b'\n') else {
            if rest.len() >= lim.line_bytes_max {
                return Err(HttpError::HeadersTooLarge);
            }
            return Ok(Err(pos));
        };
        if lf == 0 || rest[lf - 1] != b'\r' {
            return Err(HttpError::BadRequest("trailer line must end in CRLF"));
        }
        pos += lf + 1;
        if lf == 1 {
            return Ok(Ok(pos));
        }
        if pos > lim.overhead_bytes_max {
            return Err(HttpError::HeadersTooLarge);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    thread_local! {
        /// Size and trailer lines looked at (a test hook for linear scans).
        pub static LINES: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }

    const LIM: ChunkLimits = ChunkLimits {
        body_bytes_max: 100,
        line_bytes_max: 32,
        overhead_bytes_max: 200,
    };

    fn decode(input: &[u8]) -> Result<(Vec<u8>, usize), HttpError> {
        let mut buf = input.to_vec();
        match scan(&mut buf, &LIM)? {
            Scan::Partial => Err(HttpError::BadRequest("partial")),
            Scan::Complete {
                raw_len,
                decoded_len,
            } => {
                assert_eq!(buf, input, "scan must not change the buffer");
                let n = decode_in_place(&mut buf, &LIM)?;
                assert_eq!(n, decoded_len);
                Ok((buf[..n].to_vec(), raw_len))
            }
        }
    }

    #[test]
    fn decodes_chunks_extensions_and_trailers() {
        let input = b"4\r\nWiki\r\n5;name=v\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\nGET /next";
        let (body, raw) = decode(input).unwrap();
        assert_eq!(body, b"Wikipedia");
        assert_eq!(&input[raw..], b"GET /next");
    }

    #[test]
    fn every_prefix_is_partial() {
        let input = b"a\r\n0123456789\r\n0\r\n\r\n";
        for cut in 0..input.len() {
            let mut buf = input[..cut].to_vec();
            assert_eq!(scan(&mut buf, &LIM), Ok(Scan::Partial), "cut at {cut}");
        }
        assert_eq!(decode(input).unwrap().0, b"0123456789");
    }

    #[test]
    fn decoded_size_over_limit_is_413_before_data_arrives() {
        let mut buf = b"65\r\n".to_vec(); // 101 > 100, no data yet
        assert_eq!(scan(&mut buf, &LIM), Err(HttpError::BodyTooLarge));
        let mut buf = b"ffffffffffffffffffffff\r\n".to_vec();
        assert_eq!(scan(&mut buf, &LIM), Err(HttpError::BodyTooLarge));
        let mut many = Vec::new();
        for _ in 0..11 {
            many.extend_from_slice(b"a\r\n0123456789\r\n");
        }
        assert_eq!(scan(&mut many, &LIM), Err(HttpError::BodyTooLarge));
    }

    #[test]
    fn framing_overhead_is_bounded() {
        let mut tiny = Vec::new();
        for _ in 0..60 {
            tiny.extend_from_slice(b"1;aaaaaaaa\r\nx\r\n"); // 15 bytes of framing per byte
        }
        assert_eq!(scan(&mut tiny, &LIM), Err(HttpError::BodyTooLarge));
    }

    /// Issue #7 point 8: a body trickled in byte by byte is scanned once,
    /// not from its start on every read.
    #[test]
    fn a_trickled_body_is_scanned_incrementally() {
        let lim = ChunkLimits {
            body_bytes_max: 10_000,
            line_bytes_max: 32,
            overhead_bytes_max: 10_000,
        };
        let mut input = Vec::new();
        for _ in 0..300 {
            input.extend_from_slice(b"1\r\nx\r\n");
        }
        input.extend_from_slice(b"0\r\nA: 1\r\nB: 2\r\n\r\n");
        let mut resume = Resume::default();
        LINES.with(|c| c.set(0));
        for cut in 1..input.len() {
            let mut buf = input[..cut].to_vec();
            assert_eq!(
                scan_resume(&mut buf, &lim, &mut resume),
                Ok(Scan::Partial),
                "cut {cut}"
            );
        }
        let mut buf = input.clone();
        let done = scan_resume(&mut buf, &lim, &mut resume);
        assert_eq!(
            done,
            Ok(Scan::Complete {
                raw_len: input.len(),
                decoded_len: 300
            })
        );
        let lines = LINES.with(|c| c.get());
        assert!(
            lines <= 2 * input.len(),
            "{lines} lines looked at for {} bytes",
            input.len()
        );
        assert_eq!(
            scan(&mut input.clone(), &lim),
            done,
            "the same answer as a scan from the start"
        );
    }

    #[test]
    fn malformed_framing_is_400() {
        for bad in [
            &b"x\r\n"[..],
            b"4\nWiki\r\n",
            b"4\r\nWikiXX",
            b"\r\n",
            b"4 zz\rq\r\n",
            b"-1\r\n",
        ] {
            let mut buf = bad.to_vec();
            assert!(
                matches!(scan(&mut buf, &LIM), Err(HttpError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        // Issue #7 point 7 (fuzz/regressions/chunked): text after the size
        // that is not an extension.
        for bad in [
            &b"1 2\r\nx\r\n0\r\n\r\n"[..],
            b"3;n=\r\nabX\r\n0 *0\r\n\r\n",
            b"1\t=\r\nx\r\n0\r\n\r\n",
        ] {
            let mut buf = bad.to_vec();
            assert!(
                matches!(scan(&mut buf, &LIM), Err(HttpError::BadRequest(_))),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert_eq!(decode(b"1 \t;a=b\r\nx\r\n0 \r\n\r\n").unwrap().0, b"x");
        let mut long = vec![b'0'; 40];
        assert!(matches!(
            scan(&mut long, &LIM),
            Err(HttpError::BadRequest(_))
        ));
    }
}
