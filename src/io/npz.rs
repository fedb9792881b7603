//! NumPy `.npy` / `.npz` reading and writing (the format of smplx-style body models).
//!
//! Reads `np.savez` and `np.savez_compressed` archives from a file or from memory, in C or
//! Fortran order, for the dtypes body models use (f4, f8, i1, i2, i4, i8, u1, u2, u4, u8, b1).
//! Arrays that are not numeric (object or string arrays such as SMPL's `gender`) are skipped
//! when listed and reported as such when asked for. Writes deterministic `np.savez`-compatible
//! archives (deflate-compressed, fixed timestamps).

use std::collections::BTreeMap;
use std::io::{Cursor, Read, Seek, Write};
use std::path::Path;

use crate::error::{Error, Result};

/// One numeric array, converted to f64 (exact for every supported dtype but 64-bit integers
/// beyond 2^53, which body models never hold) in C (row-major) order.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
    /// The dtype as written in the file, e.g. `<f4`.
    pub dtype: String,
}

impl Array {
    pub fn len(&self) -> usize {
        self.data.len()
    }
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }
    pub fn to_f32(&self) -> Vec<f32> {
        self.data.iter().map(|&x| x as f32).collect()
    }
}

/// An opened `.npz` archive. Arrays are decoded on request.
pub struct Npz<R: Read + Seek> {
    zip: zip::ZipArchive<R>,
    origin: String,
}

impl Npz<std::io::BufReader<std::fs::File>> {
    /// Opens a file.
    pub fn open(path: &Path) -> Result<Self> {
        let f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(std::io::BufReader::new(f), &path.display().to_string())
    }
}

impl<'a> Npz<Cursor<&'a [u8]>> {
    /// Opens an archive held in memory; `origin` names it in error messages.
    pub fn from_bytes(bytes: &'a [u8], origin: &str) -> Result<Self> {
        Self::from_reader(Cursor::new(bytes), origin)
    }
}

impl<R: Read + Seek> Npz<R> {
    fn from_reader(r: R, origin: &str) -> Result<Self> {
        let zip = zip::ZipArchive::new(r).map_err(|e| Error::BadValue {
            path: origin.to_string(),
            key: String::new(),
            what: format!("not a NumPy .npz archive (zip: {e})"),
        })?;
        Ok(Self {
            zip,
            origin: origin.to_string(),
        })
    }

    /// Names of the arrays in the archive (without the `.npy` suffix), sorted.
    pub fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .zip
            .file_names()
            .filter_map(|n| n.ok())
            .map(|n| n.strip_suffix(".npy").unwrap_or(&n).to_string())
            .collect();
        v.sort();
        v
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names().iter().any(|n| n == name)
    }

    /// Reads one array; `None` if absent. Errors name the archive and the array.
    pub fn get(&mut self, name: &str) -> Result<Option<Array>> {
        let fname = format!("{name}.npy");
        let mut file = match self.zip.by_name(&fname) {
            Ok(f) => f,
            Err(zip::result::ZipError::FileNotFound) => return Ok(None),
            Err(e) => {
                return Err(Error::BadValue {
                    path: self.origin.clone(),
                    key: name.to_string(),
                    what: format!("cannot read from the archive: {e}"),
                })
            }
        };
        let mut buf = Vec::with_capacity(file.size() as usize);
        file.read_to_end(&mut buf)
            .map_err(|e| Error::BadValue {
                path: self.origin.clone(),
                key: name.to_string(),
                what: format!("cannot decompress: {e}"),
            })?;
        parse_npy(&buf).map(Some).map_err(|what| Error::BadValue {
            path: self.origin.clone(),
            key: name.to_string(),
            what,
        })
    }

    /// Reads one array that must be present; `expected` describes it in the error.
    pub fn require(&mut self, name: &str, expected: &str) -> Result<Array> {
        self.get(name)?.ok_or_else(|| Error::MissingKey {
            path: self.origin.clone(),
            key: name.to_string(),
            expected: expected.to_string(),
        })
    }

    pub fn origin(&self) -> &str {
        &self.origin
    }
}

