//! Who is asking: the session cookie and the store's session behind it, the sign-in form's
//! own cookie, CSRF checks, and the client's address. The decisions (is this token right,
//! what does this cookie say, is this search text a number) are plain functions.

use std::collections::HashMap;

use callrec_store::{SessionUser, well_formed_secret};
use rand::RngCore;
use warp::Filter;
use warp::http::HeaderValue;
use warp::reject::Rejection;

use crate::error::{ApiError, reject};
use crate::filters::with_state;
use crate::state::ApiState;

/// The session cookie: the session's secret (the store keeps only its hash).
pub const SESSION_COOKIE: &str = "callrec_session";
/// The sign-in form's cookie: a random token the form must repeat, so another site cannot
/// sign a browser in to an account of its choosing (login CSRF). There is no session yet to
/// hold a CSRF token.
pub const SIGNIN_COOKIE: &str = "callrec_signin";

/// A signed-in person and their session's secret (to sign out).
#[derive(Clone)]
pub(crate) struct Signed {
    pub user: SessionUser,
    pub secret: String,
}

/// The live session named by the request's cookie, if any (a missing, malformed, unknown,
/// revoked or expired one is `None`). Using a session keeps it alive.
pub(crate) fn signed_in(
    state: ApiState,
) -> impl Filter<Extract = (Option<Signed>,), Error = Rejection> + Clone {
    warp::cookie::optional::<String>(SESSION_COOKIE)
        .and(with_state(state))
        .and_then(|cookie: Option<String>, state: ApiState| async move {
            let Some(secret) = cookie.filter(|c| well_formed_secret(c)) else {
                return Ok::<_, Rejection>(None);
            };
            let policy = state.config().portal.policy.clone();
            let user = state
                .store()
                .session(secret.clone(), policy)
                .await
                .map_err(reject)?;
            Ok(user.map(|user| Signed { user, secret }))
        })
}

/// The client's address, for the sign-in throttle and the audit log: the connection's peer
/// (see [`crate::server::ClientAddr`]), or, when the peer is a trusted reverse proxy, the client it names in
/// `X-Forwarded-For` ([`crate::forwarded`]); `unknown` when the server did not record a peer.
pub(crate) fn client_address(
    state: &ApiState,
) -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone + use<> {
    crate::forwarded::client_ip(state.config().trusted_proxies.clone()).map(
        |ip: Option<std::net::IpAddr>| ip.map_or_else(|| "unknown".to_owned(), |ip| ip.to_string()),
    )
}

/// Where the request is (path and query), to come back to after signing in.
pub(crate) fn here() -> impl Filter<Extract = (String,), Error = Rejection> + Clone {
    warp::path::full()
        .and(warp::query::raw().or_else(|_| async { Ok::<(String,), Rejection>((String::new(),)) }))
        .map(|path: warp::path::FullPath, query: String| {
            if query.is_empty() {
                path.as_str().to_owned()
            } else {
                format!("{}?{query}", path.as_str())
            }
        })
}

/// Where a sign-in may send the browser afterwards: a path of this site only (`/…`, never
/// `//host/…` or `/\host`, which browsers treat as another site), or nothing.
pub fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2048
        && !next.starts_with("/signin");
    ok.then_some(next)
}

/// A new random token (CSRF for the sign-in form).
pub(crate) fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether two tokens are equal, in time that does not depend on where they differ.
pub(crate) fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The `Set-Cookie` value that gives the browser a session.
pub(crate) fn session_cookie(secret: &str, secure: bool) -> String {
    // No Max-Age: the cookie ends with the browser, the session with the server's rules.
    format!(
        "{SESSION_COOKIE}={secret}; HttpOnly; SameSite=Strict; Path=/{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub(crate) fn clear_session_cookie(secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value for the sign-in form's token (an hour to fill the form in).
pub(crate) fn signin_cookie(token: &str, secure: bool) -> String {
    format!(
        "{SIGNIN_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/signin; Max-Age=3600{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes the sign-in form's cookie.
pub(crate) fn clear_signin_cookie(secure: bool) -> String {
    format!(
        "{SIGNIN_COOKIE}=; HttpOnly; SameSite=Strict; Path=/signin; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

/// A header value from a cookie string (ours are ASCII, so this cannot fail; an error is a
/// bug reported as a 500).
pub(crate) fn header_value(v: String) -> Result<HeaderValue, ApiError> {
    HeaderValue::try_from(v).map_err(|e| ApiError::internal(format!("bad cookie header: {e}")))
}

/// A decoded form: one value per field (a field given twice keeps the last).
#[derive(Debug, Default)]
pub(crate) struct Form(HashMap<String, String>);

impl Form {
    /// Decode an `application/x-www-form-urlencoded` body.
    pub fn parse(body: &[u8]) -> Result<Form, ApiError> {
        serde_urlencoded::from_bytes::<Vec<(String, String)>>(body)
            .map(|pairs| Form(pairs.into_iter().collect()))
            .map_err(|e| ApiError::bad_request(format!("the form cannot be read: {e}")))
    }

    /// A field, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(String::as_str).unwrap_or("")
    }

    /// Whether the form has the field at all (empty or not).
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

/// Refuse a form that does not carry the session's CSRF token.
pub(crate) fn check_csrf(user: &SessionUser, form: &Form) -> Result<(), ApiError> {
    if user.csrf_matches(form.get("csrf")) {
        Ok(())
    } else {
        Err(ApiError::forbidden(
            "this form did not come from your portal session (it may have expired): reload \
             the page and try again",
        ))
    }
}

/// Whether the portal's one search box holds a number (search both parties, any form) rather
/// than note text: digits, with only the punctuation people type in numbers.
pub fn q_is_number(q: &str) -> bool {
    let q = q.trim();
    q.chars().any(|c| c.is_ascii_digit())
        && q.chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '-' | '(' | ')' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_in_any_form_are_numbers_and_words_are_note_text() {
        for n in ["01234567890", "+44 1234 567890", "(01234) 567-890", "1001"] {
            assert!(q_is_number(n), "{n}");
        }
        for t in ["called back", "ref 1234", "", "+", "12ab"] {
            assert!(!q_is_number(t), "{t}");
        }
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_when_asked() {
        let c = session_cookie("abc", false);
        assert_eq!(c, "callrec_session=abc; HttpOnly; SameSite=Strict; Path=/");
        assert!(session_cookie("abc", true).ends_with("; Secure"));
        assert!(clear_session_cookie(false).contains("Max-Age=0"));
        assert!(signin_cookie("t", false).contains("Path=/signin"));
    }

    #[test]
    fn after_sign_in_the_browser_goes_only_to_a_page_of_this_site() {
        assert_eq!(
            safe_next("/recordings/abc?x=1"),
            Some("/recordings/abc?x=1")
        );
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example",
            "evil",
            "",
            "/signin",
            "/a\nb",
        ] {
            assert_eq!(safe_next(bad), None, "{bad}");
        }
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same_token("abc", "abc"));
        assert!(!same_token("abc", "abd"));
        assert!(!same_token("abc", ""));
    }

    #[test]
    fn a_form_keeps_one_value_per_field() {
        let f = Form::parse(b"csrf=a%20b&text=%3Cscript%3E&text=last").unwrap();
        assert_eq!(f.get("csrf"), "a b");
        assert_eq!(f.get("text"), "last");
        assert_eq!(f.get("missing"), "");
    }
}
