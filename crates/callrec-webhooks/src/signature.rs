//! The signature of an event: `X-Callrec-Signature: t=<unix seconds>,v1=<hex>`, where the hex
//! is HMAC-SHA256 under the endpoint's secret of the bytes `<t>.<body>`. Signing the time
//! with the body lets a receiver refuse a replayed request: the README's check accepts a `t`
//! within [`REPLAY_WINDOW_SECS`] of its own clock.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How far from the receiver's clock a signature's time may be, as the README's verification
/// snippet checks it.
pub const REPLAY_WINDOW_SECS: i64 = 300;

/// The header's name.
pub const HEADER: &str = "X-Callrec-Signature";

/// HMAC-SHA256 of `<t>.<body>` under `secret`, before finalising.
fn mac(secret: &[u8], t: i64, body: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts a key of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The hex HMAC-SHA256 of `<t>.<body>` under `secret`.
pub fn hmac_hex(secret: &[u8], t: i64, body: &[u8]) -> String {
    hex::encode(mac(secret, t, body).finalize().into_bytes())
}

/// The header's value for `body` sent at `t` (unix seconds).
pub fn header_value(secret: &[u8], t: i64, body: &[u8]) -> String {
    format!("t={t},v1={}", hmac_hex(secret, t, body))
}

/// Whether `header` signs `body` under `secret` at a time within [`REPLAY_WINDOW_SECS`] of
/// `now` (unix seconds). What a receiver written in Rust would run.
pub fn verify(secret: &[u8], header: &str, body: &[u8], now: i64) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = hex::decode(value).ok(),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (now - t).abs() > REPLAY_WINDOW_SECS {
        return false;
    }
    // Constant time.
    mac(secret, t, body).verify_slice(&v1).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_known_answer_computed_by_pythons_hmac() {
        // python3 -c "import hmac, hashlib; print(hmac.new(b'Jefe',
        //   b'1700000000.what do ya want for nothing?', hashlib.sha256).hexdigest())"
        assert_eq!(
            header_value(b"Jefe", 1_700_000_000, b"what do ya want for nothing?"),
            "t=1700000000,v1=1cdd0650c8be1cb0974b1788d458b1e781206cfef59b85faafc582d2e182c57e"
        );
    }

    #[test]
    fn a_signature_verifies_and_a_changed_byte_or_an_old_time_does_not() {
        let (key, body, t) = (&b"s3cret-s3cret-s3"[..], &b"{\"a\":1}"[..], 1_700_000_000);
        let header = header_value(key, t, body);
        assert!(verify(key, &header, body, t + 10));
        // Another body, another key, a time out of the window, no signature at all.
        assert!(!verify(key, &header, b"{\"a\":2}", t + 10));
        assert!(!verify(b"another-secret!!", &header, body, t + 10));
        assert!(!verify(key, &header, body, t + REPLAY_WINDOW_SECS + 1));
        assert!(!verify(key, "t=x,v1=00", body, t));
    }
}
