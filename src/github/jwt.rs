//! Authenticating as a GitHub App: a JWT signed RS256 with the app's private key, valid
//! for under ten minutes, which buys installation tokens.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rsa::pkcs1::DecodeRsaPrivateKey;
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha256;

use crate::github::GitHubError;

/// A GitHub App's id and private key. `Debug` never shows the key.
#[derive(Clone)]
pub struct AppKey {
    app_id: String,
    key: SigningKey<Sha256>,
}

impl fmt::Debug for AppKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AppKey {{ app_id: {}, key: **** }}", self.app_id)
    }
}

impl AppKey {
    /// Reads a PEM key: PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands out) or PKCS#8.
    pub fn from_pem(app_id: &str, pem: &str) -> Result<AppKey, GitHubError> {
        let key = RsaPrivateKey::from_pkcs1_pem(pem)
            .or_else(|_| RsaPrivateKey::from_pkcs8_pem(pem))
            .map_err(|_| GitHubError::Config("the --github-private-key file is not an RSA private key in PEM form (as GitHub gives it)".into()))?;
        Ok(AppKey {
            app_id: app_id.to_owned(),
            key: SigningKey::new(key),
        })
    }

    /// A JWT for the app's API calls. Issued a minute in the past, as GitHub advises,
    /// against clock drift; expires after nine minutes (GitHub allows ten).
    pub fn jwt(&self, now_secs: i64) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
        let claims = serde_json::json!({ "iat": now_secs - 60, "exp": now_secs + 9 * 60, "iss": self.app_id });
        let claims = URL_SAFE_NO_PAD.encode(claims.to_string());
        let signed = format!("{header}.{claims}");
        let signature = URL_SAFE_NO_PAD.encode(self.key.sign(signed.as_bytes()).to_bytes());
        format!("{signed}.{signature}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rsa::pkcs1v15::{Signature, VerifyingKey};
    use rsa::signature::Verifier;

    #[test]
    fn signs_a_jwt_that_the_public_key_verifies() {
        let mut rng = rand::thread_rng();
        let private = RsaPrivateKey::new(&mut rng, 1024).expect("generate a key");
        let pem =
            rsa::pkcs1::EncodeRsaPrivateKey::to_pkcs1_pem(&private, rsa::pkcs1::LineEnding::LF)
                .expect("pem");
        let key = AppKey::from_pem("29310", &pem).expect("read the key");
        let jwt = key.jwt(1_700_000_000);
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).expect("b64")).expect("json");
        assert_eq!(claims["iss"], "29310");
        assert_eq!(claims["iat"], 1_700_000_000 - 60);
        assert_eq!(claims["exp"], 1_700_000_000 + 540);
        let signature =
            Signature::try_from(URL_SAFE_NO_PAD.decode(parts[2]).expect("b64").as_slice())
                .expect("signature");
        let verifying = VerifyingKey::<Sha256>::new(private.to_public_key());
        verifying
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("valid signature");
        assert!(!format!("{key:?}").contains("BEGIN"));
    }

    #[test]
    fn refuses_what_is_not_a_key() {
        assert!(AppKey::from_pem("1", "not a key").is_err());
    }
}
