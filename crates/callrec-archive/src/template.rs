//! File names of archived recordings: a template such as the default
//! `{started:%Y/%m/%d}/{started:%Y%m%d%H%M%S}-{from}-{to}-{user}-{id}.{ext}` rendered with a
//! recording's metadata in the site's time zone.
//!
//! # Syntax
//!
//! Text is copied as it is; `{field}` or `{field:FORMAT}` is replaced; `{{` and `}}` are
//! literal braces; `/` separates folders (on every platform). Fields:
//!
//! | field | value |
//! | --- | --- |
//! | `started` | when recording started, in the site's time zone, as FORMAT (a strftime format, default `%Y%m%d%H%M%S`) |
//! | `date` | the same instant, default FORMAT `%Y-%m-%d` |
//! | `from`, `to` | the parties as the switch presented them, digits only (`anonymous` when none) |
//! | `user` | the owner's extension |
//! | `site` | the owner's site |
//! | `direction` | `inbound`, `outbound` or `internal` |
//! | `id` | the recording's id (required: it keeps every name unique) |
//! | `short_id` | the id's last six hex digits |
//! | `ext` | the audio format, e.g. `wav` |
//!
//! A template is checked when it is parsed: unknown fields, a FORMAT on a field that takes
//! none, a FORMAT chrono cannot render, an absolute path, `.` or `..` folders and a missing
//! `{id}` are refused with the reason. Values are sanitised when rendered: a value never adds
//! a folder (`/` and `\` in it become `_`), and characters Windows refuses in names
//! (`<>:"|?*`, control characters) become `_`, so an archive copies between systems.

use std::fmt;

use chrono::format::{Item, StrftimeItems};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;

/// The default template: the seed convention (SPEC §1) in date folders.
pub const DEFAULT_TEMPLATE: &str =
    "{started:%Y/%m/%d}/{started:%Y%m%d%H%M%S}-{from}-{to}-{user}-{id}.{ext}";

/// What a template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Started,
    Date,
    From,
    To,
    User,
    Site,
    Direction,
    Id,
    ShortId,
    Ext,
}

impl Field {
    fn parse(name: &str) -> Option<Field> {
        Some(match name {
            "started" => Field::Started,
            "date" => Field::Date,
            "from" => Field::From,
            "to" => Field::To,
            "user" => Field::User,
            "site" => Field::Site,
            "direction" => Field::Direction,
            "id" => Field::Id,
            "short_id" => Field::ShortId,
            "ext" => Field::Ext,
            _ => return None,
        })
    }

    fn default_format(self) -> Option<&'static str> {
        match self {
            Field::Started => Some("%Y%m%d%H%M%S"),
            Field::Date => Some("%Y-%m-%d"),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Value(Field),
    Time(String),
}

/// A checked name template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameTemplate {
    source: String,
    parts: Vec<Part>,
}

/// Why a template was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("name template `{template}`: {reason}")]
pub struct TemplateError {
    template: String,
    reason: String,
}

/// What a template is rendered from: the metadata of one recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameFields<'a> {
    /// When recording started.
    pub started_at: DateTime<Utc>,
    /// The calling party as presented.
    pub from: &'a str,
    /// The called party as presented.
    pub to: &'a str,
    /// The owner's extension.
    pub user: &'a str,
    /// The owner's site.
    pub site: &'a str,
    /// `inbound`, `outbound` or `internal`.
    pub direction: &'a str,
    /// The recording's id.
    pub id: &'a str,
    /// The audio format.
    pub format: &'a str,
}

impl fmt::Display for NameTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl Default for NameTemplate {
    fn default() -> Self {
        match NameTemplate::parse(DEFAULT_TEMPLATE) {
            Ok(t) => t,
            // The default is checked by a unit test; this arm cannot be reached.
            Err(e) => unreachable!("the default template is valid: {e}"),
        }
    }
}

impl std::str::FromStr for NameTemplate {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        NameTemplate::parse(s)
    }
}

