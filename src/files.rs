//! The content-addressed store for attachments: each file lives once on disk under a path
//! made from its SHA-256 (`ab/cd/abcdef…`), written to a temporary file while it is hashed
//! and then renamed into place, so a file is either whole or absent. What a file is comes
//! from its bytes (PDF, Office, OFD, images, plain text), never from the name its owner
//! gave it; everything else (programs, scripts, HTML, SVG, archives) is refused.

use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

pub const PDF: &str = "application/pdf";
pub const DOCX: &str = "application/vnd.openxmlformats-officedocument.wordprocessingml.document";
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
pub const PPTX: &str = "application/vnd.openxmlformats-officedocument.presentationml.presentation";
pub const DOC: &str = "application/msword";
pub const XLS: &str = "application/vnd.ms-excel";
pub const PPT: &str = "application/vnd.ms-powerpoint";
pub const OFD: &str = "application/ofd";
pub const PNG: &str = "image/png";
pub const JPEG: &str = "image/jpeg";
pub const GIF: &str = "image/gif";
pub const WEBP: &str = "image/webp";
pub const TEXT_UTF8: &str = "text/plain; charset=utf-8";
pub const TEXT_GB18030: &str = "text/plain; charset=gb18030";
pub const CSV_UTF8: &str = "text/csv; charset=utf-8";
pub const CSV_GB18030: &str = "text/csv; charset=gb18030";

/// Every media type the store accepts.
pub const ACCEPTED: [&str; 16] =
    [PDF, DOCX, XLSX, PPTX, DOC, XLS, PPT, OFD, PNG, JPEG, GIF, WEBP, TEXT_UTF8, TEXT_GB18030, CSV_UTF8, CSV_GB18030];

/// The `accept` attribute of a file input: what the store takes, by name, as a hint to the
/// browser's file picker (the bytes decide).
pub const ACCEPT_HINT: &str =
    ".pdf,.doc,.docx,.xls,.xlsx,.ppt,.pptx,.wps,.et,.dps,.ofd,.png,.jpg,.jpeg,.gif,.webp,.txt,.csv";

/// Whether a stored media type is an image a page may show inline.
pub fn is_image(media_type: &str) -> bool {
    matches!(media_type, PNG | JPEG | GIF | WEBP)
}

/// The usual file extension of an accepted media type (for a name that lost its own).
pub fn extension(media_type: &str) -> &'static str {
    match media_type {
        PDF => "pdf",
        DOCX => "docx",
        XLSX => "xlsx",
        PPTX => "pptx",
        DOC => "doc",
        XLS => "xls",
        PPT => "ppt",
        OFD => "ofd",
        PNG => "png",
        JPEG => "jpg",
        GIF => "gif",
        WEBP => "webp",
        CSV_UTF8 | CSV_GB18030 => "csv",
        _ => "txt",
    }
}

/// Why a file was not stored.
#[derive(Debug, thiserror::Error)]
pub enum Refusal {
    #[error("the file is larger than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("the file is empty")]
    Empty,
    #[error("files of this type are not accepted")]
    Type,
    #[error("storing the file failed: {0}")]
    Io(#[from] io::Error),
}

/// A file in the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub sha256: String,
    pub size: u64,
    pub media_type: &'static str,
}

/// The store's root directory; files under `ab/cd/<sha256>`, uploads in progress under `tmp/`.
#[derive(Debug, Clone)]
pub struct FileStore {
    root: PathBuf,
}

/// Whether a string is a SHA-256 in lowercase hex (the only names the store uses).
pub fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

impl FileStore {
    pub fn new(root: impl Into<PathBuf>) -> FileStore {
        FileStore { root: root.into() }
    }

    /// Where the file with this hash lives; `None` for anything that is not a hash.
    pub fn path_of(&self, sha256: &str) -> Option<PathBuf> {
        is_sha256(sha256).then(|| self.root.join(&sha256[0..2]).join(&sha256[2..4]).join(sha256))
    }

