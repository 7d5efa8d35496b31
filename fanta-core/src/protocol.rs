//! Fantaprotocol v1: frame layout, encoding and incremental decoding.
//!
//! Every frame, in both directions, is a big-endian `u32` length followed by `length` bytes:
//! a `u8` kind, a `u32` request id and `length - 5` bytes of payload. `docs/PROTOCOL.md`
//! describes the conversation; this module only turns frames into bytes and back.
//!
//! The decoder never trusts the peer: a length below [`HEADER_LEN`], a length above the
//! receiver's maximum or an unknown kind is a [`ProtocolError`], and the caller is expected to
//! close the connection. Decoding is incremental, so a frame split across reads is kept in the
//! buffer until it is complete.

use std::fmt;

use bytes::{Buf, BufMut, Bytes, BytesMut};

/// The protocol version this crate speaks.
pub const VERSION: u16 = 1;

/// Bytes counted by `length` that are not payload: the kind (1) and the request id (4).
pub const HEADER_LEN: u32 = 5;

/// Bytes of the length field itself.
pub const LENGTH_FIELD_LEN: usize = 4;

/// The default largest `length` a client accepts from a server: 16 MiB.
pub const DEFAULT_MAX_FRAME_LENGTH: u32 = 16 * 1024 * 1024;

/// The kind byte of a frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum FrameKind {
    /// First frame each way, id 0.
    Hello = 0,
    /// Client to server; id non-zero and unique among the connection's in-flight requests.
    Request = 1,
    /// Server to client; answers the request with the same id.
    Response = 2,
    /// Server to client; the request with that id failed, or with id 0 the whole connection did.
    Error = 3,
    /// Either direction; the receiver sends back a PONG with the same id and payload.
    Ping = 4,
    /// Either direction; the reply to a PING.
    Pong = 5,
    /// Server to client, id 0; no new requests may be sent on this connection.
    Goaway = 6,
}

impl FrameKind {
    /// Maps a kind byte to a kind, or `None` for a byte that v1 does not define.
    pub fn from_u8(byte: u8) -> Option<FrameKind> {
        Some(match byte {
            0 => FrameKind::Hello,
            1 => FrameKind::Request,
            2 => FrameKind::Response,
            3 => FrameKind::Error,
            4 => FrameKind::Ping,
            5 => FrameKind::Pong,
            6 => FrameKind::Goaway,
            _ => return None,
        })
    }
}

/// One decoded frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub id: u32,
    pub payload: Bytes,
}

impl Frame {
    pub fn new(kind: FrameKind, id: u32, payload: impl Into<Bytes>) -> Frame {
        Frame {
            kind,
            id,
            payload: payload.into(),
        }
    }

    /// Appends this frame's wire form to `dst`.
    pub fn encode(&self, dst: &mut BytesMut) {
        encode_frame(dst, self.kind, self.id, &self.payload);
    }
}

/// A violation of Fantaprotocol v1 by the peer. The connection it happened on must be closed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProtocolError {
    /// The length field is below 5, so the frame cannot hold a kind and an id.
    LengthTooSmall { length: u32 },
    /// The length field is above the largest frame this side accepts.
    LengthTooLarge { length: u32, max: u32 },
    /// The kind byte is not one of the seven v1 kinds.
    UnknownKind { kind: u8 },
    /// The first frame was not a HELLO, or a HELLO arrived later in the conversation.
    UnexpectedFrame { kind: FrameKind, id: u32 },
    /// A HELLO payload is too short for its fields.
    MalformedHello { payload_len: usize },
    /// The peer speaks another protocol version.
    UnsupportedVersion { version: u16 },
    /// The payload length does not fit in the `u32` length field.
    PayloadTooLarge { payload_len: usize },
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::LengthTooSmall { length } => {
                write!(
                    f,
                    "frame length {length} is below the minimum of {HEADER_LEN}"
                )
            }
            ProtocolError::LengthTooLarge { length, max } => {
                write!(f, "frame length {length} exceeds the maximum of {max}")
            }
            ProtocolError::UnknownKind { kind } => write!(f, "unknown frame kind {kind}"),
            ProtocolError::UnexpectedFrame { kind, id } => {
                write!(f, "unexpected {kind:?} frame with id {id}")
            }
            ProtocolError::MalformedHello { payload_len } => {
                write!(f, "HELLO payload of {payload_len} bytes is too short")
            }
            ProtocolError::UnsupportedVersion { version } => {
                write!(
                    f,
                    "peer speaks protocol version {version}, expected {VERSION}"
                )
            }
            ProtocolError::PayloadTooLarge { payload_len } => {
                write!(
                    f,
                    "payload of {payload_len} bytes does not fit in a frame length field"
                )
            }
        }
    }
}

