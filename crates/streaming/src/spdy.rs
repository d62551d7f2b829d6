//! SPDY/3.1 framing, as kubectl's port-forward (and the SPDY fallback of exec) speaks it.
//!
//! Frames (all integers big-endian):
//! - control: `1 | version(15)=3 | type(16) | flags(8) | length(24) | payload`;
//! - data: `0 | stream id(31) | flags(8) | length(24) | payload`.
//!
//! Header blocks (SYN_STREAM, SYN_REPLY, HEADERS) are zlib streams primed with SPDY/3's
//! dictionary; each direction of a connection keeps ONE compression context for its whole
//! life, so header blocks must be (de)compressed in frame order.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};

pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const TYPE_SYN_STREAM: u16 = 1;
const TYPE_SYN_REPLY: u16 = 2;
const TYPE_RST_STREAM: u16 = 3;
const TYPE_SETTINGS: u16 = 4;
const TYPE_PING: u16 = 6;
const TYPE_GOAWAY: u16 = 7;
const TYPE_HEADERS: u16 = 8;
const TYPE_WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes we use.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

/// Frames longer than this are refused (a peer sending one is broken or hostile).
const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Header name/value pairs; SPDY/3 requires lowercase names.
pub type Headers = Vec<(String, String)>;

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_id: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    Settings,
    Ping(u32),
    GoAway {
        last_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame of a type we do not know: ignored, as the spec asks.
    Unknown(u16),
}

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1): length-prefixed
/// header names and values, then a block of common value fragments.
pub fn dictionary() -> &'static [u8] {
    static DICT: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    DICT.get_or_init(|| {
        const WORDS: &[&str] = &[
            "options",
            "head",
            "post",
            "put",
            "delete",
            "trace",
            "accept",
            "accept-charset",
            "accept-encoding",
            "accept-language",
            "accept-ranges",
            "age",
            "allow",
            "authorization",
            "cache-control",
            "connection",
            "content-base",
            "content-encoding",
            "content-language",
            "content-length",
            "content-location",
            "content-md5",
            "content-range",
            "content-type",
            "date",
            "etag",
            "expect",
            "expires",
            "from",
            "host",
            "if-match",
            "if-modified-since",
            "if-none-match",
            "if-range",
            "if-unmodified-since",
            "last-modified",
            "location",
            "max-forwards",
            "pragma",
            "proxy-authenticate",
            "proxy-authorization",
            "range",
            "referer",
            "retry-after",
            "server",
            "te",
            "trailer",
            "transfer-encoding",
            "upgrade",
            "user-agent",
            "vary",
            "via",
            "warning",
            "www-authenticate",
            "method",
            "get",
            "status",
            "200 OK",
            "version",
            "HTTP/1.1",
            "url",
            "public",
            "set-cookie",
            "keep-alive",
            "origin",
        ];
        const TAIL: &str = concat!(
            "100101201202205206300302303304305306307402405406407408409410411412413414415416417",
            "502504505203 Non-Authoritative Information204 No Content301 Moved Permanently",
            "400 Bad Request401 Unauthorized403 Forbidden404 Not Found500 Internal Server Error",
            "501 Not Implemented503 Service UnavailableJan Feb Mar Apr May Jun Jul Aug Sept Oct ",
            "Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMTchunked,text/html,image/png,",
            "image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,",
            "text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8",
            "charset=iso-8859-1,utf-,*,enq=0.",
        );
        let mut dict = Vec::new();
        for word in WORDS {
            dict.extend_from_slice(&(word.len() as u32).to_be_bytes());
            dict.extend_from_slice(word.as_bytes());
        }
        dict.extend_from_slice(TAIL.as_bytes());
        dict
    })
}

/// Encodes frames of one direction of a connection (owns the outbound zlib context).
pub struct Encoder {
    deflate: Compress,
}

impl Default for Encoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Encoder {
    pub fn new() -> Encoder {
        let mut deflate = Compress::new(Compression::default(), true);
        deflate
            .set_dictionary(dictionary())
            .expect("a fresh deflate stream accepts a dictionary");
        Encoder { deflate }
    }

