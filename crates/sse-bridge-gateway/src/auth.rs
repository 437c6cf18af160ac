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
//!
//! **Workers** are principals too: a worker API key (`--worker-api-key
//! NAME=KEY`) stands for `worker:<NAME>`, and a JWT whose `scope` (a
//! space-separated string or an array) holds the configured worker scope for
//! `worker:jwt:<iss>:<sub>`. The `worker:` namespace is the role
//! ([`is_worker`]): such a caller may publish a session's events and read
//! the jobs stream (`crate::streams`). Worker keys are accepted even while
//! client authentication is off.

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
    /// Worker API keys: (name, key) pairs.
    worker_keys: Vec<(String, Vec<u8>)>,
    /// A JWT carrying this scope stands for a worker.
    worker_scope: Option<String>,
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
            .field(
                "worker_keys",
                &self.worker_keys.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("worker_scope", &self.worker_scope)
            .finish()
    }
}

/// The namespace of worker principals: the worker role.
pub const WORKER: &str = "worker:";

/// Whether `principal` has the worker role.
pub fn is_worker(principal: &str) -> bool {
    principal.starts_with(WORKER)
}

/// `NAME=KEY` specs as (name, key) pairs.
fn parse_keys<'a>(
    specs: impl IntoIterator<Item = &'a str>,
) -> Result<Vec<(String, Vec<u8>)>, AuthConfigError> {
    let mut keys = Vec::new();
    for spec in specs {
        let spec = spec.trim();
        match spec.split_once('=') {
            Some((name, key)) if !name.is_empty() && !key.is_empty() => {
                keys.push((name.to_owned(), key.as_bytes().to_vec()))
            }
            _ => {
                let shown = spec.split_once('=').map_or(spec, |(name, _)| name);
                return Err(AuthConfigError::BadApiKey(shown.to_owned()));
            }
        }
    }
    Ok(keys)
}

/// The name of the key in `keys` that is `token`, comparing every key so
/// timing does not tell which one matched.
fn find_key<'k>(keys: &'k [(String, Vec<u8>)], token: &str) -> Option<&'k str> {
    let mut found = None;
    for (name, key) in keys {
        if bool::from(key.as_slice().ct_eq(token.as_bytes())) {
            found = Some(name.as_str());
        }
    }
    found
}

impl Auth {
    /// Adds API keys given as `NAME=KEY`.
    pub fn with_api_keys<'a>(
        mut self,
        specs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, AuthConfigError> {
        self.api_keys.extend(parse_keys(specs)?);
        Ok(self)
    }

    /// Adds worker API keys given as `NAME=KEY` (principal `worker:NAME`).
    pub fn with_worker_api_keys<'a>(
        mut self,
        specs: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, AuthConfigError> {
        self.worker_keys.extend(parse_keys(specs)?);
        Ok(self)
    }

    /// JWTs whose `scope` holds `scope` stand for workers.
    pub fn with_worker_scope(mut self, scope: &str) -> Self {
        self.worker_scope = Some(scope.to_owned());
        self
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
        if let Some(name) = find_key(&self.worker_keys, token) {
            return Some(format!("{WORKER}{name}"));
        }
        if let Some(name) = find_key(&self.api_keys, token) {
            return Some(format!("key:{name}"));
        }
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Scope {
            Text(String),
            List(Vec<String>),
        }
        #[derive(serde::Deserialize)]
        struct Claims {
            sub: String,
            iss: Option<String>,
            scope: Option<Scope>,
        }
        let jwt = self.jwt.as_ref()?;
        let claims = jsonwebtoken::decode::<Claims>(token, &jwt.key, &jwt.validation)
            .ok()?
            .claims;
        if claims.sub.is_empty() {
            return None;
        }
        let worker = match (&self.worker_scope, &claims.scope) {
            (Some(wanted), Some(Scope::Text(text))) => text.split(' ').any(|s| s == wanted),
            (Some(wanted), Some(Scope::List(list))) => list.iter().any(|s| s == wanted),
            _ => false,
        };
        let role = if worker { WORKER } else { "" };
        Some(format!(
            "{role}jwt:{}:{}",
            claims.iss.unwrap_or_default(),
            claims.sub
        ))
    }

    /// The caller of a request: [`ANONYMOUS`] while auth is off (unless it
    /// presents a worker key).
    pub fn authenticate(&self, parts: &Parts) -> Result<String, ApiError> {
        if !self.is_enabled() {
            let worker = bearer(parts).and_then(|t| find_key(&self.worker_keys, t));
            return Ok(match worker {
                Some(name) => format!("{WORKER}{name}"),
                None => ANONYMOUS.to_owned(),
            });
        }
        let token = bearer(parts).ok_or(ApiError::Unauthorized("a bearer token is required"))?;
        self.principal(token)
            .ok_or(ApiError::Unauthorized("the bearer token is not valid"))
    }
}

/// The bearer token of a request, if any.
fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
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

    #[test]
    fn workers_by_key_or_scope_and_only_so() {
        use jsonwebtoken::{EncodingKey, Header, encode};
        const SECRET: &[u8] = b"a secret for the unit tests";
        let off = Auth::default().with_worker_api_keys(["w1=wk"]).unwrap();
        assert!(!off.is_enabled());
        assert_eq!(
            off.authenticate(&parts(Some("Bearer wk"))).unwrap(),
            "worker:w1"
        );
        assert_eq!(
            off.authenticate(&parts(Some("Bearer no"))).unwrap(),
            ANONYMOUS
        );
        let auth = off
            .with_jwt(JwtKey::Hs256Secret(SECRET), None, None)
            .unwrap()
            .with_worker_scope("sse:worker");
        let exp = jsonwebtoken::get_current_timestamp() + 600;
        let token = |scope: serde_json::Value| {
            let claims = serde_json::json!({"sub": "fn", "iss": "idp", "exp": exp, "scope": scope});
            encode(
                &Header::default(),
                &claims,
                &EncodingKey::from_secret(SECRET).unwrap(),
            )
            .unwrap()
        };
        let worker = auth.principal(&token("read sse:worker".into())).unwrap();
        assert_eq!(worker, "worker:jwt:idp:fn");
        assert!(is_worker(&worker));
        let listed = auth.principal(&token(serde_json::json!(["sse:worker"])));
        assert_eq!(listed.as_deref(), Some("worker:jwt:idp:fn"));
        let client = auth.principal(&token("sse:workers".into())).unwrap();
        assert_eq!(client, "jwt:idp:fn");
        assert!(!is_worker(&client) && !is_worker("key:worker:x"));
    }
}
