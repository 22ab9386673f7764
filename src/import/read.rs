//! From a file's bytes to rows of cells: XLSX (a zip: `PK\x03\x04`) through calamine,
//! anything else as CSV text in UTF-8 (with or without BOM), UTF-16 with BOM (Excel's
//! "Unicode text"), or GB18030 (what Excel in China saves). What a file is comes from its
//! bytes, never from its name. Row numbers are the spreadsheet's: the header is row 1
//! when it is the first row, and blank rows count as Excel shows them.

use std::io::Cursor;
use std::path::Path;

use calamine::{Data, Reader, Xlsx};
use chrono::NaiveDate;

/// Files larger than this are refused before they are read into memory.
pub const MAX_BYTES: u64 = 50 * 1024 * 1024;

/// At most this many data rows (a 50 MB CSV holds fewer).
pub const MAX_ROWS: usize = 2_000_000;

/// An XLSX whose parts would unpack to more than this is refused (a zip bomb, or a
/// workbook far larger than any import).
const MAX_XLSX_UNPACKED: u64 = 400 * 1024 * 1024;

/// One cell as the file gave it.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell {
    Empty,
    Text(String),
    Number(f64),
    Date(NaiveDate),
    Bool(bool),
}

impl Cell {
    /// The cell as text, trimmed; `None` when it is empty. Whole numbers lose their ".0"
    /// (a code typed as 1001 is "1001").
    pub fn text(&self) -> Option<String> {
        let s = match self {
            Cell::Empty => return None,
            Cell::Text(s) => s.trim().to_owned(),
            Cell::Number(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{}", *n as i64),
            Cell::Number(n) => n.to_string(),
            Cell::Date(d) => d.format("%Y-%m-%d").to_string(),
            Cell::Bool(b) => if *b { "TRUE" } else { "FALSE" }.to_owned(),
        };
        (!s.is_empty()).then_some(s)
    }

    pub fn is_empty(&self) -> bool {
        self.text().is_none()
    }
}

/// A data row and its number in the spreadsheet.
#[derive(Debug, Clone)]
pub struct Row {
    pub number: u32,
    pub cells: Vec<Cell>,
}

impl Row {
    pub fn get(&self, i: usize) -> &Cell {
        self.cells.get(i).unwrap_or(&Cell::Empty)
    }
}

/// What kind of file it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    Xlsx,
    CsvUtf8,
    CsvUtf8Bom,
    CsvUtf16,
    CsvGb18030,
}

impl Format {
    pub fn label(self) -> &'static str {
        match self {
            Format::Xlsx => "XLSX",
            Format::CsvUtf8 => "CSV (UTF-8)",
            Format::CsvUtf8Bom => "CSV (UTF-8, BOM)",
            Format::CsvUtf16 => "CSV (UTF-16)",
            Format::CsvGb18030 => "CSV (GB18030)",
        }
    }
}

/// A file read into a header and rows.
#[derive(Debug, Clone)]
pub struct Table {
    pub format: Format,
    /// The header's cells as text (trimmed), and its row number.
    pub header: Vec<String>,
    pub header_row: u32,
    pub rows: Vec<Row>,
}

/// Why a file could not be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileProblem {
    /// Nothing in it (or only blanks).
    Empty,
    /// A header and no data rows.
    HeaderOnly,
    /// Over [`MAX_BYTES`] (or an XLSX that unpacks to far more).
    TooLarge,
    /// More than [`MAX_ROWS`] data rows.
    TooManyRows,
    /// Neither CSV text nor an XLSX workbook (a picture, a PDF, a program…).
    NotTable,
    /// An old binary Excel workbook (.xls, .et).
    OldExcel,
    /// A zip that is not a readable XLSX workbook (damaged, a .docx, an encrypted file).
    BadXlsx,
    /// The file could not be read from disk.
    Unreadable,
}

impl FileProblem {
    /// The message key of `import.toml`.
    pub fn key(self) -> &'static str {
        match self {
            FileProblem::Empty => "import.file_empty",
            FileProblem::HeaderOnly => "import.file_header_only",
            FileProblem::TooLarge => "import.file_too_large",
            FileProblem::TooManyRows => "import.file_too_many_rows",
            FileProblem::NotTable => "import.file_not_table",
            FileProblem::OldExcel => "import.file_old_excel",
            FileProblem::BadXlsx => "import.file_bad_xlsx",
            FileProblem::Unreadable => "import.file_unreadable",
        }
    }
}

/// Read a file from disk: its size is checked before anything is read.
pub fn read_path(path: &Path) -> Result<(Table, Vec<u8>), FileProblem> {
    let meta = std::fs::metadata(path).map_err(|_| FileProblem::Unreadable)?;
    if !meta.is_file() {
        return Err(FileProblem::Unreadable);
    }
    if meta.len() > MAX_BYTES {
        return Err(FileProblem::TooLarge);
    }
    let bytes = std::fs::read(path).map_err(|_| FileProblem::Unreadable)?;
    let table = read(&bytes)?;
    Ok((table, bytes))
}