    fn header_block(&mut self, headers: &Headers) -> io::Result<Vec<u8>> {
        let mut plain = Vec::new();
        plain.put_u32(headers.len() as u32);
        for (name, value) in headers {
            plain.put_u32(name.len() as u32);
            plain.extend_from_slice(name.as_bytes());
            plain.put_u32(value.len() as u32);
            plain.extend_from_slice(value.as_bytes());
        }
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut input: &[u8] = &plain;
        loop {
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            let before_in = self.deflate.total_in();
            let before_out = self.deflate.total_out();
            self.deflate
                .compress_vec(input, &mut out, FlushCompress::Sync)
                .map_err(|e| io::Error::other(format!("spdy header compression: {e}")))?;
            let consumed = (self.deflate.total_in() - before_in) as usize;
            input = &input[consumed..];
            let produced = self.deflate.total_out() - before_out;
            // A sync flush is complete when everything is consumed and output space is left.
            if input.is_empty() && out.len() < out.capacity() && (produced > 0 || consumed == 0) {
                break;
            }
        }
        Ok(out)
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut BytesMut) -> io::Result<()> {
        let control = |out: &mut BytesMut, kind: u16, flags: u8, payload: &[u8]| {
            out.put_u16(0x8000 | 3);
            out.put_u16(kind);
            out.put_u32(((flags as u32) << 24) | payload.len() as u32);
            out.extend_from_slice(payload);
        };
        match frame {
            Frame::SynStream {
                stream_id,
                associated_id,
                priority,
                flags,
                headers,
            } => {
                let mut payload = Vec::new();
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(associated_id & 0x7fff_ffff);
                payload.put_u8((priority & 0x7) << 5);
                payload.put_u8(0);
                payload.extend_from_slice(&self.header_block(headers)?);
                control(out, TYPE_SYN_STREAM, *flags, &payload);
            }
            Frame::SynReply {
                stream_id,
                flags,
                headers,
            } => {
                let mut payload = Vec::new();
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.extend_from_slice(&self.header_block(headers)?);
                control(out, TYPE_SYN_REPLY, *flags, &payload);
            }
            Frame::Headers {
                stream_id,
                flags,
                headers,
            } => {
                let mut payload = Vec::new();
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.extend_from_slice(&self.header_block(headers)?);
                control(out, TYPE_HEADERS, *flags, &payload);
            }
            Frame::RstStream { stream_id, status } => {
                let mut payload = Vec::new();
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(*status);
                control(out, TYPE_RST_STREAM, 0, &payload);
            }
            Frame::Settings => control(out, TYPE_SETTINGS, 0, &0u32.to_be_bytes()),
            Frame::Ping(id) => control(out, TYPE_PING, 0, &id.to_be_bytes()),
            Frame::GoAway {
                last_stream_id,
                status,
            } => {
                let mut payload = Vec::new();
                payload.put_u32(last_stream_id & 0x7fff_ffff);
                payload.put_u32(*status);
                control(out, TYPE_GOAWAY, 0, &payload);
            }
            Frame::WindowUpdate { stream_id, delta } => {
                let mut payload = Vec::new();
                payload.put_u32(stream_id & 0x7fff_ffff);
                payload.put_u32(delta & 0x7fff_ffff);
                control(out, TYPE_WINDOW_UPDATE, 0, &payload);
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                out.put_u32(stream_id & 0x7fff_ffff);
                out.put_u32(((*flags as u32) << 24) | data.len() as u32);
                out.extend_from_slice(data);
            }
            Frame::Unknown(_) => {}
        }
        Ok(())
    }
}

/// Decodes the frames of one direction of a connection (owns the inbound zlib context).
pub struct Decoder {
    inflate: Decompress,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    pub fn new() -> Decoder {
        Decoder {
            inflate: Decompress::new(true),
        }
    }

