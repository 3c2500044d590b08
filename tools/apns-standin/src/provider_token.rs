//! Provider tokens as APNs checks them: `authorization: bearer <JWT>`, ES256 with the `.p8`
//! key, header `kid` = the key id, claim `iss` = the team id, claim `iat` not older than the
//! maximum age. Optionally (off by default), a token issued sooner than `min_refresh` after the
//! newest one seen is refused with `429 TooManyProviderTokenUpdates`, as Apple does for
//! providers that renew too often.

use crate::checks::Reject;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};

/// A token's `iat` may be at most this far ahead of our clock (a skew allowance; a token from
/// further in the future is `InvalidProviderToken`: Apple does not document this case).
const MAX_FUTURE_SKEW_SECS: u64 = 300;

pub struct ProviderTokens {
    key: DecodingKey,
    validation: Validation,
    key_id: String,
    team_id: String,
    /// The newest `iat` among the tokens accepted so far.
    newest_iat: Option<u64>,
    /// The last token whose signature checked out, with its `iat`: the notifier reuses one
    /// token for up to an hour, so most requests skip the signature check.
    last_verified: Option<(String, u64)>,
}

#[derive(serde::Deserialize)]
struct Claims {
    iss: Option<String>,
    iat: Option<u64>,
}

/// The limits a token is checked against (changeable at run time).
#[derive(Clone, Copy, Debug)]
pub struct TokenRules {
    pub max_age_secs: u64,
    /// 0: off.
    pub min_refresh_secs: u64,
}

impl ProviderTokens {
    pub fn new(public_key_pem: &str, key_id: &str, team_id: &str) -> anyhow::Result<Self> {
        let mut validation = Validation::new(Algorithm::ES256);
        // APNs tokens carry only `iss` and `iat`; the age is checked here, not by `exp`.
        validation.required_spec_claims.clear();
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        Ok(Self {
            key: DecodingKey::from_ec_pem(public_key_pem.as_bytes())?,
            validation,
            key_id: key_id.to_string(),
            team_id: team_id.to_string(),
            newest_iat: None,
            last_verified: None,
        })
    }