/// Read a file's bytes into a table.
pub fn read(bytes: &[u8]) -> Result<Table, FileProblem> {
    if bytes.len() as u64 > MAX_BYTES {
        return Err(FileProblem::TooLarge);
    }
    if bytes.iter().all(|b| b.is_ascii_whitespace()) {
        return Err(FileProblem::Empty);
    }
    let (format, rows) = if bytes.starts_with(b"PK\x03\x04") {
        (Format::Xlsx, read_xlsx(bytes)?)
    } else if bytes.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return Err(FileProblem::OldExcel);
    } else {
        let (format, text) = decode_text(bytes)?;
        (format, read_csv(&text)?)
    };
    let mut rows = rows.into_iter().filter(|r| r.cells.iter().any(|c| !c.is_empty()));
    let Some(header) = rows.next() else { return Err(FileProblem::Empty) };
    let rows: Vec<Row> = rows.collect();
    if rows.is_empty() {
        return Err(FileProblem::HeaderOnly);
    }
    if rows.len() > MAX_ROWS {
        return Err(FileProblem::TooManyRows);
    }
    Ok(Table {
        format,
        header: header.cells.iter().map(|c| c.text().unwrap_or_default()).collect(),
        header_row: header.number,
        rows,
    })
}

/// The text of a CSV file, from whichever encoding it is in; binary files are refused.
fn decode_text(bytes: &[u8]) -> Result<(Format, String), FileProblem> {
    if infer::get(bytes).is_some_and(|k| k.matcher_type() != infer::MatcherType::Text) {
        return Err(FileProblem::NotTable);
    }
    let (format, text) = if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        (Format::CsvUtf8Bom, std::str::from_utf8(rest).map_err(|_| FileProblem::NotTable)?.to_owned())
    } else if bytes.starts_with(b"\xFF\xFE") || bytes.starts_with(b"\xFE\xFF") {
        let enc = if bytes[0] == 0xFF { encoding_rs::UTF_16LE } else { encoding_rs::UTF_16BE };
        let text = enc.decode_without_bom_handling_and_without_replacement(&bytes[2..]).ok_or(FileProblem::NotTable)?;
        (Format::CsvUtf16, text.into_owned())
    } else if let Ok(s) = std::str::from_utf8(bytes) {
        (Format::CsvUtf8, s.to_owned())
    } else {
        let text = encoding_rs::GB18030
            .decode_without_bom_handling_and_without_replacement(bytes)
            .ok_or(FileProblem::NotTable)?;
        (Format::CsvGb18030, text.into_owned())
    };
    // Text has no control characters but tabs, line breaks and form feeds.
    if text.chars().any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r' | '\x0c')) {
        return Err(FileProblem::NotTable);
    }
    Ok((format, text))
}

/// The field separator: a comma, unless the first line has more tabs or semicolons
/// (Excel's "Unicode text" is tab-separated).
fn delimiter(text: &str) -> u8 {
    let first = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let count = |c: char| first.chars().filter(|x| *x == c).count();
    let (comma, tab, semi) = (count(','), count('\t'), count(';'));
    if tab > comma && tab >= semi {
        b'\t'
    } else if semi > comma && semi > tab {
        b';'
    } else {
        b','
    }
}

fn read_csv(text: &str) -> Result<Vec<Row>, FileProblem> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter(text))
        .from_reader(text.as_bytes());
    let mut rows = Vec::new();
    // The CSV reader skips blank lines; Excel shows them as rows. A quoted cell with line
    // breaks is one row in Excel but several lines in the file.
    let mut row_number: u32 = 0;
    let mut next_line: u64 = 1;
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(true) => {}
            Ok(false) => break,
            Err(_) => return Err(FileProblem::NotTable),
        }
        // The position is where the reader started, before the blank lines it skipped.
        let (mut line, mut at) = record.position().map(|p| (p.line(), p.byte() as usize)).unwrap_or((next_line, 0));
        let bytes = text.as_bytes();
        while let Some(rest) = bytes.get(at..) {
            let skip = if rest.starts_with(b"\r\n") {
                2
            } else if rest.starts_with(b"\n") || rest.starts_with(b"\r") {
                1
            } else {
                break;
            };
            at += skip;
            line += 1;
        }
        row_number += 1 + line.saturating_sub(next_line) as u32;
        let breaks: u64 = record.iter().map(|f| f.matches('\n').count() as u64).sum();
        next_line = line + 1 + breaks;
        rows.push(Row {
            number: row_number,
            cells: record
                .iter()
                .map(|f| {
                    let f = f.trim();
                    if f.is_empty() { Cell::Empty } else { Cell::Text(f.to_owned()) }
                })
                .collect(),
        });
        if rows.len() > MAX_ROWS + 1 {
            return Err(FileProblem::TooManyRows);
        }
    }
    Ok(rows)
}

