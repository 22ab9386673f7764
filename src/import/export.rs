//! Export in the import layouts, so that an exported file imported again changes
//! nothing: CSV in UTF-8 with a BOM (so that Excel opens it as UTF-8), or XLSX with a
//! bold header row and real date cells. Headers, kinds, roles and yes/no follow the
//! reader's language; the import reads either.

use std::path::Path;

use chrono::{Datelike, NaiveDate};
use rust_xlsxwriter::{ExcelDateTime, Workbook};
use sqlx::PgConnection;

use super::What;
use super::orgs::Kinds;
use super::roles::role_zh;
use crate::domain::access::Role;
use crate::web::i18n::Locale;

/// At most this many rows are exported (far more than a deployment's organisations).
pub const MAX_ROWS: i64 = 2_000_000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Xlsx,
}

impl Format {
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext.to_ascii_lowercase().as_str() {
            "csv" => Some(Format::Csv),
            "xlsx" => Some(Format::Xlsx),
            _ => None,
        }
    }

    pub fn from_path(path: &Path) -> Option<Format> {
        Format::from_extension(path.extension()?.to_str()?)
    }

    pub fn extension(self) -> &'static str {
        match self {
            Format::Csv => "csv",
            Format::Xlsx => "xlsx",
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::Xlsx => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        }
    }
}

/// One exported cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Empty,
    Text(String),
    Date(NaiveDate),
}

impl From<Option<String>> for Value {
    fn from(v: Option<String>) -> Value {
        match v {
            Some(s) if !s.is_empty() => Value::Text(s),
            _ => Value::Empty,
        }
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::from(Some(s))
    }
}

impl From<Option<NaiveDate>> for Value {
    fn from(d: Option<NaiveDate>) -> Value {
        d.map(Value::Date).unwrap_or(Value::Empty)
    }
}

/// A layout filled from the database.
#[derive(Debug, Clone)]
pub struct Sheet {
    pub name: String,
    pub header: Vec<String>,
    pub widths: Vec<f64>,
    pub rows: Vec<Vec<Value>>,
}

/// The rows of a layout, in tree order (organisations by path).
pub async fn sheet(conn: &mut PgConnection, what: What, locale: Locale) -> anyhow::Result<Sheet> {
    let zh = locale == Locale::Zh;
    let header: Vec<String> = what.columns().iter().map(|c| c.header(locale).to_owned()).collect();
    let yes_no = |b: bool| -> Value {
        Value::Text(match (b, zh) {
            (true, true) => "是".into(),
            (false, true) => "否".into(),
            (true, false) => "yes".into(),
            (false, false) => "no".into(),
        })
    };
    let (name, widths, rows): (&str, Vec<f64>, Vec<Vec<Value>>) = match what {
        What::Orgs => {
            let kinds = Kinds::load(conn).await?;
            type OrgRow = (String, String, String, Option<String>, NaiveDate, Option<NaiveDate>);
            let rows: Vec<OrgRow> = sqlx::query_as(
                "select o.code, o.name, o.kind, p.code, o.active_from, o.active_until
                 from org o left join org p on p.id = o.parent_id order by o.path limit $1",
            )
            .bind(MAX_ROWS)
            .fetch_all(&mut *conn)
            .await?;
            let rows = rows
                .into_iter()
                .map(|(code, name, kind, parent, from, until)| {
                    vec![
                        code.into(),
                        name.into(),
                        (if zh { kinds.display(&kind) } else { kind }).into(),
                        parent.into(),
                        Value::Date(from),
                        until.into(),
                    ]
                })
                .collect();
            (if zh { "组织" } else { "Organisations" }, vec![16.0, 36.0, 14.0, 16.0, 12.0, 12.0], rows)
        }
        What::People => {
            type PersonRow = (Option<String>, String, Option<String>, Option<String>, Option<String>, Option<String>);
            let rows: Vec<PersonRow> = sqlx::query_as(
                "select p.code, p.name, u.login, p.phone, p.email, p.note
                 from person p left join app_user u on u.person_id = p.id
                 order by p.code nulls last, p.id limit $1",
            )
            .bind(MAX_ROWS)
            .fetch_all(&mut *conn)
            .await?;
            let rows = rows
                .into_iter()
                .map(|(code, name, login, phone, email, note)| {
                    vec![code.into(), name.into(), login.into(), phone.into(), email.into(), note.into()]
                })
                .collect();
            (if zh { "人员" } else { "People" }, vec![14.0, 14.0, 16.0, 16.0, 24.0, 30.0], rows)
        }
        What::Roles => {
            type RoleRow =
                (String, String, Option<String>, Option<String>, String, String, NaiveDate, Option<NaiveDate>, bool);
            let rows: Vec<RoleRow> = sqlx::query_as(
                "select o.code, o.name, p.code, u.login, p.name, ra.role, ra.starts_on, ra.ends_on, ra.acting
                 from role_assignment ra join org o on o.id = ra.org_id join person p on p.id = ra.person_id
                 left join app_user u on u.person_id = p.id
                 order by o.path,
                          array_position(array['secretary', 'member', 'coordinator', 'inspector'], ra.role),
                          ra.starts_on, p.name, ra.id
                 limit $1",
            )
            .bind(MAX_ROWS)
            .fetch_all(&mut *conn)
            .await?;
            let rows = rows
                .into_iter()
                .map(|(org, org_name, person, login, name, role, from, until, acting)| {
                    let role = match role.parse::<Role>() {
                        Ok(r) if zh => role_zh(r).to_owned(),
                        _ => role,
                    };
                    vec![
                        org.into(),
                        org_name.into(),
                        person.into(),
                        login.into(),
                        name.into(),
                        role.into(),
                        Value::Date(from),
                        until.into(),
                        yes_no(acting),
                    ]
                })
                .collect();
            (if zh { "任职" } else { "Roles" }, vec![14.0, 30.0, 12.0, 14.0, 12.0, 12.0, 12.0, 12.0, 8.0], rows)
        }
    };
    Ok(Sheet { name: name.to_owned(), header, widths, rows })
}