    /// Check the `authorization` header value (`None`: absent) at `now_secs`.
    pub fn check(
        &mut self,
        authorization: Option<&str>,
        now_secs: u64,
        rules: TokenRules,
    ) -> Result<(), Reject> {
        let jwt = authorization
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
            })
            .ok_or(Reject::MissingProviderToken)?;
        let iat = match &self.last_verified {
            Some((last, iat)) if last == jwt => *iat,
            _ => {
                let iat = self.verify(jwt)?;
                self.last_verified = Some((jwt.to_string(), iat));
                iat
            }
        };
        if iat > now_secs + MAX_FUTURE_SKEW_SECS {
            return Err(Reject::InvalidProviderToken);
        }
        if now_secs.saturating_sub(iat) > rules.max_age_secs {
            return Err(Reject::ExpiredProviderToken);
        }
        match self.newest_iat {
            Some(newest) if iat > newest && iat - newest < rules.min_refresh_secs => {
                Err(Reject::TooManyProviderTokenUpdates)
            }
            Some(newest) if iat <= newest => Ok(()),
            _ => {
                self.newest_iat = Some(iat);
                Ok(())
            }
        }
    }

    /// Signature, algorithm, `kid` and `iss`; returns `iat`.
    fn verify(&self, jwt: &str) -> Result<u64, Reject> {
        let header = jsonwebtoken::decode_header(jwt).map_err(|_| Reject::InvalidProviderToken)?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.key_id.as_str()) {
            return Err(Reject::InvalidProviderToken);
        }
        let claims = jsonwebtoken::decode::<Claims>(jwt, &self.key, &self.validation)
            .map_err(|_| Reject::InvalidProviderToken)?
            .claims;
        if claims.iss.as_deref() != Some(self.team_id.as_str()) {
            return Err(Reject::InvalidProviderToken);
        }
        claims.iat.ok_or(Reject::InvalidProviderToken)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};

    /// A provider token signed with `key` (a `.p8` in PEM).
    pub fn token(key_pem: &str, kid: &str, iss: &str, iat: u64) -> String {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(kid.to_string());
        let claims = serde_json::json!({ "iss": iss, "iat": iat });
        jsonwebtoken::encode(
            &header,
            &claims,
            &EncodingKey::from_ec_pem(key_pem.as_bytes()).unwrap(),
        )
        .unwrap()
    }

    const RULES: TokenRules = TokenRules {
        max_age_secs: 3600,
        min_refresh_secs: 0,
    };

    fn setup() -> (ProviderTokens, String) {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        let tokens = ProviderTokens::new(&key.public_key_pem(), "KID", "TEAM").unwrap();
        (tokens, key.serialize_pem())
    }

    #[test]
    fn a_token_signed_with_the_key_for_our_kid_and_team_is_accepted() {
        let (mut t, key) = setup();
        let jwt = token(&key, "KID", "TEAM", 1000);
        assert_eq!(t.check(Some(&format!("bearer {jwt}")), 1000, RULES), Ok(()));
        // Twice (the cached path) and with another spelling of the scheme.
        assert_eq!(t.check(Some(&format!("Bearer {jwt}")), 1001, RULES), Ok(()));
    }

    #[test]
    fn missing_forged_and_foreign_tokens_are_refused() {
        let (mut t, key) = setup();
        assert_eq!(t.check(None, 0, RULES), Err(Reject::MissingProviderToken));
        assert_eq!(
            t.check(Some("basic abc"), 0, RULES),
            Err(Reject::MissingProviderToken)
        );
        assert_eq!(
            t.check(Some("bearer x.y.z"), 0, RULES),
            Err(Reject::InvalidProviderToken)
        );
        let other = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
        for jwt in [
            token(&other.serialize_pem(), "KID", "TEAM", 1000),
            token(&key, "OTHER", "TEAM", 1000),
            token(&key, "KID", "OTHER", 1000),
            token(&key, "KID", "TEAM", 1000 + MAX_FUTURE_SKEW_SECS + 1),
        ] {
            assert_eq!(
                t.check(Some(&format!("bearer {jwt}")), 1000, RULES),
                Err(Reject::InvalidProviderToken)
            );
        }
        // HS256 with the public key as secret: the classic algorithm confusion.
        let hs = jsonwebtoken::encode(
            &Header {
                kid: Some("KID".into()),
                ..Header::new(Algorithm::HS256)
            },
            &serde_json::json!({"iss": "TEAM", "iat": 1000}),
            &EncodingKey::from_secret(b"secret"),
        )
        .unwrap();
        assert_eq!(
            t.check(Some(&format!("bearer {hs}")), 1000, RULES),
            Err(Reject::InvalidProviderToken)
        );
    }

    #[test]
    fn a_token_older_than_the_maximum_age_is_expired() {
        let (mut t, key) = setup();
        let jwt = format!("bearer {}", token(&key, "KID", "TEAM", 1000));
        assert_eq!(t.check(Some(&jwt), 4600, RULES), Ok(()));
        assert_eq!(
            t.check(Some(&jwt), 4601, RULES),
            Err(Reject::ExpiredProviderToken)
        );
        let short = TokenRules {
            max_age_secs: 10,
            ..RULES
        };
        assert_eq!(
            t.check(Some(&jwt), 1011, short),
            Err(Reject::ExpiredProviderToken)
        );
    }

    #[test]
    fn renewing_sooner_than_the_minimum_refresh_is_refused_when_enabled() {
        let (mut t, key) = setup();
        let rules = TokenRules {
            min_refresh_secs: 1200,
            ..RULES
        };
        let first = format!("bearer {}", token(&key, "KID", "TEAM", 1000));
        let soon = format!("bearer {}", token(&key, "KID", "TEAM", 1100));
        let later = format!("bearer {}", token(&key, "KID", "TEAM", 2200));
        assert_eq!(t.check(Some(&first), 1000, rules), Ok(()));
        assert_eq!(
            t.check(Some(&soon), 1100, rules),
            Err(Reject::TooManyProviderTokenUpdates)
        );
        assert_eq!(
            t.check(Some(&first), 1100, rules),
            Ok(()),
            "the old one still works"
        );
        assert_eq!(t.check(Some(&later), 2200, rules), Ok(()));
        assert_eq!(
            t.check(Some(&first), 2200, rules),
            Ok(()),
            "older tokens stay valid"
        );
        // Off (0): any renewal is fine.
        let next = format!("bearer {}", token(&key, "KID", "TEAM", 2201));
        assert_eq!(t.check(Some(&next), 2201, RULES), Ok(()));
    }
}