    fn header_block(&mut self, compressed: &[u8]) -> io::Result<Headers> {
        let mut plain = Vec::with_capacity(compressed.len() * 4 + 256);
        let mut input = compressed;
        loop {
            if plain.capacity() - plain.len() < 256 {
                plain.reserve(plain.capacity().max(1024));
            }
            let before_in = self.inflate.total_in();
            let before_out = self.inflate.total_out();
            let result = self
                .inflate
                .decompress_vec(input, &mut plain, FlushDecompress::Sync);
            let consumed = (self.inflate.total_in() - before_in) as usize;
            input = &input[consumed..];
            match result {
                Ok(_) => {}
                Err(err) if err.needs_dictionary().is_some() => {
                    self.inflate.set_dictionary(dictionary()).map_err(|e| {
                        io::Error::new(io::ErrorKind::InvalidData, format!("spdy dictionary: {e}"))
                    })?;
                    continue;
                }
                Err(err) => {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!("spdy header block: {err}"),
                    ));
                }
            }
            let produced = self.inflate.total_out() - before_out;
            if input.is_empty() && plain.len() < plain.capacity() {
                break;
            }
            if consumed == 0 && produced == 0 && plain.len() < plain.capacity() {
                break;
            }
        }
        parse_header_block(&plain)
    }

    /// Takes one complete frame off the front of `buf`, `None` when more bytes are needed.
    pub fn decode(&mut self, buf: &mut BytesMut) -> io::Result<Option<Frame>> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let length = (u32::from_be_bytes([0, buf[5], buf[6], buf[7]])) as usize;
        if length > MAX_FRAME_LEN {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "spdy frame too large",
            ));
        }
        if buf.len() < 8 + length {
            return Ok(None);
        }
        let mut frame = buf.split_to(8 + length).freeze();
        let first = frame.get_u32();
        let flags_len = frame.get_u32();
        let flags = (flags_len >> 24) as u8;
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data {
                stream_id: first & 0x7fff_ffff,
                flags,
                data: frame,
            }));
        }
        let kind = (first & 0xffff) as u16;
        let short = || io::Error::new(io::ErrorKind::InvalidData, "spdy control frame too short");
        let frame = match kind {
            TYPE_SYN_STREAM => {
                if frame.len() < 10 {
                    return Err(short());
                }
                let stream_id = frame.get_u32() & 0x7fff_ffff;
                let associated_id = frame.get_u32() & 0x7fff_ffff;
                let priority = frame.get_u8() >> 5;
                let _slot = frame.get_u8();
                let headers = self.header_block(&frame)?;
                Frame::SynStream {
                    stream_id,
                    associated_id,
                    priority,
                    flags,
                    headers,
                }
            }
            TYPE_SYN_REPLY | TYPE_HEADERS => {
                if frame.len() < 4 {
                    return Err(short());
                }
                let stream_id = frame.get_u32() & 0x7fff_ffff;
                let headers = self.header_block(&frame)?;
                if kind == TYPE_SYN_REPLY {
                    Frame::SynReply {
                        stream_id,
                        flags,
                        headers,
                    }
                } else {
                    Frame::Headers {
                        stream_id,
                        flags,
                        headers,
                    }
                }
            }
            TYPE_RST_STREAM | TYPE_GOAWAY | TYPE_WINDOW_UPDATE => {
                if frame.len() < 8 {
                    return Err(short());
                }
                let a = frame.get_u32() & 0x7fff_ffff;
                let b = frame.get_u32();
                match kind {
                    TYPE_RST_STREAM => Frame::RstStream {
                        stream_id: a,
                        status: b,
                    },
                    TYPE_GOAWAY => Frame::GoAway {
                        last_stream_id: a,
                        status: b,
                    },
                    _ => Frame::WindowUpdate {
                        stream_id: a,
                        delta: b & 0x7fff_ffff,
                    },
                }
            }
            TYPE_PING => {
                if frame.len() < 4 {
                    return Err(short());
                }
                Frame::Ping(frame.get_u32())
            }
            TYPE_SETTINGS => Frame::Settings,
            other => Frame::Unknown(other),
        };
        Ok(Some(frame))
    }
}

fn parse_header_block(mut plain: &[u8]) -> io::Result<Headers> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "spdy header block truncated");
    let take_u32 = |plain: &mut &[u8]| -> io::Result<usize> {
        if plain.len() < 4 {
            return Err(bad());
        }
        Ok(plain.get_u32() as usize)
    };
    let count = take_u32(&mut plain)?;
    let mut headers = Vec::with_capacity(count.min(64));
    for _ in 0..count {
        let mut pair = [String::new(), String::new()];
        for part in &mut pair {
            let len = take_u32(&mut plain)?;
            if plain.len() < len {
                return Err(bad());
            }
            *part = String::from_utf8_lossy(&plain[..len]).into_owned();
            plain.advance(len);
        }
        let [name, value] = pair;
        headers.push((name.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

/// The first value of header `name` (case-insensitive).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_has_the_spec_length_and_ends() {
        let dict = dictionary();
        assert_eq!(&dict[..11], b"\0\0\0\x07options");
        assert!(dict.ends_with(b",*,enq=0."));
        assert_eq!(dict.len(), 1423);
    }

    #[test]
    fn frames_round_trip_with_one_context_per_direction() {
        let mut enc = Encoder::new();
        let mut dec = Decoder::new();
        let mut wire = BytesMut::new();
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated_id: 0,
                priority: 0,
                flags: 0,
                headers: vec![
                    ("streamtype".into(), "error".into()),
                    ("port".into(), "8080".into()),
                    ("requestid".into(), "0".into()),
                ],
            },
            Frame::SynStream {
                stream_id: 3,
                associated_id: 0,
                priority: 0,
                flags: FLAG_FIN,
                headers: vec![("streamtype".into(), "data".into())],
            },
            Frame::Data {
                stream_id: 3,
                flags: FLAG_FIN,
                data: Bytes::from_static(b"hello"),
            },
            Frame::SynReply {
                stream_id: 1,
                flags: 0,
                headers: vec![],
            },
            Frame::Ping(7),
            Frame::RstStream {
                stream_id: 3,
                status: RST_CANCEL,
            },
            Frame::GoAway {
                last_stream_id: 3,
                status: 0,
            },
            Frame::WindowUpdate {
                stream_id: 1,
                delta: 100,
            },
        ];
        for f in &frames {
            enc.encode(f, &mut wire).unwrap();
        }
        // Byte-at-a-time delivery must decode the same frames.
        let mut buf = BytesMut::new();
        let mut got = Vec::new();
        for b in wire.iter() {
            buf.put_u8(*b);
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }
}