impl NameTemplate {
    /// Parse and check a template.
    pub fn parse(source: &str) -> Result<NameTemplate, TemplateError> {
        let fail = |reason: String| TemplateError {
            template: source.to_owned(),
            reason,
        };
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.chars().peekable();
        let mut has_id = false;
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => {
                    return Err(fail(
                        "a `}` without its `{` (write `}}` for a brace)".into(),
                    ));
                }
                '{' => {
                    let mut inner = String::new();
                    loop {
                        match chars.next() {
                            Some('}') => break,
                            Some(c) => inner.push(c),
                            None => return Err(fail(format!("`{{{inner}` is not closed"))),
                        }
                    }
                    let (name, format) = match inner.split_once(':') {
                        Some((n, f)) => (n.trim(), Some(f)),
                        None => (inner.trim(), None),
                    };
                    let field = Field::parse(name).ok_or_else(|| {
                        fail(format!(
                            "unknown field `{name}` (known: started, date, from, to, user, site, \
                             direction, id, short_id, ext)"
                        ))
                    })?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    has_id |= field == Field::Id;
                    match (field.default_format(), format) {
                        (Some(default), format) => {
                            let format = format.unwrap_or(default);
                            if format.is_empty()
                                || StrftimeItems::new(format).any(|i| matches!(i, Item::Error))
                            {
                                return Err(fail(format!(
                                    "`{format}` is not a strftime format (e.g. %Y%m%d%H%M%S)"
                                )));
                            }
                            parts.push(Part::Time(format.to_owned()));
                        }
                        (None, Some(_)) => {
                            return Err(fail(format!("field `{name}` takes no format")));
                        }
                        (None, None) => parts.push(Part::Value(field)),
                    }
                }
                c if c.is_control()
                    || matches!(c, '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*') =>
                {
                    return Err(fail(format!(
                        "`{}` is not allowed in a file name on every system",
                        c.escape_default()
                    )));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        if !has_id {
            return Err(fail(
                "it must contain {id}, so that no two recordings get the same name".into(),
            ));
        }
        if source.starts_with('/') {
            return Err(fail("it must be a relative path (no leading `/`)".into()));
        }
        if source.ends_with('/') {
            return Err(fail("it must end with a file name, not `/`".into()));
        }
        let template = NameTemplate {
            source: source.to_owned(),
            parts,
        };
        // Folders written in the template itself: none may be `.`, `..` or empty.
        if let Some(segment) = source
            .split('/')
            .find(|s| s.is_empty() || *s == "." || *s == "..")
        {
            return Err(fail(format!("the folder `{segment}` is not allowed")));
        }
        Ok(template)
    }

    /// The relative path of a recording: `/`-separated, every segment sanitised and checked.
    pub fn render(&self, fields: &NameFields<'_>, tz: Tz) -> Result<String, TemplateError> {
        let local = fields.started_at.with_timezone(&tz);
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Time(format) => {
                    let mut rendered = String::new();
                    use std::fmt::Write as _;
                    write!(rendered, "{}", local.format(format)).map_err(|_| TemplateError {
                        template: self.source.clone(),
                        reason: format!("`{format}` cannot render {local}"),
                    })?;
                    // A time format may make folders (`%Y/%m/%d`); nothing else may.
                    out.push_str(
                        &rendered
                            .split('/')
                            .map(sanitise)
                            .collect::<Vec<_>>()
                            .join("/"),
                    );
                }
                Part::Value(field) => {
                    let value = match field {
                        Field::From => party(fields.from),
                        Field::To => party(fields.to),
                        Field::User => fields.user.to_owned(),
                        Field::Site => fields.site.to_owned(),
                        Field::Direction => fields.direction.to_owned(),
                        Field::Id => fields.id.to_owned(),
                        Field::ShortId => fields
                            .id
                            .get(fields.id.len().saturating_sub(6)..)
                            .unwrap_or(fields.id)
                            .to_owned(),
                        Field::Ext => fields.format.to_owned(),
                        Field::Started | Field::Date => String::new(),
                    };
                    out.push_str(&sanitise(&value.replace('/', "_")));
                }
            }
        }
        let bad = |reason: String| TemplateError {
            template: self.source.clone(),
            reason: format!("renders `{out}` for recording {}: {reason}", fields.id),
        };
        for segment in out.split('/') {
            let trimmed = segment.trim_end_matches(['.', ' ']);
            if trimmed.is_empty() || segment == "." || segment == ".." {
                return Err(bad(format!(
                    "the path segment `{segment}` is empty or a dot"
                )));
            }
            if segment.len() > 255 {
                return Err(bad("a path segment is longer than 255 bytes".into()));
            }
            if segment.starts_with(crate::state::STATE_DIR) {
                return Err(bad(format!(
                    "`{}` is the archive's own folder",
                    crate::state::STATE_DIR
                )));
            }
        }
        if out.ends_with(".part") || out.ends_with(".json") {
            return Err(bad(
                "a recording's name may not end in .part or .json (the client's own files)".into(),
            ));
        }
        Ok(out)
    }
}

