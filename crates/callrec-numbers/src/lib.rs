//! Phone numbers in one form (SPEC §1.1).
//!
//! The switch presents the same party as `01234567890`, `441234567890` or `+441234567890`,
//! and people type `(01234) 567890`. Every number is stored raw and normalised to E.164 with
//! the site's country code and national prefix, and every number a user searches for is
//! normalised the same way, so any form finds the same recordings.
//!
//! Normalisation does not depend on the numbering database knowing the number: the database
//! (`phonenumber`) has the final say on numbers it recognises, but everything it needs is
//! first put in plain international form by a rule that only uses the site's plan — strip
//! the formatting, `00` (or North America's `011`) → `+`, a trunk prefix written in brackets
//! after the country code (`+44 (0)1632 960001`, the usual UK way) dropped, the national
//! prefix → `+CC`. So a number in a range the database does not list (new ranges, Ofcom's
//! drama numbers such as `01632 960001`) still reaches one form whichever way it was written.
//!
//! The rule for what is *not* a public number: a string of at most
//! [`EXTENSION_MAX_DIGITS`] digits with no `+` is an internal extension (`1001`, `200`) and is
//! kept exactly as it is. Anything that is not made of digits and the usual punctuation
//! (`anonymous`, `*48`, a SIP URI) is kept as given, trimmed: it is not a number, and
//! inventing one would make it match the wrong calls.
//!
//! Its own crate so the configuration can check a number plan with the same rules as the
//! store without depending on the store (and SQLite).

#![deny(missing_docs)]

use std::borrow::Cow;

/// Numbers of this many digits or fewer, without a leading `+`, are internal extensions.
pub const EXTENSION_MAX_DIGITS: usize = 6;

/// How a site's local numbers are written: the inputs of normalisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberPlan {
    /// The country calling code, e.g. `44`.
    pub country_code: u16,
    /// The trunk prefix that starts national numbers, e.g. `0`; may be empty.
    pub national_prefix: String,
}

impl Default for NumberPlan {
    fn default() -> Self {
        NumberPlan {
            country_code: 44,
            national_prefix: "0".to_owned(),
        }
    }
}

/// A number plan that cannot be used: which key, what was given, why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {key} `{value}`: {reason}")]
pub struct BadPlan {
    /// The setting at fault: `country_code` or `national_prefix`.
    pub key: &'static str,
    /// What was given.
    pub value: String,
    /// Why it cannot be used.
    pub reason: &'static str,
}

impl NumberPlan {
    /// Check that the country code is one the numbering database knows and that the national
    /// prefix is a few digits.
    pub fn validate(&self) -> Result<(), BadPlan> {
        if phonenumber::metadata::DATABASE
            .by_code(&self.country_code)
            .is_none()
        {
            return Err(BadPlan {
                key: "country_code",
                value: self.country_code.to_string(),
                reason: "not a country calling code",
            });
        }
        if self.national_prefix.len() > 4
            || !self.national_prefix.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(BadPlan {
                key: "national_prefix",
                value: self.national_prefix.clone(),
                reason: "expected at most 4 digits (may be empty)",
            });
        }
        Ok(())
    }
}

/// Whether `s`, as given, is an internal extension rather than a public number.
pub fn is_extension(s: &str) -> bool {
    let s = s.trim();
    !s.is_empty() && s.len() <= EXTENSION_MAX_DIGITS && s.bytes().all(|b| b.is_ascii_digit())
}