/// Parses a `.npy` byte buffer (format versions 1, 2 and 3).
pub fn parse_npy(buf: &[u8]) -> std::result::Result<Array, String> {
    if buf.len() < 10 || &buf[..6] != b"\x93NUMPY" {
        return Err("not a .npy array (bad magic)".into());
    }
    let major = buf[6];
    let (hlen, start) = match major {
        1 => (u16::from_le_bytes([buf[8], buf[9]]) as usize, 10),
        2 | 3 => {
            if buf.len() < 12 {
                return Err("truncated .npy header".into());
            }
            (u32::from_le_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize, 12)
        }
        v => return Err(format!("unsupported .npy format version {v}")),
    };
    let header = std::str::from_utf8(buf.get(start..start + hlen).ok_or("truncated .npy header")?)
        .map_err(|_| "non-UTF-8 .npy header")?;
    let descr = header_field(header, "descr").ok_or("header without 'descr'")?;
    let descr = descr.trim_matches(|c| c == '\'' || c == '"').to_string();
    let fortran = header_field(header, "fortran_order")
        .map(|s| s.trim() == "True")
        .unwrap_or(false);
    let shape_s = header_field(header, "shape").ok_or("header without 'shape'")?;
    let shape: Vec<usize> = shape_s
        .trim_matches(|c| c == '(' || c == ')')
        .split(',')
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| format!("bad shape {shape_s}")))
        .collect::<std::result::Result<_, _>>()?;
    let n: usize = shape.iter().product();
    let body = &buf[start + hlen..];
    let (kind, size, big) = parse_descr(&descr)?;
    if body.len() < n * size {
        return Err(format!(
            "truncated data: {} bytes for {n} values of {descr}",
            body.len()
        ));
    }
    let mut data = Vec::with_capacity(n);
    for c in body[..n * size].chunks_exact(size) {
        let mut b = [0u8; 8];
        b[..size].copy_from_slice(c);
        if big {
            b[..size].reverse();
        }
        let x = match (kind, size) {
            ('f', 4) => f32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            ('f', 8) => f64::from_le_bytes(b),
            ('i', 1) => b[0] as i8 as f64,
            ('i', 2) => i16::from_le_bytes([b[0], b[1]]) as f64,
            ('i', 4) => i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            ('i', 8) => i64::from_le_bytes(b) as f64,
            ('u', 1) | ('b', 1) => b[0] as f64,
            ('u', 2) => u16::from_le_bytes([b[0], b[1]]) as f64,
            ('u', 4) => u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64,
            ('u', 8) => u64::from_le_bytes(b) as f64,
            _ => unreachable!("parse_descr admits only the kinds above"),
        };
        data.push(x);
    }
    if fortran && shape.len() > 1 {
        data = fortran_to_c(&data, &shape);
    }
    Ok(Array { shape, data, dtype: descr })
}

fn parse_descr(descr: &str) -> std::result::Result<(char, usize, bool), String> {
    let mut chars = descr.chars();
    let (order, rest) = match descr.chars().next() {
        Some(c @ ('<' | '>' | '|' | '=')) => {
            chars.next();
            (c, chars.as_str())
        }
        _ => ('|', descr),
    };
    let kind = rest.chars().next().ok_or("empty dtype")?;
    let size: usize = rest[1..]
        .parse()
        .map_err(|_| format!("dtype {descr} is not numeric (strings and objects are not supported)"))?;
    let ok = matches!(
        (kind, size),
        ('f', 4) | ('f', 8) | ('i', 1 | 2 | 4 | 8) | ('u', 1 | 2 | 4 | 8) | ('b', 1)
    );
    if !ok {
        return Err(format!(
            "dtype {descr} is not supported (use float32/float64 or an integer type)"
        ));
    }
    Ok((kind, size, order == '>'))
}

/// Extracts the raw text of `'key': value` from a Python dict literal header.
fn header_field<'a>(header: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}':");
    let pos = header.find(&pat1)? + pat1.len();
    let rest = header[pos..].trim_start();
    let end = if rest.starts_with('(') {
        rest.find(')')? + 1
    } else if rest.starts_with('\'') {
        rest[1..].find('\'')? + 2
    } else {
        rest.find([',', '}'])?
    };
    Some(&rest[..end])
}

