//! Writing the keys index: built whole from the keys file's keys (under a
//! fresh seed), to a temporary file renamed over the old one.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{
    hash_key, new_seed, page_crc, IndexError, KeyIndex, Stamp, BODY, ENTRIES_PER_PAGE, INDEX_MAGIC,
    INDEX_VERSION, OFFSETS_PER_PAGE, ORDER_PER_PAGE, PAGE, TAIL,
};

/// Builds the index of `keys` (key `i` is series `i`, its record at
/// `offsets[i]`) at `path` under a fresh seed and opens it.
pub fn build<K: AsRef<str>>(
    path: &Path,
    stamp: &Stamp,
    keys: &[K],
    offsets: &[u64],
) -> Result<KeyIndex, IndexError> {
    let seed = new_seed();
    let mut entries: Vec<(u64, u32)> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| (hash_key(seed, key.as_ref()), i as u32))
        .collect();
    entries.sort_unstable();
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_unstable_by(|&a, &b| keys[a as usize].as_ref().cmp(keys[b as usize].as_ref()));
    write(path, seed, stamp, &entries, offsets, &order)
}

/// Writes an index (entries sorted) to a temporary file, fsyncs it and
/// renames it over `path`, then opens it.
pub(super) fn write(
    path: &Path,
    seed: (u64, u64),
    stamp: &Stamp,
    entries: &[(u64, u32)],
    offsets: &[u64],
    order: &[u32],
) -> Result<KeyIndex, IndexError> {
    let io_error = |source| IndexError::Io {
        path: path.to_path_buf(),
        source,
    };
    debug_assert_eq!(entries.len(), offsets.len());
    debug_assert_eq!(order.len(), offsets.len());
    debug_assert_eq!(stamp.keys, offsets.len() as u64);
    let keys = offsets.len() as u64;
    let tail = &stamp.tail[..stamp.tail.len().min(TAIL)];
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let written = (|| -> io::Result<()> {
        let mut out = BufWriter::new(File::create(&temporary)?);
        let mut number = 0u64;
        let mut put_page = |out: &mut BufWriter<File>, body: &mut Vec<u8>| -> io::Result<()> {
            body.resize(BODY, 0);
            let crc = page_crc(number, body);
            body.extend_from_slice(&crc.to_le_bytes());
            number += 1;
            out.write_all(body)
        };
        let mut header = Vec::with_capacity(PAGE);
        header.extend_from_slice(&INDEX_MAGIC);
        header.extend_from_slice(&INDEX_VERSION.to_le_bytes());
        header.extend_from_slice(&keys.to_le_bytes());
        header.extend_from_slice(&seed.0.to_le_bytes());
        header.extend_from_slice(&seed.1.to_le_bytes());
        header.extend_from_slice(&stamp.end.to_le_bytes());
        header.push(tail.len() as u8);
        header.extend_from_slice(tail);
        put_page(&mut out, &mut header)?;
        let mut fences = Vec::new();
        for page in entries.chunks(ENTRIES_PER_PAGE) {
            fences.extend_from_slice(&page[0].0.to_le_bytes());
            let mut body = Vec::with_capacity(PAGE);
            for &(hash, id) in page {
                body.extend_from_slice(&hash.to_le_bytes());
                body.extend_from_slice(&id.to_le_bytes());
            }
            put_page(&mut out, &mut body)?;
        }
        for page in offsets.chunks(OFFSETS_PER_PAGE) {
            let mut body: Vec<u8> = page.iter().flat_map(|o| o.to_le_bytes()).collect();
            put_page(&mut out, &mut body)?;
        }
        for page in order.chunks(ORDER_PER_PAGE) {
            let mut body: Vec<u8> = page.iter().flat_map(|id| id.to_le_bytes()).collect();
            put_page(&mut out, &mut body)?;
        }
        let crc = crc32c::crc32c(&fences);
        out.write_all(&fences)?;
        out.write_all(&crc.to_le_bytes())?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        fs::rename(&temporary, path)?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        File::open(dir.unwrap_or(Path::new(".")))?.sync_all()
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&temporary);
        return Err(io_error(e));
    }
    KeyIndex::open(path, stamp)
}