/// The file's bytes.
pub fn write(sheet: &Sheet, format: Format) -> anyhow::Result<Vec<u8>> {
    match format {
        Format::Csv => write_csv(sheet),
        Format::Xlsx => write_xlsx(sheet),
    }
}

fn write_csv(sheet: &Sheet) -> anyhow::Result<Vec<u8>> {
    let mut out: Vec<u8> = b"\xEF\xBB\xBF".to_vec();
    {
        let mut w = csv::WriterBuilder::new().terminator(csv::Terminator::CRLF).from_writer(&mut out);
        w.write_record(&sheet.header)?;
        for row in &sheet.rows {
            w.write_record(row.iter().map(|v| match v {
                Value::Empty => String::new(),
                Value::Text(s) => s.clone(),
                Value::Date(d) => d.format("%Y-%m-%d").to_string(),
            }))?;
        }
        w.flush()?;
    }
    Ok(out)
}

fn write_xlsx(sheet: &Sheet) -> anyhow::Result<Vec<u8>> {
    use rust_xlsxwriter::{Color, Format as CellFormat, FormatBorder};
    let mut book = Workbook::new();
    let ws = book.add_worksheet();
    ws.set_name(&sheet.name)?;
    let head =
        CellFormat::new().set_bold().set_background_color(Color::RGB(0xF2_E6_E4)).set_border_bottom(FormatBorder::Thin);
    let date = CellFormat::new().set_num_format("yyyy-mm-dd");
    let text = CellFormat::new().set_num_format("@");
    for (c, (h, w)) in sheet.header.iter().zip(sheet.widths.iter()).enumerate() {
        ws.write_string_with_format(0, c as u16, h, &head)?;
        ws.set_column_width(c as u16, *w)?;
    }
    for (r, row) in sheet.rows.iter().enumerate() {
        let r = r as u32 + 1;
        for (c, v) in row.iter().enumerate() {
            let c = c as u16;
            match v {
                Value::Empty => {}
                Value::Text(s) => {
                    ws.write_string_with_format(r, c, s, &text)?;
                }
                Value::Date(d) => {
                    let cell = ExcelDateTime::from_ymd(d.year() as u16, d.month() as u8, d.day() as u8)?;
                    ws.write_date_with_format(r, c, &cell, &date)?;
                }
            }
        }
    }
    ws.set_freeze_panes(1, 0)?;
    Ok(book.save_to_buffer()?)
}