fn fortran_to_c(data: &[f64], shape: &[usize]) -> Vec<f64> {
    let n = data.len();
    let nd = shape.len();
    let mut out = vec![0.0; n];
    let mut idx = vec![0usize; nd];
    for (ci, o) in out.iter_mut().enumerate() {
        // C index -> multi-index -> Fortran offset.
        let mut rem = ci;
        for d in (0..nd).rev() {
            idx[d] = rem % shape[d];
            rem /= shape[d];
        }
        let mut fo = 0;
        let mut stride = 1;
        for d in 0..nd {
            fo += idx[d] * stride;
            stride *= shape[d];
        }
        *o = data[fo];
    }
    out
}

/// Array data to write: f32, f64 or i64 values in C order with a shape.
pub enum WriteArray<'a> {
    F32(&'a [f32], Vec<usize>),
    F64(&'a [f64], Vec<usize>),
    I64(Vec<i64>, Vec<usize>),
}

/// Encodes one `.npy` (format 1.0).
pub fn encode_npy(a: &WriteArray) -> Vec<u8> {
    let (descr, shape, payload): (&str, &Vec<usize>, Vec<u8>) = match a {
        WriteArray::F32(d, s) => ("<f4", s, d.iter().flat_map(|x| x.to_le_bytes()).collect()),
        WriteArray::F64(d, s) => ("<f8", s, d.iter().flat_map(|x| x.to_le_bytes()).collect()),
        WriteArray::I64(d, s) => ("<i8", s, d.iter().flat_map(|x| x.to_le_bytes()).collect()),
    };
    let shape_s = match shape.len() {
        1 => format!("({},)", shape[0]),
        _ => format!(
            "({})",
            shape.iter().map(|s| s.to_string()).collect::<Vec<_>>().join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape_s}, }}");
    // Pad so that magic(6) + version(2) + len(2) + header + '\n' is a multiple of 64.
    let total = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - total % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + payload.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(&payload);
    out
}

/// Writes a deflate-compressed `.npz` (readable by `np.load`), deterministically: arrays in
/// name order, fixed timestamps.
pub fn write_npz(path: &Path, arrays: &BTreeMap<String, WriteArray>) -> Result<()> {
    let mut buf = Cursor::new(Vec::new());
    {
        let mut zw = zip::ZipWriter::new(&mut buf);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .last_modified_time(zip::DateTime::default())
            .large_file(false);
        for (name, a) in arrays {
            let bytes = encode_npy(a);
            zw.start_file(format!("{name}.npy"), opts)
                .and_then(|_| zw.write_all(&bytes).map_err(Into::into))
                .map_err(|e| Error::Input(format!("writing {}: {e}", path.display())))?;
        }
        zw.finish()
            .map_err(|e| Error::Input(format!("writing {}: {e}", path.display())))?;
    }
    std::fs::write(path, buf.into_inner()).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `buf` with the first occurrence of `from` replaced by `to` (same length).
    fn replace_bytes(buf: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
        assert_eq!(from.len(), to.len());
        let i = buf.windows(from.len()).position(|w| w == from).expect("pattern present");
        let mut out = buf.to_vec();
        out[i..i + to.len()].copy_from_slice(to);
        out
    }

    #[test]
    fn npy_round_trip_and_fortran_order() {
        let d = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0];
        let bytes = encode_npy(&WriteArray::F32(&d, vec![2, 3]));
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0, "header must be padded to 64 bytes");
        let a = parse_npy(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        // The same bytes declared Fortran-order: memory [1..6] is column-major [[1,3,5],[2,4,6]].
        let a = parse_npy(&replace_bytes(&bytes, b"'fortran_order': False", b"'fortran_order': True ")).unwrap();
        assert_eq!(a.data, vec![1.0, 3.0, 5.0, 2.0, 4.0, 6.0]);
    }

    #[test]
    fn rejects_strings() {
        let bytes = encode_npy(&WriteArray::I64(vec![1], vec![1]));
        let e = parse_npy(&replace_bytes(&bytes, b"'<i8'", b"'<U3'")).unwrap_err();
        assert!(e.contains("not numeric") || e.contains("not supported"), "{e}");
    }
}
