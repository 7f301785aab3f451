//! The recordings page's search as typed: the one search box (`q`, a number in any form or
//! note text) and the filter panel (dates, From, To, user, direction, minimum duration,
//! notes, hold). It becomes the API's own [`SearchParams`] (so every filter is read, checked
//! and refused exactly as `GET /api/v1/recordings` does it), and it writes itself back into
//! the page's links (the next page, the ZIP of the search) so a filter is never lost on the
//! way.

use super::session::q_is_number;
use crate::error::ApiError;
use crate::models::{QueryParams, SearchParams};

/// The fields of the form, as typed (trimmed), in the order the page's links carry them.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct SearchForm {
    /// A number (either party, any form) or text in notes.
    pub q: String,
    /// The calling party, in any form.
    pub from: String,
    /// The called party, in any form.
    pub to: String,
    /// The owner's extension (admins only: a user sees only their own recordings anyway).
    pub user: String,
    /// `inbound`, `outbound`, `internal`, or "" for any.
    pub direction: String,
    /// At least this many seconds of audio.
    pub min_duration: String,
    /// `true` (with notes), `false` (without), or "" for either.
    pub has_notes: String,
    /// `true` (on hold), `false` (not), or "" for either.
    pub hold: String,
    /// A day (`YYYY-MM-DD`, in the site's zone) or an RFC 3339 time.
    pub since: String,
    /// A day (which includes that whole day) or an RFC 3339 time.
    pub until: String,
    /// The previous page's cursor.
    pub cursor: String,
}

impl SearchForm {
    /// Read the form from a query string's pairs. Unknown names are ignored (a bookmark of
    /// an older page still opens); the `user` filter is an admin's only, so a user's is
    /// dropped rather than kept in their links.
    pub fn from_pairs(pairs: Vec<(String, String)>, admin: bool) -> SearchForm {
        let mut f = SearchForm::default();
        for (name, value) in pairs {
            let value = value.trim().to_owned();
            let field = match name.as_str() {
                "q" => &mut f.q,
                "from" => &mut f.from,
                "to" => &mut f.to,
                "user" if admin => &mut f.user,
                "direction" => &mut f.direction,
                "min_duration" => &mut f.min_duration,
                "has_notes" => &mut f.has_notes,
                "hold" => &mut f.hold,
                "since" => &mut f.since,
                "until" => &mut f.until,
                "cursor" => &mut f.cursor,
                _ => continue,
            };
            *field = value;
        }
        f
    }

    /// Each field with its name, in link order; `q` under its own name (the link carries
    /// what was typed, not how it was read).
    fn pairs(&self) -> [(&'static str, &str); 11] {
        [
            ("q", &self.q),
            ("from", &self.from),
            ("to", &self.to),
            ("user", &self.user),
            ("direction", &self.direction),
            ("min_duration", &self.min_duration),
            ("has_notes", &self.has_notes),
            ("hold", &self.hold),
            ("since", &self.since),
            ("until", &self.until),
            ("cursor", &self.cursor),
        ]
    }

    /// The API's search parameters for this form: `q` is a number (`number`: either party,
    /// any form) or note text (`q`); every other field is the API parameter of the same
    /// name, checked by [`SearchParams::parse`].
    pub fn to_params(&self) -> Result<SearchParams, ApiError> {
        let pairs = self
            .pairs()
            .into_iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(name, value)| {
                let name = if name == "q" && q_is_number(value) {
                    "number"
                } else {
                    name
                };
                (name.to_owned(), value.to_owned())
            })
            .collect();
        SearchParams::parse(QueryParams::new(pairs)?)
    }

    /// Whether anything narrows the search (the box or any filter).
    pub fn searched(&self) -> bool {
        self.pairs()
            .iter()
            .any(|(name, v)| *name != "cursor" && !v.is_empty())
    }

    /// Whether a filter of the panel (not the search box) is set, so the panel opens.
    pub fn filtered(&self) -> bool {
        self.pairs()
            .iter()
            .any(|(name, v)| !matches!(*name, "q" | "cursor") && !v.is_empty())
    }