impl std::error::Error for ProtocolError {}

/// Appends one frame to `dst`.
///
/// # Panics
///
/// Panics if `payload` is longer than `u32::MAX - 5` bytes. Callers check request sizes
/// against the negotiated maximum before encoding, so this only fires on a bug.
pub fn encode_frame(dst: &mut BytesMut, kind: FrameKind, id: u32, payload: &[u8]) {
    let length = u32::try_from(payload.len())
        .ok()
        .and_then(|len| len.checked_add(HEADER_LEN))
        .expect("payload length checked before encoding");

    dst.reserve(LENGTH_FIELD_LEN + length as usize);
    dst.put_u32(length);
    dst.put_u8(kind as u8);
    dst.put_u32(id);
    dst.put_slice(payload);
}

/// Returns the `length` field a frame with `payload_len` bytes of payload would carry.
pub fn frame_length(payload_len: usize) -> Result<u32, ProtocolError> {
    u32::try_from(payload_len)
        .ok()
        .and_then(|len| len.checked_add(HEADER_LEN))
        .ok_or(ProtocolError::PayloadTooLarge { payload_len })
}

/// Incremental frame decoder with a maximum accepted frame length.
#[derive(Clone, Debug)]
pub struct Decoder {
    max_length: u32,
}

impl Decoder {
    /// Creates a decoder that rejects frames whose `length` exceeds `max_length`.
    pub fn new(max_length: u32) -> Decoder {
        Decoder { max_length }
    }

    pub fn max_length(&self) -> u32 {
        self.max_length
    }

    /// Takes one complete frame off the front of `src`.
    ///
    /// Returns `Ok(None)` while `src` holds only part of a frame; in that case `src` is left
    /// unchanged and more bytes should be read into it. The length is checked as soon as its 4
    /// bytes are present and the kind at the 5th byte, so an oversized or unknown frame is
    /// rejected before its payload arrives.
    pub fn decode(&self, src: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if src.len() < LENGTH_FIELD_LEN {
            return Ok(None);
        }

        let length = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        if length < HEADER_LEN {
            return Err(ProtocolError::LengthTooSmall { length });
        }
        if length > self.max_length {
            return Err(ProtocolError::LengthTooLarge {
                length,
                max: self.max_length,
            });
        }

        if src.len() < LENGTH_FIELD_LEN + 1 {
            return Ok(None);
        }
        let kind = FrameKind::from_u8(src[LENGTH_FIELD_LEN])
            .ok_or(ProtocolError::UnknownKind { kind: src[4] })?;

        let total = LENGTH_FIELD_LEN + length as usize;
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }

        let mut frame = src.split_to(total);
        frame.advance(LENGTH_FIELD_LEN + 1);
        let id = frame.get_u32();

        Ok(Some(Frame {
            kind,
            id,
            payload: frame.freeze(),
        }))
    }
}

/// The client's HELLO payload.
pub fn client_hello_payload() -> [u8; 2] {
    VERSION.to_be_bytes()
}

/// The fields of a server's HELLO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerHello {
    pub version: u16,
    /// The largest frame `length` the server accepts.
    pub max_frame_length: u32,
    /// Requests the server accepts in flight per connection; 0 means no limit.
    pub max_in_flight: u32,
}

impl ServerHello {
    pub const PAYLOAD_LEN: usize = 10;

    pub fn encode(&self) -> [u8; Self::PAYLOAD_LEN] {
        let mut out = [0u8; Self::PAYLOAD_LEN];
        out[0..2].copy_from_slice(&self.version.to_be_bytes());
        out[2..6].copy_from_slice(&self.max_frame_length.to_be_bytes());
        out[6..10].copy_from_slice(&self.max_in_flight.to_be_bytes());
        out
    }

