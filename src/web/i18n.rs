//! Message catalogues: every text a page shows comes from `i18n/*.toml` (zh-CN first,
//! English on request). Each file holds a `[zh]` and an `[en]` table; a key is the file's
//! name and the entry's name, e.g. `workbench.title`. A test checks that every key has
//! both languages and that every key a template uses exists.

use std::collections::HashMap;
use std::fmt::{Display, Write};
use std::sync::OnceLock;

use rust_embed::RustEmbed;

#[derive(RustEmbed)]
#[folder = "i18n/"]
struct Catalogue;

/// The languages the portal speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Locale {
    #[default]
    Zh,
    En,
}

impl Locale {
    /// The value of `<html lang>` and of the language cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Locale::Zh => "zh-CN",
            Locale::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Locale> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("zh") {
            Some(Locale::Zh)
        } else if s.starts_with("en") {
            Some(Locale::En)
        } else {
            None
        }
    }

    /// The first language of an `Accept-Language` header that the portal speaks.
    pub fn from_accept_language(header: &str) -> Option<Locale> {
        header.split(',').filter_map(|part| Locale::parse(part.split(';').next().unwrap_or(""))).next()
    }

    fn table(self) -> &'static str {
        match self {
            Locale::Zh => "zh",
            Locale::En => "en",
        }
    }
}

type Messages = HashMap<String, String>;

fn catalogues() -> &'static HashMap<Locale, Messages> {
    static ALL: OnceLock<HashMap<Locale, Messages>> = OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: HashMap<Locale, Messages> = HashMap::new();
        for file in Catalogue::iter() {
            let Some(area) = file.strip_suffix(".toml") else { continue };
            let Some(content) = Catalogue::get(&file) else { continue };
            let text = String::from_utf8_lossy(&content.data);
            let parsed: toml::Table = match toml::from_str(&text) {
                Ok(t) => t,
                Err(e) => {
                    tracing::error!("message catalogue {file} is malformed: {e}");
                    continue;
                }
            };
            for locale in [Locale::Zh, Locale::En] {
                if let Some(toml::Value::Table(entries)) = parsed.get(locale.table()) {
                    let messages = all.entry(locale).or_default();
                    for (key, value) in entries {
                        if let toml::Value::String(s) = value {
                            messages.insert(format!("{area}.{key}"), s.clone());
                        }
                    }
                }
            }
        }
        all
    })
}

/// A missing key, shown as itself; kept once so that it can live as long as a message.
fn missing(key: &str) -> &'static str {
    static MISSING: OnceLock<std::sync::Mutex<HashMap<String, &'static str>>> = OnceLock::new();
    let mut seen = MISSING.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = seen.get(key) {
        return s;
    }
    tracing::warn!("no message for {key}");
    let leaked: &'static str = Box::leak(key.to_owned().into_boxed_str());
    seen.insert(key.to_owned(), leaked);
    leaked
}

/// Every key of a language's catalogue (for tests).
pub fn keys(locale: Locale) -> Vec<String> {
    let mut keys: Vec<String> = catalogues().get(&locale).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    keys.sort();
    keys
}

/// The messages of one language, as templates use them: `{{ t.t("workbench.title") }}`,
/// `{{ t.f2("workbench.done_of", done, required) }}` with `{0}`, `{1}` in the text.
#[derive(Debug, Clone, Copy, Default)]
pub struct Tr {
    pub locale: Locale,
}

impl Tr {
    pub fn new(locale: Locale) -> Tr {
        Tr { locale }
    }

    pub fn lang(&self) -> &'static str {
        self.locale.tag()
    }

    pub fn is_en(&self) -> bool {
        self.locale == Locale::En
    }

    /// The message for `key`; English falls back to Chinese, and a missing key shows as
    /// itself (a test keeps that from happening).
    pub fn t(&self, key: &str) -> &'static str {
        let all = catalogues();
        all.get(&self.locale)
            .and_then(|m| m.get(key))
            .or_else(|| all.get(&Locale::Zh).and_then(|m| m.get(key)))
            .map(|s| s.as_str())
            .unwrap_or_else(|| missing(key))
    }

    /// The message for `key` with `{0}` replaced by `a`.
    pub fn f1(&self, key: &str, a: impl Display) -> String {
        self.fill(key, &[&a])
    }

    /// The message for `key` with `{0}`, `{1}` replaced.
    pub fn f2(&self, key: &str, a: impl Display, b: impl Display) -> String {
        self.fill(key, &[&a, &b])
    }

    /// The message for `key` with `{0}`, `{1}`, `{2}` replaced.
    pub fn f3(&self, key: &str, a: impl Display, b: impl Display, c: impl Display) -> String {
        self.fill(key, &[&a, &b, &c])
    }

    /// One pass over the message: each `{N}` with N an argument's index becomes that
    /// argument, written once (an argument's own text is never filled in turn); any other
    /// brace stays as written.
    fn fill(&self, key: &str, args: &[&dyn Display]) -> String {
        let text = self.t(key);
        let mut out = String::with_capacity(text.len() + 8 * args.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let place = after.find('}').and_then(|close| Some((close, after[..close].parse::<usize>().ok()?)));
            match place.and_then(|(close, i)| Some((close, args.get(i)?))) {
                Some((close, arg)) => {
                    let _ = write!(out, "{arg}");
                    rest = &after[close + 1..];
                }
                None => {
                    out.push('{');
                    rest = after;
                }
            }
        }
        out.push_str(rest);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_chinese_message_has_an_english_one_and_back() {
        let zh = keys(Locale::Zh);
        let en = keys(Locale::En);
        let missing_en: Vec<&String> = zh.iter().filter(|k| !en.contains(k)).collect();
        let missing_zh: Vec<&String> = en.iter().filter(|k| !zh.contains(k)).collect();
        assert!(missing_en.is_empty(), "no English for {missing_en:?}");
        assert!(missing_zh.is_empty(), "no Chinese for {missing_zh:?}");
        assert!(!zh.is_empty());
    }

    #[test]
    fn accept_language_picks_the_first_language_spoken() {
        assert_eq!(Locale::from_accept_language("en-US,en;q=0.9"), Some(Locale::En));
        assert_eq!(Locale::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"), Some(Locale::Zh));
        assert_eq!(Locale::from_accept_language("fr-FR,en;q=0.5"), Some(Locale::En));
        assert_eq!(Locale::from_accept_language("fr-FR"), None);
    }

    #[test]
    fn arguments_fill_their_places() {
        let t = Tr::new(Locale::Zh);
        assert_eq!(t.f1("missing.key {0}", 1), "missing.key 1");
        assert_eq!(t.f2("missing.key {1} {0} {0} {2} {x} {", "a", "b"), "missing.key b a a {2} {x} {");
    }

    #[test]
    fn an_argument_is_written_as_it_is_never_filled_in_turn() {
        let t = Tr::new(Locale::Zh);
        assert_eq!(t.f2("missing.key {0}/{1}", "{1}", 2), "missing.key {1}/2");
    }
}