    /// Whether the file with this hash is stored.
    pub async fn contains(&self, sha256: &str) -> bool {
        match self.path_of(sha256) {
            Some(p) => tokio::fs::metadata(p).await.is_ok_and(|m| m.is_file()),
            None => false,
        }
    }

    /// Open a stored file for reading.
    pub async fn open(&self, sha256: &str) -> io::Result<tokio::fs::File> {
        let path = self.path_of(sha256).ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "not a hash"))?;
        tokio::fs::File::open(path).await
    }

    /// Start storing a file of at most `limit` bytes.
    pub async fn begin(&self, limit: u64) -> io::Result<Upload> {
        let tmp_dir = self.root.join("tmp");
        tokio::fs::create_dir_all(&tmp_dir).await?;
        let tmp = tmp_dir.join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = tokio::fs::OpenOptions::new().write(true).create_new(true).open(&tmp).await?;
        Ok(Upload {
            root: self.root.clone(),
            tmp,
            file: Some(file),
            hasher: Sha256::new(),
            size: 0,
            limit,
            done: false,
        })
    }
}

/// A file being stored: bytes go to a temporary file and the hash as they arrive. Dropped
/// without [`Upload::finish`], the temporary file is removed.
pub struct Upload {
    root: PathBuf,
    tmp: PathBuf,
    file: Option<tokio::fs::File>,
    hasher: Sha256,
    size: u64,
    limit: u64,
    done: bool,
}

impl Upload {
    /// Add the next bytes; past the limit the upload is refused (and nothing more is kept).
    pub async fn write(&mut self, chunk: &[u8]) -> Result<(), Refusal> {
        let size = self.size + chunk.len() as u64;
        if size > self.limit {
            self.file = None;
            return Err(Refusal::TooLarge { limit: self.limit });
        }
        let file = self.file.as_mut().ok_or(Refusal::TooLarge { limit: self.limit })?;
        file.write_all(chunk).await?;
        self.hasher.update(chunk);
        self.size = size;
        Ok(())
    }

    /// Check the file's type by its bytes and move it into place; the same content is
    /// stored once. `file_name` only tells a CSV from other plain text.
    pub async fn finish(mut self, file_name: &str) -> Result<Stored, Refusal> {
        let mut file = self.file.take().ok_or(Refusal::TooLarge { limit: self.limit })?;
        if self.size == 0 {
            return Err(Refusal::Empty);
        }
        file.flush().await?;
        file.sync_all().await?;
        drop(file);
        let sha256 = hex::encode(std::mem::take(&mut self.hasher).finalize());
        let tmp = self.tmp.clone();
        let size = self.size;
        let name = file_name.to_owned();
        let media_type = tokio::task::spawn_blocking(move || -> Result<&'static str, Refusal> {
            let mut f = std::fs::File::open(&tmp)?;
            detect(&mut f, size, &name)
        })
        .await
        .map_err(|e| io::Error::other(e.to_string()))??;
        let dir = self.root.join(&sha256[0..2]).join(&sha256[2..4]);
        tokio::fs::create_dir_all(&dir).await?;
        let target = dir.join(&sha256);
        if tokio::fs::metadata(&target).await.is_ok_and(|m| m.is_file() && m.len() == size) {
            // Stored already: keep the one copy.
            let _ = tokio::fs::remove_file(&self.tmp).await;
        } else {
            tokio::fs::rename(&self.tmp, &target).await?;
            sync_dir(&dir).await;
        }
        self.done = true;
        Ok(Stored { sha256, size, media_type })
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if !self.done {
            self.file = None;
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// Make a rename durable (best effort: not every platform can sync a directory).
async fn sync_dir(dir: &Path) {
    let dir = dir.to_owned();
    let _ = tokio::task::spawn_blocking(move || std::fs::File::open(dir).and_then(|d| d.sync_all())).await;
}

/// A file name kept for display only: the last part of a path, without control characters
/// (NUL, CR, LF, …) or direction overrides, trimmed, at most 255 characters (the
/// extension kept); empty becomes `attachment.<ext>`.
pub fn display_name(raw: &str, media_type: &str) -> String {
    let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(*c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{feff}')
        })
        .collect();
    let trimmed = cleaned.trim().trim_start_matches('.').trim_end_matches(['.', ' ']).trim();
    if trimmed.is_empty() {
        return format!("attachment.{}", extension(media_type));
    }
    let count = trimmed.chars().count();
    if count <= 255 {
        return trimmed.to_owned();
    }
    match trimmed.rsplit_once('.') {
        Some((stem, ext)) if ext.chars().count() <= 10 => {
            let keep = 255 - ext.chars().count() - 1;
            format!("{}.{ext}", stem.chars().take(keep).collect::<String>())
        }
        _ => trimmed.chars().take(255).collect(),
    }
}

/// What a file is, from its bytes: one of [`ACCEPTED`], or a refusal.
pub fn detect<R: Read + Seek>(r: &mut R, len: u64, file_name: &str) -> Result<&'static str, Refusal> {
    if len == 0 {
        return Err(Refusal::Empty);
    }
    let mut head = vec![0u8; (16 * 1024).min(len as usize)];
    r.seek(SeekFrom::Start(0))?;
    r.read_exact(&mut head)?;
    if head.starts_with(b"%PDF-") {
        return Ok(PDF);
    }
    if head.starts_with(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a]) {
        return Ok(PNG);
    }
    if head.starts_with(&[0xff, 0xd8, 0xff]) {
        return Ok(JPEG);
    }
    if head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a") {
        return Ok(GIF);
    }
    if head.len() >= 12 && head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return Ok(WEBP);
    }
    if head.starts_with(b"PK\x03\x04") {
        return zip_kind(r, len);
    }
    if head.starts_with(&[0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1]) {
        return ole_kind(r);
    }
    text_kind(r, file_name)
}

