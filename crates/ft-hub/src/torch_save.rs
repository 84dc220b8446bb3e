//! Writing `torch.save`'s file format for a flat state dict of f32 tensors — what
//! `torch.save(model.state_dict(), path)` writes and `torch.load(path, weights_only=True)`
//! reads: a zip archive (`{archive}/data.pkl`, `{archive}/data/{i}`, `{archive}/version`,
//! `{archive}/byteorder`) whose pickle (protocol 2) is an `OrderedDict` of
//! `torch._utils._rebuild_tensor_v2` calls on `FloatStorage`s. Only the globals
//! `weights_only` loading allows are used. Entries are stored uncompressed, their data aligned
//! to 64 bytes as PyTorch aligns it.

/// The `torch.save` bytes of `tensors` (name → (shape, values), in order), with `archive` as
/// the zip's top folder (PyTorch uses the file's stem).
pub fn torch_save_bytes<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
    archive: &str,
) -> Vec<u8> {
    let tensors: Vec<(&str, &[usize], &[f32])> = tensors.into_iter().collect();
    let mut pickle = Pickle::default();
    pickle.proto();
    pickle.global("collections", "OrderedDict");
    pickle.op(b')');
    pickle.op(b'R');
    pickle.op(b'(');
    for (i, (name, shape, values)) in tensors.iter().enumerate() {
        pickle.unicode(name);
        pickle.global("torch._utils", "_rebuild_tensor_v2");
        pickle.op(b'(');
        // The storage, as a persistent id: ('storage', FloatStorage, key, location, numel).
        pickle.op(b'(');
        pickle.unicode("storage");
        pickle.global("torch", "FloatStorage");
        pickle.unicode(&i.to_string());
        pickle.unicode("cpu");
        pickle.int(values.len());
        pickle.op(b't');
        pickle.op(b'Q');
        pickle.int(0); // storage offset
        pickle.tuple(shape);
        let mut strides = vec![1usize; shape.len()];
        for d in (0..shape.len().saturating_sub(1)).rev() {
            strides[d] = strides[d + 1] * shape[d + 1];
        }
        pickle.tuple(&strides);
        pickle.op(0x89); // requires_grad = False
        pickle.global("collections", "OrderedDict"); // backward hooks
        pickle.op(b')');
        pickle.op(b'R');
        pickle.op(b't');
        pickle.op(b'R');
    }
    pickle.op(b'u');
    pickle.op(b'.');

    let mut zip = Zip::default();
    zip.add(&format!("{archive}/data.pkl"), &pickle.0);
    zip.add(&format!("{archive}/byteorder"), b"little");
    for (i, (_, _, values)) in tensors.iter().enumerate() {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        zip.add(&format!("{archive}/data/{i}"), &bytes);
    }
    zip.add(&format!("{archive}/version"), b"3\n");
    zip.finish()
}

/// A pickle (protocol 2) being written.
#[derive(Default)]
struct Pickle(Vec<u8>);

impl Pickle {
    fn proto(&mut self) {
        self.0.extend([0x80, 2]);
    }

    fn op(&mut self, op: u8) {
        self.0.push(op);
    }

    fn global(&mut self, module: &str, name: &str) {
        self.0.push(b'c');
        self.0.extend(module.as_bytes());
        self.0.push(b'\n');
        self.0.extend(name.as_bytes());
        self.0.push(b'\n');
    }

    fn unicode(&mut self, s: &str) {
        self.0.push(b'X');
        self.0.extend((s.len() as u32).to_le_bytes());
        self.0.extend(s.as_bytes());
    }

    /// An int: BININT (signed 32 bits) when it fits, else LONG1.
    fn int(&mut self, v: usize) {
        if let Ok(v) = i32::try_from(v) {
            self.0.push(b'J');
            self.0.extend(v.to_le_bytes());
        } else {
            let bytes = (v as u64).to_le_bytes();
            self.0.push(0x8a);
            self.0.push(9);
            self.0.extend(bytes);
            self.0.push(0); // sign byte: positive
        }
    }

    fn tuple(&mut self, items: &[usize]) {
        if items.is_empty() {
            self.op(b')');
            return;
        }
        self.op(b'(');
        for &v in items {
            self.int(v);
        }
        self.op(b't');
    }
}

/// CRC-32 (IEEE), as zip stores it.
fn crc32(data: &[u8]) -> u32 {
    let mut table = [0u32; 256];
    for (i, t) in table.iter_mut().enumerate() {
        let mut c = i as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 { 0xEDB8_8320 ^ (c >> 1) } else { c >> 1 };
        }
        *t = c;
    }
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc = table[((crc ^ u32::from(b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    crc ^ 0xFFFF_FFFF
}

/// A zip archive of stored (uncompressed) entries.
#[derive(Default)]
struct Zip {
    out: Vec<u8>,
    central: Vec<u8>,
    entries: u16,
}

impl Zip {
    fn add(&mut self, name: &str, data: &[u8]) {
        let offset = self.out.len() as u32;
        let crc = crc32(data);
        let size = data.len() as u32;
        // Pad the local header's extra field so that the data starts on a 64-byte boundary.
        let header = 30 + name.len() + 4;
        let pad = (64 - (self.out.len() + header) % 64) % 64;
        let mut extra = Vec::with_capacity(4 + pad);
        extra.extend(0x4246u16.to_le_bytes()); // "FB", as PyTorch
        extra.extend((pad as u16).to_le_bytes());
        extra.extend(std::iter::repeat_n(b'Z', pad));
        let fixed = |v: &mut Vec<u8>| {
            v.extend(20u16.to_le_bytes()); // version needed
            v.extend(0u16.to_le_bytes()); // flags
            v.extend(0u16.to_le_bytes()); // stored
            v.extend(0u16.to_le_bytes()); // time
            v.extend(0x21u16.to_le_bytes()); // date: 1980-01-01
            v.extend(crc.to_le_bytes());
            v.extend(size.to_le_bytes());
            v.extend(size.to_le_bytes());
            v.extend((name.len() as u16).to_le_bytes());
        };
        self.out.extend(0x0403_4b50u32.to_le_bytes());
        fixed(&mut self.out);
        self.out.extend((extra.len() as u16).to_le_bytes());
        self.out.extend(name.as_bytes());
        self.out.extend(&extra);
        self.out.extend(data);

        self.central.extend(0x0201_4b50u32.to_le_bytes());
        self.central.extend(20u16.to_le_bytes()); // version made by
        fixed(&mut self.central);
        self.central.extend(0u16.to_le_bytes()); // extra
        self.central.extend(0u16.to_le_bytes()); // comment
        self.central.extend(0u16.to_le_bytes()); // disk
        self.central.extend(0u16.to_le_bytes()); // internal attributes
        self.central.extend(0u32.to_le_bytes()); // external attributes
        self.central.extend(offset.to_le_bytes());
        self.central.extend(name.as_bytes());
        self.entries += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        let cd_offset = self.out.len() as u32;
        let cd_size = self.central.len() as u32;
        self.out.extend(&self.central);
        self.out.extend(0x0605_4b50u32.to_le_bytes());
        self.out.extend(0u16.to_le_bytes());
        self.out.extend(0u16.to_le_bytes());
        self.out.extend(self.entries.to_le_bytes());
        self.out.extend(self.entries.to_le_bytes());
        self.out.extend(cd_size.to_le_bytes());
        self.out.extend(cd_offset.to_le_bytes());
        self.out.extend(0u16.to_le_bytes());
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_of_a_known_string() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}