fn read_xlsx(bytes: &[u8]) -> Result<Vec<Row>, FileProblem> {
    match unpacked_size(bytes) {
        Some(n) if n > MAX_XLSX_UNPACKED => return Err(FileProblem::TooLarge),
        Some(_) => {}
        None => return Err(FileProblem::BadXlsx),
    }
    let mut book: Xlsx<_> = Xlsx::new(Cursor::new(bytes)).map_err(|_| FileProblem::BadXlsx)?;
    let range = match book.worksheet_range_at(0) {
        Some(Ok(r)) => r,
        _ => return Err(FileProblem::BadXlsx),
    };
    let Some((first_row, _)) = range.start() else { return Ok(vec![]) };
    if range.height() > MAX_ROWS + 1 {
        return Err(FileProblem::TooManyRows);
    }
    Ok(range
        .rows()
        .enumerate()
        .map(|(i, cells)| Row { number: first_row + i as u32 + 1, cells: cells.iter().map(xlsx_cell).collect() })
        .collect())
}

fn xlsx_cell(d: &Data) -> Cell {
    match d {
        Data::Empty => Cell::Empty,
        Data::String(s) if s.trim().is_empty() => Cell::Empty,
        Data::String(s) => Cell::Text(s.trim().to_owned()),
        Data::Int(i) => Cell::Number(*i as f64),
        Data::Float(f) => Cell::Number(*f),
        Data::Bool(b) => Cell::Bool(*b),
        Data::DateTime(dt) if dt.is_datetime() => {
            let (y, m, d, ..) = dt.to_ymd_hms_milli();
            NaiveDate::from_ymd_opt(y.into(), m.into(), d.into()).map(Cell::Date).unwrap_or(Cell::Number(dt.as_f64()))
        }
        Data::DateTime(dt) => Cell::Number(dt.as_f64()),
        Data::DateTimeIso(s) => s
            .get(..10)
            .and_then(|p| NaiveDate::parse_from_str(p, "%Y-%m-%d").ok())
            .map(Cell::Date)
            .unwrap_or_else(|| Cell::Text(s.clone())),
        Data::DurationIso(s) => Cell::Text(s.clone()),
        Data::Error(e) => Cell::Text(format!("#{e:?}")),
    }
}

/// The sum of the sizes a zip's central directory declares for its parts unpacked, or
/// `None` when there is no readable central directory.
fn unpacked_size(bytes: &[u8]) -> Option<u64> {
    const EOCD: [u8; 4] = [0x50, 0x4b, 0x05, 0x06];
    const ENTRY: [u8; 4] = [0x50, 0x4b, 0x01, 0x02];
    let u16_at = |i: usize| -> Option<u64> { Some(u16::from_le_bytes(bytes.get(i..i + 2)?.try_into().ok()?) as u64) };
    let u32_at = |i: usize| -> Option<u64> { Some(u32::from_le_bytes(bytes.get(i..i + 4)?.try_into().ok()?) as u64) };
    let search_from = bytes.len().saturating_sub(22 + 65_535);
    let eocd = (search_from..=bytes.len().saturating_sub(22)).rev().find(|&i| bytes[i..].starts_with(&EOCD))?;
    let entries = u16_at(eocd + 10)?;
    let mut at = u32_at(eocd + 16)? as usize;
    if at == 0xFFFF_FFFF {
        // Zip64: far larger than any import.
        return Some(u64::MAX);
    }
    let mut total: u64 = 0;
    for _ in 0..entries {
        if !bytes.get(at..)?.starts_with(&ENTRY) {
            return None;
        }
        let size = u32_at(at + 24)?;
        if size == 0xFFFF_FFFF {
            return Some(u64::MAX);
        }
        total = total.saturating_add(size);
        at += 46 + u16_at(at + 28)? as usize + u16_at(at + 30)? as usize + u16_at(at + 32)? as usize;
    }
    Some(total)
}

/// A date as people write it in a Chinese office: `2026-03-01`, `2026/3/1`, `2026.3.1`,
/// `2026年3月1日`, `20260301`, optionally followed by a midnight time (Excel writes
/// `2026/3/1 0:00` into CSV); in a spreadsheet also a date cell or its serial number.
pub fn parse_date(cell: &Cell) -> Option<NaiveDate> {
    let date = match cell {
        Cell::Date(d) => Some(*d),
        Cell::Number(n) if (19000101.0..=29991231.0).contains(n) && n.fract() == 0.0 => {
            let n = *n as u32;
            NaiveDate::from_ymd_opt((n / 10000) as i32, n / 100 % 100, n % 100)
        }
        // An Excel serial number (days since 1899-12-30) of a plausible year.
        Cell::Number(n) if (1.0..=401_768.0).contains(n) => {
            let days = n.floor() as i64;
            NaiveDate::from_ymd_opt(1899, 12, 30)?.checked_add_signed(chrono::Duration::days(days))
        }
        Cell::Text(s) => parse_date_text(s),
        _ => None,
    }?;
    (1900..=2999).contains(&chrono::Datelike::year(&date)).then_some(date)
}

