//! Authentication: who is calling. Off by default.
//!
//! With [`Auth`] configured, every session endpoint (native, AG-UI, AI SDK;
//! create, follow, resume, cancel) wants `Authorization: Bearer <token>`:
//! a static API key or a JWT signed with HS256 or RS256 (`exp` required,
//! `nbf`, audience and issuer checked when configured). Anything else is
//! `401` with `WWW-Authenticate: Bearer`.
//!
//! The principal is namespaced by how the caller proved who it is, so an
//! API key's name and a JWT's subject never stand for the same caller:
//! `key:<name>`, `jwt:<iss>:<sub>` (`jwt::<sub>` without `iss`), or
//! [`ANONYMOUS`] while authentication is off. It is recorded with every
//! session it creates, and only it may follow, resume or cancel that session
//! (`sse_bridge_core::session` answers others as if the session did not
//! exist). API keys are compared in constant time; tokens are never logged.

use axum::extract::{FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// The principal of every session while authentication is off.
pub const ANONYMOUS: &str = "anonymous";

/// Why an authentication setting is unusable (at start-up).
#[derive(Debug, thiserror::Error)]
pub enum AuthConfigError {
    #[error("API key {0:?} is not NAME=KEY with both parts non-empty")]
    BadApiKey(String),
    #[error("invalid JWT key: {0}")]
    BadJwtKey(#[from] jsonwebtoken::errors::Error),
}

/// How callers prove who they are.
#[derive(Clone, Default)]
pub struct Auth {
    /// (name, key) pairs.
    api_keys: Vec<(String, Vec<u8>)>,
    jwt: Option<Jwt>,
    /// `/metrics` wants a token too.
    pub guard_metrics: bool,
}

#[derive(Clone)]
struct Jwt {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Names only: keys are secrets.
        let names: Vec<&str> = self.api_keys.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Auth")
            .field("api_keys", &names)
            .field("jwt", &self.jwt.is_some())
            .finish()
    }
}

impl Auth {
    /// Adds API keys given as `NAME=KEY`.
    pub fn with_api_keys<'a>(
        mut self,
        specs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, AuthConfigError> {
        for spec in specs {
            let spec = spec.trim();
            match spec.split_once('=') {
                Some((name, key)) if !name.is_empty() && !key.is_empty() => self
                    .api_keys
                    .push((name.to_owned(), key.as_bytes().to_vec())),
                _ => {
                    let shown = spec.split_once('=').map_or(spec, |(name, _)| name);
                    return Err(AuthConfigError::BadApiKey(shown.to_owned()));
                }
            }
        }
        Ok(self)
    }

    /// Accepts JWTs signed with `key` (HS256 secret or RS256 public key),
    /// for `audience` and from `issuer` when given.
    pub fn with_jwt(
        mut self,
        key: JwtKey<'_>,
        audience: Option<&str>,
        issuer: Option<&str>,
    ) -> Result<Self, AuthConfigError> {
        let (key, algorithm) = match key {
            JwtKey::Hs256Secret(secret) => (DecodingKey::from_secret(secret)?, Algorithm::HS256),
            JwtKey::Rs256PublicPem(pem) => (DecodingKey::from_rsa_pem(pem)?, Algorithm::RS256),
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub"]);
        validation.validate_aud = audience.is_some();
        if let Some(audience) = audience {
            validation.set_audience(&[audience]);
        }
        if let Some(issuer) = issuer {
            validation.set_issuer(&[issuer]);
        }
        self.jwt = Some(Jwt { key, validation });
        Ok(self)
    }

    /// Whether any credential is configured (otherwise auth is off).
    pub fn is_enabled(&self) -> bool {
        !self.api_keys.is_empty() || self.jwt.is_some()
    }

    /// The principal a bearer token stands for (namespaced: see the module doc).
    pub fn principal(&self, token: &str) -> Option<String> {
        // Every key is compared, so timing does not tell which one matched.
        let mut found = None;
        for (name, key) in &self.api_keys {
            if bool::from(key.as_slice().ct_eq(token.as_bytes())) {
                found = Some(name);
            }
        }
        if let Some(name) = found {
            return Some(format!("key:{name}"));
        }
        #[derive(serde::Deserialize)]
        struct Claims {
            sub: String,
            iss: Option<String>,
        }
        let jwt = self.jwt.as_ref()?;
        let claims = jsonwebtoken::decode::<Claims>(token, &jwt.key, &jwt.validation)
            .ok()?
            .claims;
        if claims.sub.is_empty() {
            return None;
        }
        Some(format!(
            "jwt:{}:{}",
            claims.iss.unwrap_or_default(),
            claims.sub
        ))
    }

    /// The caller of a request: [`ANONYMOUS`] while auth is off.
    pub fn authenticate(&self, parts: &Parts) -> Result<String, ApiError> {
        if !self.is_enabled() {
            return Ok(ANONYMOUS.to_owned());
        }
        let token = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .ok_or(ApiError::Unauthorized("a bearer token is required"))?;
        self.principal(token)
            .ok_or(ApiError::Unauthorized("the bearer token is not valid"))
    }
}

/// Key material for JWTs.
pub enum JwtKey<'a> {
    Hs256Secret(&'a [u8]),
    Rs256PublicPem(&'a [u8]),
}

/// The authenticated caller of a request.
pub struct Caller(pub String);

impl<S> FromRequestParts<S> for Caller
where
    S: Send + Sync,
    Auth: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Auth::from_ref(state).authenticate(parts).map(Caller)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::Request;

    fn parts(authorization: Option<&str>) -> Parts {
        let mut request = Request::builder().uri("/");
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn off_by_default_and_everyone_is_anonymous() {
        assert_eq!(
            Auth::default().authenticate(&parts(None)).unwrap(),
            ANONYMOUS
        );
    }

    #[test]
    fn api_keys_name_their_principal() {
        let auth = Auth::default()
            .with_api_keys(["alice=k1", "bob=k2"])
            .unwrap();
        assert_eq!(
            auth.authenticate(&parts(Some("Bearer k2"))).unwrap(),
            "key:bob"
        );
        assert_eq!(
            auth.authenticate(&parts(Some("bearer k1"))).unwrap(),
            "key:alice"
        );
        for bad in [None, Some("Bearer nope"), Some("Basic k1"), Some("k1")] {
            assert!(matches!(
                auth.authenticate(&parts(bad)),
                Err(ApiError::Unauthorized(_))
            ));
        }
        assert!(Auth::default().with_api_keys(["=k"]).is_err());
        let error = Auth::default()
            .with_api_keys(["alice="])
            .unwrap_err()
            .to_string();
        assert!(!error.contains("k1"), "{error}");
    }

    #[test]
    fn jwt_principals_carry_their_issuer_and_never_meet_api_keys() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        const SECRET: &[u8] = b"a secret for the unit tests";
        let auth = Auth::default()
            .with_api_keys(["alice=k1"])
            .unwrap()
            .with_jwt(JwtKey::Hs256Secret(SECRET), None, None)
            .unwrap();
        let token = |claims: serde_json::Value| {
            let key = EncodingKey::from_secret(SECRET).unwrap();
            encode(&Header::default(), &claims, &key).unwrap()
        };
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let with_issuer = token(serde_json::json!({"sub": "alice", "iss": "idp", "exp": exp}));
        let without = token(serde_json::json!({"sub": "alice", "exp": exp}));
        assert_eq!(auth.principal(&with_issuer).unwrap(), "jwt:idp:alice");
        assert_eq!(auth.principal(&without).unwrap(), "jwt::alice");
        assert_eq!(auth.principal("k1").unwrap(), "key:alice");
    }
}