    /// Parses a server HELLO payload and checks that it speaks version 1.
    ///
    /// Bytes after the three v1 fields are ignored, so that a later minor revision can append
    /// fields without breaking v1 clients.
    pub fn decode(payload: &[u8]) -> Result<ServerHello, ProtocolError> {
        if payload.len() < Self::PAYLOAD_LEN {
            return Err(ProtocolError::MalformedHello {
                payload_len: payload.len(),
            });
        }

        let version = u16::from_be_bytes([payload[0], payload[1]]);
        if version != VERSION {
            return Err(ProtocolError::UnsupportedVersion { version });
        }

        Ok(ServerHello {
            version,
            max_frame_length: u32::from_be_bytes([payload[2], payload[3], payload[4], payload[5]]),
            max_in_flight: u32::from_be_bytes([payload[6], payload[7], payload[8], payload[9]]),
        })
    }
}

/// Parses a client HELLO payload and checks that it speaks version 1.
pub fn decode_client_hello(payload: &[u8]) -> Result<u16, ProtocolError> {
    if payload.len() < 2 {
        return Err(ProtocolError::MalformedHello {
            payload_len: payload.len(),
        });
    }

    let version = u16::from_be_bytes([payload[0], payload[1]]);
    if version != VERSION {
        return Err(ProtocolError::UnsupportedVersion { version });
    }
    Ok(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(kind: FrameKind, id: u32, payload: &[u8]) -> BytesMut {
        let mut buf = BytesMut::new();
        encode_frame(&mut buf, kind, id, payload);
        buf
    }

    #[test]
    fn encode_matches_wire_layout() {
        let buf = encoded(FrameKind::Request, 0x0102_0304, b"hi");
        assert_eq!(&buf[..], &[0, 0, 0, 7, 1, 1, 2, 3, 4, b'h', b'i']);
    }

    #[test]
    fn decode_round_trips_every_kind() {
        let decoder = Decoder::new(DEFAULT_MAX_FRAME_LENGTH);
        for byte in 0..=6u8 {
            let kind = FrameKind::from_u8(byte).unwrap();
            let mut buf = encoded(kind, 42, b"payload");
            let frame = decoder.decode(&mut buf).unwrap().unwrap();
            assert_eq!(frame, Frame::new(kind, 42, &b"payload"[..]));
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn decode_waits_for_split_frame() {
        let decoder = Decoder::new(DEFAULT_MAX_FRAME_LENGTH);
        let full = encoded(FrameKind::Response, 7, b"abcdef");
        let mut buf = BytesMut::new();
        for (i, byte) in full.iter().enumerate() {
            buf.put_u8(*byte);
            let result = decoder.decode(&mut buf).unwrap();
            if i + 1 < full.len() {
                assert!(result.is_none(), "frame decoded early at byte {i}");
            } else {
                assert_eq!(result.unwrap().payload, &b"abcdef"[..]);
            }
        }
    }

    #[test]
    fn decode_rejects_short_length() {
        let decoder = Decoder::new(DEFAULT_MAX_FRAME_LENGTH);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 4, 1, 0, 0, 0][..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ProtocolError::LengthTooSmall { length: 4 })
        );
    }

    #[test]
    fn decode_rejects_oversized_length_before_payload() {
        let decoder = Decoder::new(100);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 101][..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ProtocolError::LengthTooLarge {
                length: 101,
                max: 100
            })
        );
    }

    #[test]
    fn decode_rejects_unknown_kind() {
        let decoder = Decoder::new(DEFAULT_MAX_FRAME_LENGTH);
        let mut buf = BytesMut::from(&[0u8, 0, 0, 5, 9][..]);
        assert_eq!(
            decoder.decode(&mut buf),
            Err(ProtocolError::UnknownKind { kind: 9 })
        );
    }

    #[test]
    fn server_hello_round_trips() {
        let hello = ServerHello {
            version: 1,
            max_frame_length: 1 << 20,
            max_in_flight: 128,
        };
        assert_eq!(ServerHello::decode(&hello.encode()), Ok(hello));
    }

    #[test]
    fn server_hello_rejects_other_version() {
        let mut payload = ServerHello {
            version: 1,
            max_frame_length: 1,
            max_in_flight: 0,
        }
        .encode();
        payload[1] = 2;
        assert_eq!(
            ServerHello::decode(&payload),
            Err(ProtocolError::UnsupportedVersion { version: 2 })
        );
    }
}
