//! Minimal protobuf wire-format reader.

use crate::ProtoError;

/// Protobuf wire types (groups, 3 and 4, are not used by Kubernetes and are rejected).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WireType {
    Varint,
    Fixed64,
    LengthDelimited,
    Fixed32,
}

impl WireType {
    pub(crate) fn name(self) -> &'static str {
        match self {
            WireType::Varint => "varint",
            WireType::Fixed64 => "fixed64",
            WireType::LengthDelimited => "length-delimited",
            WireType::Fixed32 => "fixed32",
        }
    }
}

/// One decoded field occurrence.
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Bytes(&'a [u8]),
    /// No Kubernetes field uses fixed32; the value is only skipped.
    Fixed32,
}

impl WireValue<'_> {
    pub(crate) fn wire_type(&self) -> WireType {
        match self {
            WireValue::Varint(_) => WireType::Varint,
            WireValue::Fixed64(_) => WireType::Fixed64,
            WireValue::Bytes(_) => WireType::LengthDelimited,
            WireValue::Fixed32 => WireType::Fixed32,
        }
    }
}

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn read_varint(&mut self) -> Result<u64, ProtoError> {
        let mut value: u64 = 0;
        for index in 0..10 {
            let Some(&byte) = self.buf.get(self.pos) else {
                return Err(ProtoError::Truncated(
                    "varint runs past the end of the message",
                ));
            };
            self.pos += 1;
            // The tenth byte may only contribute the top bit of a 64-bit value.
            if index == 9 && byte > 1 {
                return Err(ProtoError::Malformed("varint longer than 64 bits".into()));
            }
            value |= u64::from(byte & 0x7f) << (7 * index);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtoError::Malformed("varint longer than 10 bytes".into()))
    }

    fn read_fixed<const N: usize>(&mut self) -> Result<[u8; N], ProtoError> {
        let end = self.pos.checked_add(N).filter(|&end| end <= self.buf.len());
        let Some(end) = end else {
            return Err(ProtoError::Truncated(
                "fixed-width value runs past the end of the message",
            ));
        };
        let mut out = [0u8; N];
        out.copy_from_slice(&self.buf[self.pos..end]);
        self.pos = end;
        Ok(out)
    }

    pub(crate) fn read_fixed64(&mut self) -> Result<u64, ProtoError> {
        Ok(u64::from_le_bytes(self.read_fixed::<8>()?))
    }

    fn read_length_delimited(&mut self) -> Result<&'a [u8], ProtoError> {
        let len = self.read_varint()?;
        let remaining = self.buf.len() - self.pos;
        match usize::try_from(len) {
            Ok(len) if len <= remaining => {
                let bytes = &self.buf[self.pos..self.pos + len];
                self.pos += len;
                Ok(bytes)
            }
            _ => Err(ProtoError::Truncated(
                "length-delimited field runs past the end of the message",
            )),
        }
    }

    /// Reads the next field: its tag and value.
    pub(crate) fn read_field(&mut self) -> Result<(u32, WireValue<'a>), ProtoError> {
        let key = self.read_varint()?;
        let tag = u32::try_from(key >> 3)
            .ok()
            .filter(|&tag| tag != 0)
            .ok_or_else(|| ProtoError::Malformed(format!("invalid field number {}", key >> 3)))?;
        let value = match key & 7 {
            0 => WireValue::Varint(self.read_varint()?),
            1 => WireValue::Fixed64(self.read_fixed64()?),
            2 => WireValue::Bytes(self.read_length_delimited()?),
            5 => {
                self.read_fixed::<4>()?;
                WireValue::Fixed32
            }
            other => {
                return Err(ProtoError::Malformed(format!(
                    "unsupported wire type {other} for field {tag}"
                )));
            }
        };
        Ok((tag, value))
    }
}
