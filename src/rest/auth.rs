//! Bearer-token check for the admin endpoints.
//!
//! The presented token is compared with the configured one in constant time: every byte
//! position up to the longer of the two lengths is visited and folded into one difference
//! word, with no early exit on the first mismatch or on a length mismatch. Only the longer
//! length can be told from the timing. The token is never logged or echoed.

use super::envelope::{ApiError, Ctx};
use crate::proto::http::{Request, Response};

/// The realm in `WWW-Authenticate`.
const REALM: &str = "chat-server";

/// Equality of two byte strings in time that depends only on the longer length.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let len = a.len().max(b.len());
    // Lengths differ: some bit of this is set.
    let mut diff = (a.len() ^ b.len()) as u64;
    for i in 0..len {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= u64::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthFailure {
    /// No `Authorization: Bearer …` header.
    Missing,
    /// A token was presented but is not the right one (or several `Authorization` headers).
    Invalid,
}

/// Checks `Authorization: Bearer <token>` against `expected`. An empty `expected` matches
/// nothing.
pub(crate) fn check(req: &Request, expected: &str) -> Result<(), AuthFailure> {
    let mut values = req
        .headers
        .iter()
        .filter(|(name, _)| name == "authorization")
        .map(|(_, value)| value.as_str());
    let Some(value) = values.next() else {
        return Err(AuthFailure::Missing);
    };
    let several = values.next().is_some();
    let value = value.trim_matches([' ', '\t']);
    let (scheme, token) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(AuthFailure::Missing);
    }
    let token = token.trim_matches([' ', '\t']);
    let equal = constant_time_eq(token.as_bytes(), expected.as_bytes());
    if equal && !expected.is_empty() && !several {
        Ok(())
    } else {
        Err(AuthFailure::Invalid)
    }
}

/// The `401` answer.
pub(crate) fn unauthorized(ctx: &Ctx, failure: AuthFailure) -> Response {
    let (challenge, human) = match failure {
        AuthFailure::Missing => (
            format!("Bearer realm=\"{REALM}\""),
            "This endpoint needs an administrator token: Authorization: Bearer <token>",
        ),
        AuthFailure::Invalid => (
            format!("Bearer realm=\"{REALM}\", error=\"invalid_token\""),
            "The administrator token is not valid",
        ),
    };
    ctx.error(401, ApiError::err("unauthorized", human))
        .header("WWW-Authenticate", challenge)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_auth(values: &[&str]) -> Request {
        Request {
            method: "GET".into(),
            path: "/v1/api/message".into(),
            version: 1,
            headers: values
                .iter()
                .map(|v| ("authorization".to_string(), v.to_string()))
                .collect(),
            ..Request::default()
        }
    }

    #[test]
    fn constant_time_compare() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret "));
        assert!(!constant_time_eq(b"secret", b"secre"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(!constant_time_eq(b"x", b""));
        // A prefix padded with NULs must not compare equal.
        assert!(!constant_time_eq(b"ab\0", b"ab"));
        assert!(!constant_time_eq(b"ab", b"ab\0"));
        // Differing lengths whose XOR has only high bits set.
        let long = vec![b'a'; 256];
        assert!(!constant_time_eq(&long, &long[..0]));
        assert!(!constant_time_eq(&long[..0], &long));
        assert!(constant_time_eq(&long, &long.clone()));
    }

    #[test]
    fn bearer_header() {
        assert_eq!(check(&with_auth(&[]), "tok"), Err(AuthFailure::Missing));
        assert_eq!(check(&with_auth(&["Bearer tok"]), "tok"), Ok(()));
        assert_eq!(check(&with_auth(&["bearer   tok  "]), "tok"), Ok(()));
        assert_eq!(check(&with_auth(&["BEARER\ttok"]), "tok"), Ok(()));
        assert_eq!(
            check(&with_auth(&["Bearer tok2"]), "tok"),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            check(&with_auth(&["Bearer"]), "tok"),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            check(&with_auth(&["Basic dG9rOg=="]), "tok"),
            Err(AuthFailure::Missing)
        );
        assert_eq!(
            check(&with_auth(&["Bearer tok", "Bearer tok"]), "tok"),
            Err(AuthFailure::Invalid)
        );
        // An empty configured token matches nothing, not even an empty presented one.
        assert_eq!(
            check(&with_auth(&["Bearer "]), ""),
            Err(AuthFailure::Invalid)
        );
        assert_eq!(
            check(&with_auth(&["Bearer"]), ""),
            Err(AuthFailure::Invalid)
        );
    }

    #[test]
    fn unauthorized_answer_never_echoes_the_token() {
        let ctx = Ctx::bare(0);
        for failure in [AuthFailure::Missing, AuthFailure::Invalid] {
            let resp = unauthorized(&ctx, failure);
            assert_eq!(resp.status, 401);
            let challenge = resp
                .headers
                .iter()
                .find(|(n, _)| *n == "WWW-Authenticate")
                .map(|(_, v)| v.clone())
                .unwrap();
            assert!(challenge.starts_with("Bearer realm=\"chat-server\""));
            let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap();
            assert_eq!(body["errors"][0]["short_message"], "unauthorized");
        }
    }
}
