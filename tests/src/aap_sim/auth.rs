//! Bearer and Basic authentication, with AWX's 401 bodies.

use axum::http::{HeaderMap, header};

use super::config::Access;
use super::state::State;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AuthError {
    Missing,
    InvalidToken,
    InvalidPassword,
}

impl AuthError {
    pub(crate) fn message(self) -> &'static str {
        match self {
            AuthError::Missing => "Authentication credentials were not provided.",
            AuthError::InvalidToken => "Invalid token.",
            AuthError::InvalidPassword => "Invalid username/password.",
        }
    }
}

pub(crate) fn check(headers: &HeaderMap, state: &State) -> Result<Access, AuthError> {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Err(AuthError::Missing);
    };
    let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
    let credentials = credentials.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return state
            .tokens
            .get(credentials)
            .copied()
            .ok_or(AuthError::InvalidToken);
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = decode_base64(credentials).ok_or(AuthError::InvalidPassword)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::InvalidPassword)?;
        let (user, password) = decoded.split_once(':').ok_or(AuthError::InvalidPassword)?;
        return match state.users.get(user) {
            Some((expected, access)) if expected == password => Ok(*access),
            _ => Err(AuthError::InvalidPassword),
        };
    }
    // An unknown scheme is no credential DRF recognises.
    Err(AuthError::Missing)
}

/// Standard base64 with optional padding; small enough not to need a crate here.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let bytes = text.trim_end_matches('=').as_bytes();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        if chunk.len() == 1 {
            return None;
        }
        let mut acc = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            acc |= value(c)? << (18 - 6 * i);
        }
        let n = chunk.len() - 1;
        out.extend_from_slice(&acc.to_be_bytes()[1..1 + n]);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_base64() {
        assert_eq!(
            super::decode_base64("YWRtaW46cGFzcw==").unwrap(),
            b"admin:pass"
        );
        assert_eq!(super::decode_base64("YQ").unwrap(), b"a");
        assert!(super::decode_base64("Y").is_none());
    }
}
