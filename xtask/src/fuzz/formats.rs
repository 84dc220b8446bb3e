//! The binary layouts the structure-aware mutations know: multi-part inputs, safetensors,
//! stored zip archives (`torch.save`), pickle opcode streams, PNG chunks and JPEG segments.
//!
//! Each reader returns `None` on anything it does not understand: the mutator then falls back to
//! plain byte mutations. The writers produce well-formed containers (checksums recomputed) around
//! mutated contents, so that a mutation reaches the parser behind the checksum.

/// Separates the parts of a multi-part input (a tokenizer.json and its tokenizer_config.json; a
/// run file and its `--set` overrides).
pub const PART_SEPARATOR: &[u8] = b"\n--ft-fuzz-part--\n";

/// The parts of a multi-part input.
pub fn split_parts(input: &[u8]) -> Vec<Vec<u8>> {
    let mut parts = Vec::new();
    let mut rest = input;
    while let Some(i) = find(rest, PART_SEPARATOR) {
        parts.push(rest[..i].to_vec());
        rest = &rest[i + PART_SEPARATOR.len()..];
    }
    parts.push(rest.to_vec());
    parts
}

/// Joins parts with [`PART_SEPARATOR`].
pub fn join_parts(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.join(PART_SEPARATOR)
}

/// The first index of `needle` in `haystack`.
pub fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() || haystack.len() < needle.len() {
        return None;
    }
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// A safetensors file: the declared header length, the header bytes, the data section.
pub fn split_safetensors(bytes: &[u8]) -> Option<(u64, &[u8], &[u8])> {
    let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?);
    let end = 8usize.checked_add(usize::try_from(len).ok()?)?;
    let header = bytes.get(8..end)?;
    Some((len, header, &bytes[end..]))
}

/// A safetensors file from its header and data; `declared` overrides the header length field.
pub fn join_safetensors(header: &[u8], data: &[u8], declared: Option<u64>) -> Vec<u8> {
    let mut out = declared.unwrap_or(header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(data);
    out
}

/// CRC-32 (IEEE), as zip and PNG use it.
pub fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// One zip entry, as stored (the data is the raw, possibly compressed, bytes).
#[derive(Debug, Clone, PartialEq)]
pub struct ZipEntry {
    /// The entry's name.
    pub name: Vec<u8>,
    /// The compression method (0: stored, 8: deflate).
    pub method: u16,
    /// The raw data.
    pub data: Vec<u8>,
    /// The CRC written; `None`: computed from `data`.
    pub crc: Option<u32>,
}

fn u16_at(b: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_le_bytes(b.get(i..i + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], i: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(i..i + 4)?.try_into().ok()?))
}

/// The entries of a zip archive, through its central directory (no ZIP64).
pub fn read_zip(bytes: &[u8]) -> Option<Vec<ZipEntry>> {
    let eocd =
        (0..bytes.len().saturating_sub(21)).rev().take(70_000).find(|&i| u32_at(bytes, i) == Some(0x0605_4b50))?;
    let count = u16_at(bytes, eocd + 10)? as usize;
    let mut at = u32_at(bytes, eocd + 16)? as usize;
    let mut entries = Vec::with_capacity(count.min(4096));
    for _ in 0..count {
        if u32_at(bytes, at)? != 0x0201_4b50 {
            return None;
        }
        let method = u16_at(bytes, at + 10)?;
        let crc = u32_at(bytes, at + 16)?;
        let size = u32_at(bytes, at + 20)? as usize;
        let name_len = u16_at(bytes, at + 28)? as usize;
        let extra_len = u16_at(bytes, at + 30)? as usize;
        let comment_len = u16_at(bytes, at + 32)? as usize;
        let local = u32_at(bytes, at + 42)? as usize;
        let name = bytes.get(at + 46..at + 46 + name_len)?.to_vec();
        if u32_at(bytes, local)? != 0x0403_4b50 {
            return None;
        }
        let start = local + 30 + u16_at(bytes, local + 26)? as usize + u16_at(bytes, local + 28)? as usize;
        let data = bytes.get(start..start.checked_add(size)?)?.to_vec();
        let computed = crc32(&data);
        entries.push(ZipEntry { name, method, data, crc: (crc != computed).then_some(crc) });
        at += 46 + name_len + extra_len + comment_len;
    }
    Some(entries)
}