    /// The query string of this search's page at `cursor` ("" for the first page).
    pub fn page_query(&self, cursor: &str) -> String {
        let pairs: Vec<(&str, &str)> = self
            .pairs()
            .into_iter()
            .map(|(name, v)| {
                if name == "cursor" {
                    (name, cursor)
                } else {
                    (name, v)
                }
            })
            .filter(|(_, v)| !v.is_empty())
            .collect();
        serde_urlencoded::to_string(pairs).unwrap_or_default()
    }

    /// The query string of this search's ZIP (every match: no cursor).
    pub fn zip_query(&self) -> String {
        self.page_query("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use callrec_model::Direction;

    fn pairs(q: &str) -> Vec<(String, String)> {
        serde_urlencoded::from_str(q).unwrap()
    }

    #[test]
    fn every_filter_becomes_the_api_parameter_of_the_same_name() {
        let f = SearchForm::from_pairs(
            pairs(
                "q=%2B44+1234+567890&from=1001&to=02079460000&user=1002&direction=inbound\
                 &min_duration=2.5&has_notes=true&hold=false&since=2024-05-01&until=2024-05-02",
            ),
            true,
        );
        let p = f.to_params().unwrap();
        assert_eq!(p.number.as_deref(), Some("+44 1234 567890"));
        assert_eq!(p.q, None);
        assert_eq!(p.from.as_deref(), Some("1001"));
        assert_eq!(p.to.as_deref(), Some("02079460000"));
        assert_eq!(p.user.as_deref(), Some("1002"));
        assert_eq!(p.direction, Some(Direction::Inbound));
        assert_eq!(p.min_duration_ms, Some(2500));
        assert_eq!(p.has_notes, Some(true));
        assert_eq!(p.hold, Some(false));
        assert!(p.since.is_some() && p.until.is_some());
        assert!(f.searched() && f.filtered());
    }

    #[test]
    fn words_in_the_box_search_the_notes() {
        let f = SearchForm::from_pairs(pairs("q=called+back"), false);
        assert_eq!(f.to_params().unwrap().q.as_deref(), Some("called back"));
        assert!(f.searched() && !f.filtered());
    }

    #[test]
    fn a_users_user_filter_is_dropped_and_an_admins_kept() {
        let q = pairs("user=1002&hold=true");
        assert_eq!(SearchForm::from_pairs(q.clone(), false).user, "");
        assert_eq!(SearchForm::from_pairs(q, true).user, "1002");
    }

    #[test]
    fn the_links_carry_every_filter_and_read_back_the_same() {
        let typed = "q=refund&from=%2B441234567890&user=1002&direction=outbound&min_duration=30\
                     &has_notes=false&hold=true&since=2024-05-01&until=2024-05-31";
        let f = SearchForm::from_pairs(pairs(typed), true);
        let next = f.page_query("abc");
        let again = SearchForm::from_pairs(pairs(&next), true);
        assert_eq!(again.cursor, "abc");
        assert_eq!(
            SearchForm {
                cursor: String::new(),
                ..again
            },
            f
        );
        assert_eq!(f.zip_query(), typed);
        assert!(!f.zip_query().contains("cursor"));
        // An empty form: no query at all.
        assert_eq!(SearchForm::default().zip_query(), "");
    }

    #[test]
    fn a_bad_filter_is_refused_by_its_name() {
        for (name, value) in [
            ("direction", "sideways"),
            ("min_duration", "-3"),
            ("has_notes", "perhaps"),
            ("hold", "2"),
            ("until", "tomorrow"),
        ] {
            let f = SearchForm::from_pairs(vec![(name.into(), value.into())], true);
            let e = f.to_params().unwrap_err();
            assert_eq!(e.status, warp::http::StatusCode::BAD_REQUEST);
            assert!(e.message.contains(name), "{name}: {}", e.message);
        }
    }
}