/// The normalised form of `raw` under `plan`: E.164 with a leading `+` for public numbers,
/// unchanged for extensions and for things that are not numbers.
pub fn normalise(raw: &str, plan: &NumberPlan) -> String {
    let trimmed = raw.trim();
    let unbracketed = drop_bracketed_trunk_prefix(trimmed, plan);
    let Some((plus, digits)) = split_number(&unbracketed) else {
        return trimmed.to_owned();
    };
    if !plus && digits.len() <= EXTENSION_MAX_DIGITS {
        return digits;
    }
    let cc = plan.country_code.to_string();
    let np = plan.national_prefix.as_str();
    let international = if plus {
        format!("+{digits}")
    } else if let Some(rest) = digits.strip_prefix("00") {
        // The international call prefix of most of the world.
        format!("+{rest}")
    } else if let (1, Some(rest)) = (plan.country_code, digits.strip_prefix("011")) {
        // North America's.
        format!("+{rest}")
    } else if let Some(rest) = digits.strip_prefix(np).filter(|_| !np.is_empty()) {
        format!("+{cc}{rest}")
    } else if digits.starts_with(&cc) && digits.len() > cc.len() + EXTENSION_MAX_DIGITS {
        // Already international, presented without the `+` (as many trunks do).
        format!("+{digits}")
    } else {
        format!("+{cc}{digits}")
    };
    match phonenumber::parse(None, &international) {
        Ok(number) => number.format().mode(phonenumber::Mode::E164).to_string(),
        // Not a number the database recognises; keep the plain international form so equal
        // inputs still meet.
        Err(_) => international,
    }
}

/// `s` without a trunk prefix written in brackets right after an international country code:
/// `+44 (0)1632 960001` → `+44 1632 960001`, `0044(0)20 7946 0000` → `0044 20 7946 0000`.
///
/// The bracketed digits are only dropped when they are that country's trunk prefix (the
/// site's own `national_prefix` for the site's country, the numbering database's for any
/// other); anything else in brackets is part of the number (`+1 (212) 555-1234`) and stays.
/// A country with no trunk prefix (Italy) keeps its digits: its leading `0` is dialled.
fn drop_bracketed_trunk_prefix<'a>(s: &'a str, plan: &NumberPlan) -> Cow<'a, str> {
    let Some((head, rest)) = s.split_once('(') else {
        return Cow::Borrowed(s);
    };
    let Some((inner, tail)) = rest.split_once(')') else {
        return Cow::Borrowed(s);
    };
    let Some((plus, head_digits)) = split_number(head) else {
        return Cow::Borrowed(s);
    };
    let country = if plus {
        head_digits.as_str()
    } else if let Some(cc) = head_digits.strip_prefix("00") {
        cc
    } else if let (1, Some(cc)) = (plan.country_code, head_digits.strip_prefix("011")) {
        cc
    } else {
        // No international prefix: the brackets are an area code, `(01234) 567890`.
        return Cow::Borrowed(s);
    };
    let Some(code) = country
        .parse::<u16>()
        .ok()
        .filter(|_| (1..=3).contains(&country.len()))
    else {
        return Cow::Borrowed(s);
    };
    let trunk = if code == plan.country_code {
        Some(plan.national_prefix.clone())
    } else {
        phonenumber::metadata::DATABASE
            .by_code(&code)
            .and_then(|regions| {
                regions
                    .iter()
                    .find_map(|m| m.national_prefix().map(str::to_owned))
            })
    };
    match trunk {
        Some(trunk) if !trunk.is_empty() && inner.trim() == trunk => {
            Cow::Owned(format!("{head} {tail}"))
        }
        _ => Cow::Borrowed(s),
    }
}

/// `raw` as the digits of a file name: every ASCII digit, in order, at most 32 of them; `0`
/// when there are none (an anonymous caller).
pub fn digits_for_file_name(raw: &str) -> String {
    let digits: String = raw.chars().filter(char::is_ascii_digit).take(32).collect();
    if digits.is_empty() {
        "0".to_owned()
    } else {
        digits
    }
}