/// An Office Open XML or OFD package, told by the names in the zip's central directory;
/// other archives, and Office files carrying macros, are refused.
fn zip_kind<R: Read + Seek>(r: &mut R, len: u64) -> Result<&'static str, Refusal> {
    let names = zip_names(r, len).ok_or(Refusal::Type)?;
    if names.iter().any(|n| n.to_ascii_lowercase().ends_with("vbaproject.bin")) {
        return Err(Refusal::Type);
    }
    let has_types = names.iter().any(|n| n == "[Content_Types].xml");
    let under = |prefix: &str| names.iter().any(|n| n.starts_with(prefix));
    if has_types && under("word/") {
        Ok(DOCX)
    } else if has_types && under("xl/") {
        Ok(XLSX)
    } else if has_types && under("ppt/") {
        Ok(PPTX)
    } else if names.iter().any(|n| n == "OFD.xml") {
        Ok(OFD)
    } else {
        Err(Refusal::Type)
    }
}

/// The entry names of a zip file, from its central directory (at most 10,000 entries).
fn zip_names<R: Read + Seek>(r: &mut R, len: u64) -> Option<Vec<String>> {
    const EOCD: &[u8] = b"PK\x05\x06";
    let tail_len = len.min(22 + 65_535);
    r.seek(SeekFrom::Start(len - tail_len)).ok()?;
    let mut tail = vec![0u8; tail_len as usize];
    r.read_exact(&mut tail).ok()?;
    let at = (0..tail.len().checked_sub(21)?).rev().find(|&i| &tail[i..i + 4] == EOCD)?;
    let eocd = &tail[at..];
    let u16_at = |b: &[u8], i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
    let u32_at = |b: &[u8], i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let entries = usize::from(u16_at(eocd, 10));
    let cd_size = u64::from(u32_at(eocd, 12));
    let cd_offset = u64::from(u32_at(eocd, 16));
    if entries == 0 || entries > 10_000 || cd_size > 8 * 1024 * 1024 || cd_offset + cd_size > len {
        return None;
    }
    r.seek(SeekFrom::Start(cd_offset)).ok()?;
    let mut cd = vec![0u8; cd_size as usize];
    r.read_exact(&mut cd).ok()?;
    let mut names = Vec::with_capacity(entries);
    let mut i = 0usize;
    for _ in 0..entries {
        if cd.len() < i + 46 || &cd[i..i + 4] != b"PK\x01\x02" {
            return None;
        }
        let name_len = usize::from(u16_at(&cd, i + 28));
        let extra_len = usize::from(u16_at(&cd, i + 30));
        let comment_len = usize::from(u16_at(&cd, i + 32));
        let name = cd.get(i + 46..i + 46 + name_len)?;
        names.push(String::from_utf8_lossy(name).into_owned());
        i += 46 + name_len + extra_len + comment_len;
    }
    Some(names)
}