/// A zip archive of `entries`, local headers first, then the central directory.
pub fn write_zip(entries: &[ZipEntry]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let crc = e.crc.unwrap_or_else(|| crc32(&e.data));
        let offset = out.len() as u32;
        let size = e.data.len() as u32;
        let head = |sig: u32, out: &mut Vec<u8>| {
            out.extend_from_slice(&sig.to_le_bytes());
            if sig == 0x0201_4b50 {
                out.extend_from_slice(&20u16.to_le_bytes()); // made by
            }
            out.extend_from_slice(&20u16.to_le_bytes()); // version needed
            out.extend_from_slice(&0u16.to_le_bytes()); // flags
            out.extend_from_slice(&e.method.to_le_bytes());
            out.extend_from_slice(&[0, 0, 0x21, 0]); // time, date
            out.extend_from_slice(&crc.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&size.to_le_bytes());
            out.extend_from_slice(&(e.name.len() as u16).to_le_bytes());
            out.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        head(0x0403_4b50, &mut out);
        out.extend_from_slice(&e.name);
        out.extend_from_slice(&e.data);
        head(0x0201_4b50, &mut central);
        central.extend_from_slice(&[0; 6]); // comment length, disk, internal attributes
        central.extend_from_slice(&0u32.to_le_bytes()); // external attributes
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(&e.name);
    }
    let cd_offset = out.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(entries.len() as u16).to_le_bytes());
    out.extend_from_slice(&(central.len() as u32).to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out
}

/// How a pickle opcode's argument is laid out.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arg {
    None,
    Fixed(usize),
    /// A little-endian length of this many bytes, then that many bytes.
    Counted(usize),
    /// Newline-terminated lines.
    Lines(usize),
}

fn pickle_arg(op: u8) -> Option<Arg> {
    Some(match op {
        b'('
        | b'.'
        | b'0'
        | b'1'
        | b'2'
        | b'N'
        | b'R'
        | b'b'
        | b'a'
        | b'e'
        | b's'
        | b'u'
        | b't'
        | b')'
        | b']'
        | b'}'
        | b'l'
        | b'd'
        | b'o'
        | b'Q'
        | 0x85..=0x89
        | 0x81
        | 0x8f..=0x94
        | 0x97
        | 0x98 => Arg::None,
        b'K' | b'q' | b'h' | 0x82 | 0x80 => Arg::Fixed(1),
        b'M' | 0x83 => Arg::Fixed(2),
        b'J' | b'r' | b'j' | 0x84 => Arg::Fixed(4),
        b'G' | 0x95 => Arg::Fixed(8),
        b'U' | 0x8c | b'C' | 0x8a => Arg::Counted(1),
        b'X' | b'T' | b'B' | 0x8b => Arg::Counted(4),
        0x8d | 0x8e | 0x96 => Arg::Counted(8),
        b'I' | b'L' | b'F' | b'S' | b'V' | b'P' | b'g' | b'p' => Arg::Lines(1),
        b'c' | b'i' => Arg::Lines(2),
        _ => return None,
    })
}

/// The byte spans of a pickle's opcodes, up to the first it does not know (or the end).
pub fn pickle_ops(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut ops = Vec::new();
    let mut at = 0;
    while at < bytes.len() && ops.len() < 100_000 {
        let Some(arg) = pickle_arg(bytes[at]) else { break };
        let end = match arg {
            Arg::None => Some(at + 1),
            Arg::Fixed(n) => Some(at + 1 + n),
            Arg::Counted(n) => bytes.get(at + 1..at + 1 + n).and_then(|len| {
                let mut v = [0u8; 8];
                v[..n].copy_from_slice(len);
                usize::try_from(u64::from_le_bytes(v)).ok().and_then(|l| (at + 1 + n).checked_add(l))
            }),
            Arg::Lines(n) => {
                let mut end = Some(at + 1);
                for _ in 0..n {
                    end = end.and_then(|e| bytes.get(e..)?.iter().position(|&b| b == b'\n').map(|p| e + p + 1));
                }
                end
            }
        };
        match end.filter(|&e| e <= bytes.len()) {
            Some(e) => {
                ops.push((at, e));
                at = e;
            }
            None => break,
        }
    }
    ops
}