fn parse_date_text(s: &str) -> Option<NaiveDate> {
    let s = s.trim();
    // A trailing time of day, as Excel writes a date cell into CSV.
    let s = match s.split_once([' ', 'T']) {
        Some((d, time)) if !time.trim().is_empty() && time.trim().chars().all(|c| c == '0' || c == ':') => d,
        Some(_) => return None,
        None => s,
    };
    if s.len() == 8 && s.bytes().all(|b| b.is_ascii_digit()) {
        return NaiveDate::parse_from_str(s, "%Y%m%d").ok();
    }
    let s = s.strip_suffix('日').unwrap_or(s);
    let parts: Vec<&str> = s.split(['-', '/', '.', '年', '月']).collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.len() > 4 || !p.bytes().all(|b| b.is_ascii_digit())) {
        return None;
    }
    if parts[0].len() != 4 {
        return None;
    }
    NaiveDate::from_ymd_opt(parts[0].parse().ok()?, parts[1].parse().ok()?, parts[2].parse().ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(y: i32, m: u32, day: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(y, m, day).unwrap()
    }

    #[test]
    fn dates_are_read_as_an_office_writes_them() {
        for s in [
            "2026-03-01",
            "2026/3/1",
            "2026.3.1",
            "2026年3月1日",
            "2026-3-1",
            "20260301",
            "2026/3/1 0:00",
            "2026-03-01 00:00:00",
        ] {
            assert_eq!(parse_date(&Cell::Text(s.into())), Some(d(2026, 3, 1)), "{s}");
        }
        for s in ["2026-02-30", "3/1/2026", "2026-03", "明天", "2026/3/1 9:30", "26-3-1", "1800-01-01"] {
            assert_eq!(parse_date(&Cell::Text(s.into())), None, "{s}");
        }
        assert_eq!(parse_date(&Cell::Number(46082.0)), Some(d(2026, 3, 1)));
        assert_eq!(parse_date(&Cell::Number(20260301.0)), Some(d(2026, 3, 1)));
        assert_eq!(parse_date(&Cell::Date(d(2026, 3, 1))), Some(d(2026, 3, 1)));
    }

    #[test]
    fn csv_rows_keep_their_spreadsheet_numbers() {
        let t = read("code,name\nA,甲\n\nB,\"乙\n二\"\nC,丙\n".as_bytes()).unwrap();
        assert_eq!(t.header_row, 1);
        let numbers: Vec<u32> = t.rows.iter().map(|r| r.number).collect();
        assert_eq!(numbers, vec![2, 4, 5]);
        assert_eq!(t.rows[1].get(1), &Cell::Text("乙\n二".into()));
    }

    #[test]
    fn encodings_and_separators_are_recognised() {
        let bom = [b"\xEF\xBB\xBF".as_slice(), "组织代码,组织名称\nA,甲\n".as_bytes()].concat();
        assert_eq!(read(&bom).unwrap().header[0], "组织代码");
        let (gb, _, _) = encoding_rs::GB18030.encode("组织代码,组织名称\nA,第一党支部\n");
        let t = read(&gb).unwrap();
        assert_eq!(t.format, Format::CsvGb18030);
        assert_eq!(t.rows[0].get(1), &Cell::Text("第一党支部".into()));
        let tabs = read("code\tname\nA\t甲\n".as_bytes()).unwrap();
        assert_eq!(tabs.header, vec!["code", "name"]);
    }

    #[test]
    fn files_that_are_no_table_are_named_so() {
        assert_eq!(read(b"").unwrap_err(), FileProblem::Empty);
        assert_eq!(read(b" \n\r\n").unwrap_err(), FileProblem::Empty);
        assert_eq!(read(b"code,name\n").unwrap_err(), FileProblem::HeaderOnly);
        assert_eq!(read(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01").unwrap_err(), FileProblem::NotTable);
        assert_eq!(read(b"%PDF-1.7\n%\xE2\xE3\xCF\xD3\n1 0 obj\n").unwrap_err(), FileProblem::NotTable);
        assert_eq!(read(b"PK\x03\x04garbage").unwrap_err(), FileProblem::BadXlsx);
        assert_eq!(read(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1, 0, 0]).unwrap_err(), FileProblem::OldExcel);
        assert_eq!(read(&[0xFF; 64]).unwrap_err(), FileProblem::NotTable);
    }
}