/// A legacy Office file (an OLE compound file), told by the stream it must hold; other
/// compound files (installers among them) are refused.
fn ole_kind<R: Read + Seek>(r: &mut R) -> Result<&'static str, Refusal> {
    let utf16 = |s: &str| -> Vec<u8> { s.encode_utf16().flat_map(|u| u.to_le_bytes()).chain([0, 0]).collect() };
    let wanted: [(Vec<u8>, &'static str); 4] = [
        (utf16("WordDocument"), DOC),
        (utf16("Workbook"), XLS),
        (utf16("PowerPoint Document"), PPT),
        (utf16("Book"), XLS),
    ];
    let mut found: [bool; 4] = [false; 4];
    let overlap = wanted.iter().map(|(w, _)| w.len()).max().unwrap_or(0);
    r.seek(SeekFrom::Start(0))?;
    let mut carry: Vec<u8> = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        carry.extend_from_slice(&buf[..n]);
        for (k, (w, _)) in wanted.iter().enumerate() {
            if !found[k] && carry.windows(w.len()).any(|win| win == w.as_slice()) {
                found[k] = true;
            }
        }
        if found[0] {
            break;
        }
        let keep = carry.len().saturating_sub(overlap);
        carry.drain(..keep);
    }
    wanted.iter().zip(found).find(|(_, f)| *f).map(|((_, kind), _)| *kind).ok_or(Refusal::Type)
}

/// Plain text or CSV: valid UTF-8 (a BOM allowed) or GB18030, no NUL or other control
/// characters but tab, line breaks and form feed, and nothing that reads as markup or a
/// script (HTML, SVG, XML, `#!`).
fn text_kind<R: Read + Seek>(r: &mut R, file_name: &str) -> Result<&'static str, Refusal> {
    let csv = file_name.to_ascii_lowercase().ends_with(".csv");
    if decodes_cleanly(r, encoding_rs::UTF_8)? {
        return Ok(if csv { CSV_UTF8 } else { TEXT_UTF8 });
    }
    if decodes_cleanly(r, encoding_rs::GB18030)? {
        return Ok(if csv { CSV_GB18030 } else { TEXT_GB18030 });
    }
    Err(Refusal::Type)
}

fn decodes_cleanly<R: Read + Seek>(r: &mut R, encoding: &'static encoding_rs::Encoding) -> Result<bool, Refusal> {
    use encoding_rs::DecoderResult;
    r.seek(SeekFrom::Start(0))?;
    let mut decoder = encoding.new_decoder_without_bom_handling();
    let mut input = vec![0u8; 64 * 1024];
    let mut output = vec![0u8; 64 * 1024 * 3 + 16];
    let mut start = String::new();
    let mut first = true;
    loop {
        let n = r.read(&mut input)?;
        let last = n == 0;
        let mut src = &input[..n];
        if first && src.starts_with(b"\xef\xbb\xbf") && encoding == encoding_rs::UTF_8 {
            src = &src[3..];
        }
        first = false;
        loop {
            let (result, read, written) = decoder.decode_to_utf8_without_replacement(src, &mut output, last);
            let out = &output[..written];
            if out.iter().any(|&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x0c) || b == 0x7f) {
                return Ok(false);
            }
            if start.len() < 4096 {
                start.push_str(&String::from_utf8_lossy(&out[..out.len().min(4096)]));
            }
            src = &src[read..];
            match result {
                DecoderResult::InputEmpty => break,
                DecoderResult::OutputFull => continue,
                DecoderResult::Malformed(_, _) => return Ok(false),
            }
        }
        if last {
            break;
        }
    }
    Ok(!looks_like_markup_or_script(&start))
}