/// Opcodes worth inserting: the ones `torch.save` pickles use, and the ones a hostile pickle
/// uses to run code.
pub const PICKLE_SNIPPETS: &[&[u8]] = &[
    b"cos\nsystem\n",
    b"cbuiltins\neval\n",
    b"ctorch._utils\n_rebuild_tensor_v2\n",
    b"ctorch\nFloatStorage\n",
    b"ccollections\nOrderedDict\n",
    b"R",
    b"b",
    b"(",
    b".",
    b"t",
    b")",
    b"}",
    b"]",
    b"u",
    b"s",
    b"e",
    b"N",
    b"\x85",
    b"\x86",
    b"\x87",
    b"\x88",
    b"\x93",
    b"\x94",
    b"Q",
    b"\x81",
    b"K\x00",
    b"K\xff",
    b"J\xff\xff\xff\xff",
    b"J\xff\xff\xff\x7f",
    b"M\xff\xff",
    b"\x8a\x08\xff\xff\xff\xff\xff\xff\xff\x7f",
    b"\x8a\x01\xff",
    b"X\x04\x00\x00\x00data",
    b"X\x07\x00\x00\x00storage",
    b"X\x03\x00\x00\x00cpu",
    b"\x8c\x01a",
    b"h\x00",
    b"h\xff",
    b"j\xff\xff\xff\x7f",
    b"q\x00",
    b"r\xff\xff\xff\xff",
    b"G\x7f\xf0\x00\x00\x00\x00\x00\x00",
    b"\x80\x02",
    b"\x80\x05",
    b"\x95\xff\xff\xff\xff\xff\xff\xff\x7f",
];

/// The chunks of a PNG file: (type, data), without the signature and CRCs.
pub fn read_png(bytes: &[u8]) -> Option<Vec<([u8; 4], Vec<u8>)>> {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return None;
    }
    let mut at = 8;
    let mut chunks = Vec::new();
    while at + 12 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
        let kind: [u8; 4] = bytes[at + 4..at + 8].try_into().ok()?;
        let data = bytes.get(at + 8..at + 8 + len)?.to_vec();
        at += 12 + len;
        let end = &kind == b"IEND";
        chunks.push((kind, data));
        if end {
            break;
        }
    }
    Some(chunks)
}

/// A PNG file of `chunks`, CRCs computed.
pub fn write_png(chunks: &[([u8; 4], Vec<u8>)]) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in chunks {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let crc = crc32(&out[start..]);
        out.extend_from_slice(&crc.to_be_bytes());
    }
    out
}

/// The marker segments of a JPEG file before its scan data: (start, end) of each segment,
/// marker included.
pub fn jpeg_segments(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut segments = Vec::new();
    if !bytes.starts_with(&[0xFF, 0xD8]) {
        return segments;
    }
    let mut at = 2;
    while at + 4 <= bytes.len() && bytes[at] == 0xFF {
        let marker = bytes[at + 1];
        let len = u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]) as usize;
        let end = at + 2 + len;
        if end > bytes.len() {
            break;
        }
        segments.push((at, end));
        if marker == 0xDA {
            break;
        }
        at = end;
    }
    segments
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn parts_round_trip() {
        let parts = vec![b"a".to_vec(), Vec::new(), b"c\nd".to_vec()];
        assert_eq!(split_parts(&join_parts(&parts)), parts);
        assert_eq!(split_parts(b"plain"), vec![b"plain".to_vec()]);
    }

    #[test]
    fn crc32_is_ieee() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }

    #[test]
    fn zip_and_png_round_trip() {
        let entries = vec![
            ZipEntry { name: b"archive/data.pkl".to_vec(), method: 0, data: b"\x80\x02}q\x00.".to_vec(), crc: None },
            ZipEntry { name: b"archive/data/0".to_vec(), method: 0, data: vec![1, 2, 3, 4], crc: Some(0) },
        ];
        assert_eq!(read_zip(&write_zip(&entries)).unwrap(), entries);
        let chunks = vec![(*b"IHDR", vec![0; 13]), (*b"IEND", Vec::new())];
        assert_eq!(read_png(&write_png(&chunks)).unwrap(), chunks);
    }

    #[test]
    fn pickle_ops_follow_arguments() {
        let p = b"\x80\x02}q\x00X\x01\x00\x00\x00aK\x01cos\nsystem\n.";
        let ops: Vec<u8> = pickle_ops(p).iter().map(|&(s, _)| p[s]).collect();
        assert_eq!(ops, b"\x80}qXKc.");
    }
}
