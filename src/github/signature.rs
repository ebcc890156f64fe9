//! Verifying that a webhook delivery comes from GitHub: `X-Hub-Signature-256` is
//! `sha256=<hex HMAC-SHA256 of the raw body, keyed with the webhook secret>`.

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Whether `header` is the right signature of `body`. The comparison runs in constant
/// time (`Mac::verify_slice`), so timing does not tell an attacker how much matched.
pub fn verify(secret: &[u8], body: &[u8], header: Option<&str>) -> bool {
    let Some(hex_digest) = header.and_then(|h| h.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_digest) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// The header value GitHub would send for `body` (used by tests and tools).
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The test vector of GitHub's "Validating webhook deliveries" page.
    const SECRET: &[u8] = b"It's a Secret to Everybody";
    const BODY: &[u8] = b"Hello, World!";
    const SIGNATURE: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn signs_like_github() {
        assert_eq!(sign(SECRET, BODY), SIGNATURE);
    }

    #[test]
    fn accepts_githubs_test_vector() {
        assert!(verify(SECRET, BODY, Some(SIGNATURE)));
    }

    #[test]
    fn refuses_wrong_missing_or_malformed_signatures() {
        assert!(!verify(SECRET, b"Hello, World?", Some(SIGNATURE)));
        assert!(!verify(b"another secret", BODY, Some(SIGNATURE)));
        assert!(!verify(SECRET, BODY, None));
        assert!(!verify(SECRET, BODY, Some("sha1=757107ea")));
        assert!(!verify(SECRET, BODY, Some("sha256=not-hex")));
        assert!(!verify(
            SECRET,
            BODY,
            Some(&SIGNATURE[..SIGNATURE.len() - 2])
        ));
    }
}