/// A party's number, digits only; `anonymous` when it has none.
fn party(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        "anonymous".to_owned()
    } else {
        digits
    }
}

/// A value made safe as (part of) one file name on every system.
fn sanitise(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '\\' | '/' | '<' | '>' | ':' | '"' | '|' | '?' | '*') {
                '_'
            } else {
                c
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn fields() -> NameFields<'static> {
        NameFields {
            started_at: Utc.with_ymd_and_hms(2020, 11, 24, 16, 42, 49).unwrap(),
            from: "+44 2920 123123",
            to: "02077456456",
            user: "1001",
            site: "default",
            direction: "outbound",
            id: "0190f3a2-7b1c-7d2e-9f00-0123457f3a9c",
            format: "wav",
        }
    }

    #[test]
    fn the_default_follows_the_seed_convention_in_date_folders_of_the_site_time_zone() {
        let t = NameTemplate::default();
        assert_eq!(
            t.render(&fields(), Tz::UTC).unwrap(),
            "2020/11/24/20201124164249-442920123123-02077456456-1001-\
             0190f3a2-7b1c-7d2e-9f00-0123457f3a9c.wav"
        );
        // 23:30 UTC on the 24th is the 25th in Tokyo: folder and name follow the site.
        let mut late = fields();
        late.started_at = Utc.with_ymd_and_hms(2020, 11, 24, 23, 30, 0).unwrap();
        let name = t.render(&late, Tz::Asia__Tokyo).unwrap();
        assert!(name.starts_with("2020/11/25/20201125083000-"), "{name}");
    }

    #[test]
    fn values_never_add_folders_or_characters_other_systems_refuse() {
        let t = NameTemplate::parse("{user}/{site}-{direction}-{short_id}-{id}.{ext}").unwrap();
        let mut f = fields();
        f.user = "../../etc";
        f.site = "a:b*c";
        f.format = "w/a\\v";
        let name = t.render(&f, Tz::UTC).unwrap();
        assert_eq!(name.split('/').count(), 2, "{name}");
        assert!(
            name.starts_with(".._.._etc/a_b_c-outbound-7f3a9c-"),
            "{name}"
        );
        assert!(name.ends_with(".w_a_v"), "{name}");
        // A party with no digits at all.
        let mut anon = fields();
        anon.from = "anonymous caller";
        assert!(
            NameTemplate::default()
                .render(&anon, Tz::UTC)
                .unwrap()
                .contains("-anonymous-")
        );
    }

    #[test]
    fn a_user_named_dot_dot_cannot_climb_out() {
        let t = NameTemplate::parse("{user}/{id}").unwrap();
        let mut f = fields();
        f.user = "..";
        let e = t.render(&f, Tz::UTC).unwrap_err();
        assert!(e.to_string().contains("empty or a dot"), "{e}");
    }

    #[test]
    fn bad_templates_are_refused_with_the_reason() {
        for (template, reason) in [
            ("{started}-{from}.wav", "must contain {id}"),
            ("{id}-{nope}", "unknown field `nope`"),
            ("{id}-{from:%Y}", "takes no format"),
            ("{id}-{started:%Q}", "not a strftime format"),
            ("{id", "not closed"),
            ("{id}}", "without its"),
            ("/abs/{id}", "relative path"),
            ("a/../{id}", "folder `..`"),
            ("a//{id}", "folder ``"),
            ("{id}/", "end with a file name"),
            ("{id}:x", "not allowed in a file name"),
        ] {
            let e = NameTemplate::parse(template).unwrap_err().to_string();
            assert!(e.contains(reason), "{template}: {e}");
        }
        assert!(NameTemplate::parse("{{literal}}-{id}").is_ok());
    }

    #[test]
    fn names_that_would_clash_with_the_clients_own_files_are_refused() {
        let t = NameTemplate::parse("{id}.part").unwrap();
        assert!(t.render(&fields(), Tz::UTC).is_err());
        let t = NameTemplate::parse(".callrec-archive/{id}").unwrap();
        assert!(t.render(&fields(), Tz::UTC).is_err());
    }
}