/// Split a number as people write it into (has a leading `+`, its digits). `None` when it holds
/// anything but digits and the usual separators.
fn split_number(s: &str) -> Option<(bool, String)> {
    let (plus, body) = match s.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let mut digits = String::with_capacity(body.len());
    for c in body.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' | '/' | '\u{a0}' => {}
            _ => return None,
        }
    }
    if digits.is_empty() {
        None
    } else {
        Some((plus, digits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uk() -> NumberPlan {
        NumberPlan::default()
    }

    #[test]
    fn every_way_of_writing_a_uk_number_gives_one_form() {
        for raw in [
            "01234567890",
            "441234567890",
            "+441234567890",
            "(01234) 567890",
            "+44 (0)1234 567890",
            "0044 1234 567890",
            " 01234-567-890 ",
        ] {
            assert_eq!(normalise(raw, &uk()), "+441234567890", "for {raw:?}");
        }
    }

    #[test]
    fn a_bracketed_trunk_prefix_is_dropped_even_for_ranges_the_database_does_not_know() {
        // 01632 960xxx is Ofcom's drama range: the numbering database does not list it, so
        // only the plan-based rule can bring these forms together.
        for raw in [
            "01632 960001",
            "+44 (0)1632 960001",
            "+44(0)1632 960001",
            "+44 (0) 1632-960001",
            "0044 1632 960001",
            "0044 (0)1632 960001",
            "+44 1632 960001",
            "441632960001",
        ] {
            assert_eq!(normalise(raw, &uk()), "+441632960001", "for {raw:?}");
        }
        for raw in ["020 7946 0000", "+44(0)20 7946 0000", "+44 (0)20 7946 0000"] {
            assert_eq!(normalise(raw, &uk()), "+442079460000", "for {raw:?}");
        }
    }

    #[test]
    fn brackets_that_are_not_a_trunk_prefix_stay_part_of_the_number() {
        let us = NumberPlan {
            country_code: 1,
            national_prefix: "1".into(),
        };
        assert_eq!(normalise("+1 (212) 555-1234", &us), "+12125551234");
        assert_eq!(normalise("+1 (212) 555-1234", &uk()), "+12125551234");
        // Another country's trunk prefix comes from the numbering database.
        assert_eq!(normalise("+33 (0)1 23 45 67 89", &uk()), "+33123456789");
        // Italy has none: its leading 0 is dialled and kept.
        assert_eq!(normalise("+39 (0)6 1234 5678", &uk()), "+390612345678");
        // A site whose plan has a different trunk prefix only drops that one.
        let odd = NumberPlan {
            country_code: 44,
            national_prefix: "9".into(),
        };
        assert_eq!(normalise("+44 (9)1632 960001", &odd), "+441632960001");
        assert_eq!(normalise("+44 (0)1632 960001", &odd), "+4401632960001");
    }

    #[test]
    fn extensions_and_non_numbers_are_left_alone() {
        assert_eq!(normalise("1001", &uk()), "1001");
        assert_eq!(normalise("200", &uk()), "200");
        assert_eq!(normalise("anonymous", &uk()), "anonymous");
        assert_eq!(normalise("*48", &uk()), "*48");
        assert_eq!(normalise("", &uk()), "");
        // Brackets never turn an extension into a public number.
        assert_eq!(normalise("(1001)", &uk()), "1001");
        assert_eq!(normalise("123456", &uk()), "123456");
    }

    #[test]
    fn the_site_plan_decides_national_numbers() {
        let us = NumberPlan {
            country_code: 1,
            national_prefix: "1".into(),
        };
        assert_eq!(normalise("2125551234", &us), "+12125551234");
        assert_eq!(normalise("1 (212) 555-1234", &us), "+12125551234");
        assert_eq!(normalise("011 44 1234 567890", &us), "+441234567890");
        let it = NumberPlan {
            country_code: 39,
            national_prefix: String::new(),
        };
        // Italian numbers keep their leading zero after the country code.
        assert_eq!(normalise("0612345678", &it), "+390612345678");
    }

    #[test]
    fn file_names_get_digits_only() {
        assert_eq!(digits_for_file_name("+44 (20) 7745"), "44207745");
        assert_eq!(digits_for_file_name("anonymous"), "0");
    }

    #[test]
    fn plans_are_validated() {
        assert!(uk().validate().is_ok());
        let bad = NumberPlan {
            country_code: 999,
            national_prefix: "0".into(),
        };
        assert!(bad.validate().is_err());
        let bad_prefix = NumberPlan {
            country_code: 44,
            national_prefix: "x".into(),
        };
        assert!(bad_prefix.validate().is_err());
    }
}