fn looks_like_markup_or_script(start: &str) -> bool {
    let s = start.trim_start_matches('\u{feff}').trim_start();
    if s.starts_with('<') || s.starts_with("#!") {
        return true;
    }
    let lower = s.to_lowercase();
    ["<script", "<html", "<svg", "<?xml", "<!doctype", "<iframe", "<object", "<body", "<meta"]
        .iter()
        .any(|tag| lower.contains(tag))
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn kind(bytes: &[u8], name: &str) -> Result<&'static str, Refusal> {
        detect(&mut Cursor::new(bytes.to_vec()), bytes.len() as u64, name)
    }

    /// A zip holding empty files with these names (stored, CRCs left zero: the detector
    /// reads only the directory).
    fn zip(names: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut central = Vec::new();
        for name in names {
            let offset = out.len() as u32;
            out.extend_from_slice(b"PK\x03\x04");
            out.extend_from_slice(&[20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            out.extend_from_slice(&[0; 12]);
            out.extend_from_slice(&(name.len() as u16).to_le_bytes());
            out.extend_from_slice(&[0, 0]);
            out.extend_from_slice(name.as_bytes());
            central.extend_from_slice(b"PK\x01\x02");
            central.extend_from_slice(&[20, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&(name.len() as u16).to_le_bytes());
            central.extend_from_slice(&[0; 12]);
            central.extend_from_slice(&offset.to_le_bytes());
            central.extend_from_slice(name.as_bytes());
        }
        let cd_offset = out.len() as u32;
        out.extend_from_slice(&central);
        out.extend_from_slice(b"PK\x05\x06");
        out.extend_from_slice(&[0, 0, 0, 0]);
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(names.len() as u16).to_le_bytes());
        out.extend_from_slice(&(central.len() as u32).to_le_bytes());
        out.extend_from_slice(&cd_offset.to_le_bytes());
        out.extend_from_slice(&[0, 0]);
        out
    }

    #[test]
    fn documents_and_images_are_known_by_their_bytes() {
        assert_eq!(kind(b"%PDF-1.4\n%\xe2\xe3\n1 0 obj\n", "x.bin").unwrap(), PDF);
        assert_eq!(kind(&[0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a, 0, 0], "a.pdf").unwrap(), PNG);
        assert_eq!(kind(&[0xff, 0xd8, 0xff, 0xe0, 0, 0x10], "a").unwrap(), JPEG);
        assert_eq!(kind(b"GIF89a\x01\x00", "a").unwrap(), GIF);
        assert_eq!(kind(b"RIFF\x10\x00\x00\x00WEBPVP8 ", "a").unwrap(), WEBP);
        assert_eq!(kind(&zip(&["[Content_Types].xml", "_rels/.rels", "word/document.xml"]), "a.zip").unwrap(), DOCX);
        assert_eq!(kind(&zip(&["[Content_Types].xml", "xl/workbook.xml"]), "a").unwrap(), XLSX);
        assert_eq!(kind(&zip(&["[Content_Types].xml", "ppt/presentation.xml"]), "a").unwrap(), PPTX);
        assert_eq!(kind(&zip(&["OFD.xml", "Doc_0/Document.xml"]), "a").unwrap(), OFD);
        let mut doc = vec![0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
        doc.resize(600, 0);
        doc.extend("WordDocument".encode_utf16().flat_map(|u| u.to_le_bytes()));
        doc.extend([0, 0, 0, 0]);
        assert_eq!(kind(&doc, "a").unwrap(), DOC);
    }

    #[test]
    fn text_is_utf8_or_gb18030_and_csv_only_by_name() {
        assert_eq!(kind("姓名,原因\n张三,出差\n".as_bytes(), "名单.csv").unwrap(), CSV_UTF8);
        assert_eq!(kind("\u{feff}会议纪要".as_bytes(), "纪要.txt").unwrap(), TEXT_UTF8);
        let (gb, _, _) = encoding_rs::GB18030.encode("姓名,原因\r\n张三,出差\r\n");
        assert_eq!(kind(&gb, "名单.CSV").unwrap(), CSV_GB18030);
        assert_eq!(kind(&gb, "名单.txt").unwrap(), TEXT_GB18030);
    }

    #[test]
    fn programs_scripts_markup_and_archives_are_refused() {
        let exe = b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff\x00\x00";
        assert!(matches!(kind(exe, "报告.pdf"), Err(Refusal::Type)));
        assert!(matches!(kind(b"\x7fELF\x02\x01\x01", "a.pdf"), Err(Refusal::Type)));
        assert!(matches!(kind(b"#!/bin/sh\nrm -rf /\n", "a.txt"), Err(Refusal::Type)));
        assert!(matches!(kind(b"<!DOCTYPE html><script>alert(1)</script>", "a.txt"), Err(Refusal::Type)));
        assert!(matches!(kind(b"<svg xmlns='http://www.w3.org/2000/svg' onload='x()'/>", "a.png"), Err(Refusal::Type)));
        assert!(matches!(kind(b"hello\n\n<script>x</script>", "a.csv"), Err(Refusal::Type)));
        assert!(matches!(kind(b"text with a \x00 NUL", "a.txt"), Err(Refusal::Type)));
        assert!(matches!(kind(&zip(&["setup.exe"]), "a.docx"), Err(Refusal::Type)));
        let macro_doc = zip(&["[Content_Types].xml", "word/document.xml", "word/vbaProject.bin"]);
        assert!(matches!(kind(&macro_doc, "a.docx"), Err(Refusal::Type)));
        let mut msi = vec![0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1];
        msi.resize(2048, 0);
        assert!(matches!(kind(&msi, "a.doc"), Err(Refusal::Type)));
        assert!(matches!(kind(b"", "a.txt"), Err(Refusal::Empty)));
    }

    #[test]
    fn display_names_lose_paths_and_control_characters() {
        assert_eq!(display_name("../../etc/passwd", PDF), "passwd");
        assert_eq!(display_name("C:\\Users\\张伟\\会议记录.docx", DOCX), "会议记录.docx");
        assert_eq!(display_name("a\r\nSet-Cookie: x\0.pdf", PDF), "aSet-Cookie: x.pdf");
        assert_eq!(display_name("invoice\u{202e}fdp.exe", PDF), "invoicefdp.exe");
        assert_eq!(display_name("../", PDF), "attachment.pdf");
        assert_eq!(display_name("..", PNG), "attachment.png");
        let long = format!("{}.pdf", "长".repeat(300));
        let kept = display_name(&long, PDF);
        assert_eq!(kept.chars().count(), 255);
        assert!(kept.ends_with(".pdf"));
    }

    #[tokio::test]
    async fn the_same_content_is_stored_once_and_a_refused_file_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path());
        let mut first = store.begin(1000).await.unwrap();
        first.write(b"%PDF-1.4 same").await.unwrap();
        let a = first.finish("a.pdf").await.unwrap();
        let mut second = store.begin(1000).await.unwrap();
        second.write(b"%PDF-1.4 ").await.unwrap();
        second.write(b"same").await.unwrap();
        let b = second.finish("b.pdf").await.unwrap();
        assert_eq!(a, b);
        assert!(store.contains(&a.sha256).await);
        let path = store.path_of(&a.sha256).unwrap();
        assert!(path.starts_with(dir.path().join(&a.sha256[0..2]).join(&a.sha256[2..4])));

        let mut big = store.begin(4).await.unwrap();
        assert!(matches!(big.write(b"12345").await, Err(Refusal::TooLarge { limit: 4 })));
        drop(big);
        let mut exe = store.begin(1000).await.unwrap();
        exe.write(b"MZ\x90\x00").await.unwrap();
        assert!(matches!(exe.finish("x.pdf").await, Err(Refusal::Type)));
        let leftovers = std::fs::read_dir(dir.path().join("tmp")).unwrap().count();
        assert_eq!(leftovers, 0, "no temporary file is left behind");
        assert!(store.path_of("../../etc/passwd").is_none());
    }
}
