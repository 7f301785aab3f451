//! The portal as a browser meets it, for the portal's tests: a password for a person, the
//! sign-in form filled in from an address, the session cookie, pages fetched and forms posted
//! with it, and what the replies say (headers, cookies, body, the CSRF token of a page).

use std::net::SocketAddr;

use bytes::Bytes;
use callrec_api::server::ClientAddr;
use warp::http::Response;

use super::{Person, World};

/// The password the tests give people.
pub const PASSWORD: &str = "correct horse battery";

pub fn set_password(w: &World, who: &Person) {
    let (site, ext) = (who.user.site.clone(), who.user.extension.clone());
    w.store
        .write_blocking(|s| s.set_password(&site, &ext, PASSWORD, "test"))
        .unwrap();
}

pub fn header<'a>(r: &'a Response<Bytes>, name: &str) -> Option<&'a str> {
    r.headers().get(name).map(|v| v.to_str().unwrap())
}

pub fn cookies(r: &Response<Bytes>) -> Vec<String> {
    r.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

/// The value a `Set-Cookie` of the reply gives `name`.
pub fn cookie_value(r: &Response<Bytes>, name: &str) -> Option<String> {
    cookies(r).iter().find_map(|c| {
        let (pair, _) = c.split_once(';').unwrap_or((c, ""));
        let (n, v) = pair.split_once('=')?;
        (n == name).then(|| v.to_owned())
    })
}

pub fn body(r: &Response<Bytes>) -> String {
    String::from_utf8_lossy(r.body()).into_owned()
}

/// The CSRF token of the first form on a page.
pub fn csrf_of(html: &str) -> String {
    let at = html
        .find("name=\"csrf\" value=\"")
        .expect("a form with a csrf field");
    let rest = &html[at + "name=\"csrf\" value=\"".len()..];
    rest[..rest.find('"').unwrap()].to_owned()
}

pub fn addr(last: u8) -> ClientAddr {
    ClientAddr(SocketAddr::from(([192, 0, 2, last], 40000)))
}

pub fn form(fields: &[(&str, &str)]) -> String {
    serde_urlencoded::to_string(fields).unwrap()
}

/// Open the sign-in page and post the form, as a browser does, from address `from`.
pub async fn sign_in_from(w: &World, account: &str, password: &str, from: u8) -> Response<Bytes> {
    sign_in_via(w, account, password, addr(from), None).await
}

/// Sign in on a connection from `peer`, with an `X-Forwarded-For` header if given (a
/// reverse proxy's, or one a client made up).
pub async fn sign_in_via(
    w: &World,
    account: &str,
    password: &str,
    peer: ClientAddr,
    forwarded_for: Option<&str>,
) -> Response<Bytes> {
    let page = w.send(w.anon("GET", "/signin")).await;
    assert_eq!(page.status(), 200);
    let token = cookie_value(&page, "callrec_signin").expect("the form's cookie");
    assert_eq!(csrf_of(&body(&page)), token);
    let mut post = w
        .anon("POST", "/signin")
        .header("cookie", format!("callrec_signin={token}"))
        .header("content-type", "application/x-www-form-urlencoded")
        .extension(peer);
    if let Some(xff) = forwarded_for {
        post = post.header("x-forwarded-for", xff);
    }
    w.send(post.body(form(&[
        ("csrf", &token),
        ("account", account),
        ("password", password),
    ])))
    .await
}

/// Sign in and return the session cookie's value.
pub async fn session(w: &World, who: &Person) -> String {
    let r = sign_in_from(w, &who.user.extension, PASSWORD, 1).await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    cookie_value(&r, "callrec_session").expect("a session cookie")
}

pub async fn get(w: &World, cookie: &str, path: &str) -> Response<Bytes> {
    w.send(
        w.anon("GET", path)
            .header("cookie", format!("callrec_session={cookie}")),
    )
    .await
}

pub async fn post(w: &World, cookie: &str, path: &str, fields: &[(&str, &str)]) -> Response<Bytes> {
    w.send(
        w.anon("POST", path)
            .header("cookie", format!("callrec_session={cookie}"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields)),
    )
    .await
}

/// Sign in as the admin of site `default` (extension 9000, also an admin of `other`).
pub async fn admin_session(w: &World) -> String {
    let r = sign_in_from(w, "9000@default", PASSWORD, 1).await;
    assert_eq!(r.status(), 303, "{}", body(&r));
    cookie_value(&r, "callrec_session").expect("a session cookie")
}
