//! User-interactive authentication (UIA): the 401 answer that lists the
//! flows an endpoint accepts, and the check of the stage a client sends.
//!
//! Every flow Axon offers has a single stage (`m.login.dummy`,
//! `m.login.registration_token`, `m.login.password`), so a stage that
//! passes completes its flow within the same request, and no per-session
//! state is kept: the session id is echoed (or made up) only because
//! clients expect one.

use rand::Rng as _;
use rand::distr::Alphanumeric;
use ruma::api::client::uiaa::{AuthData, AuthFlow, AuthType, UiaaInfo};

use crate::error::MatrixError;

/// The UIA description of a one-stage flow.
pub fn info(stage: AuthType, session: Option<&str>) -> Box<UiaaInfo> {
    let mut info = UiaaInfo::new(vec![AuthFlow::new(vec![stage])]);
    info.session = Some(match session {
        Some(s) => s.to_owned(),
        None => rand::rng()
            .sample_iter(&Alphanumeric)
            .take(24)
            .map(char::from)
            .collect(),
    });
    Box::new(info)
}

/// The `auth` of a request that must complete `stage`: a 401 with the flow
/// when it is missing or of another type.
pub fn require(auth: Option<AuthData>, stage: AuthType) -> Result<AuthData, MatrixError> {
    let Some(auth) = auth else {
        return Err(MatrixError::AuthRequired {
            info: info(stage, None),
            failure: None,
        });
    };
    if auth.auth_type().as_ref() == Some(&stage) {
        return Ok(auth);
    }
    Err(failed(
        &auth,
        stage,
        MatrixError::Forbidden("this authentication stage is not offered here".into()),
    ))
}

/// A 401 saying the stage `auth` tried failed for `reason`, with the flow
/// to try again.
pub fn failed(auth: &AuthData, stage: AuthType, reason: MatrixError) -> MatrixError {
    MatrixError::AuthRequired {
        info: info(stage, auth.session()),
        failure: Some(Box::new(reason)),
    }
}

/// Compares secrets in time independent of where they differ.
pub fn secrets_match(given: &str, expected: &str) -> bool {
    let (a, b) = (given.as_bytes(), expected.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::api::client::uiaa::Dummy;

    #[test]
    fn missing_or_other_stage_is_a_401_with_the_flow() {
        match require(None, AuthType::Dummy) {
            Err(MatrixError::AuthRequired { info, failure }) => {
                assert!(failure.is_none());
                assert_eq!(info.flows[0].stages, vec![AuthType::Dummy]);
                assert!(info.session.is_some());
            }
            other => panic!("{other:?}"),
        }
        let dummy = AuthData::Dummy(Dummy::new());
        assert!(require(Some(dummy.clone()), AuthType::Dummy).is_ok());
        assert!(matches!(
            require(Some(dummy), AuthType::Password),
            Err(MatrixError::AuthRequired {
                failure: Some(_),
                ..
            })
        ));
        assert!(secrets_match("abc", "abc"));
        assert!(!secrets_match("abc", "abd"));
        assert!(!secrets_match("abc", "abcd"));
    }
}
