//! Between HTTP and ruma: reading a body within the size limit, decoding
//! it into a ruma request type (`M_TOO_LARGE`, `M_NOT_JSON`, `M_BAD_JSON`,
//! `M_INVALID_PARAM`), and encoding a ruma response.

use std::panic::AssertUnwindSafe;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::header::CONTENT_LENGTH;
use http::request::Parts;
use http_body_util::{BodyExt as _, Limited};
use ruma::api::error::{DeserializationError, FromHttpRequestError};
use ruma::api::{
    IncomingRequest, IncomingRequestExt as _, OutgoingResponse, OutgoingResponseExt as _,
};
use serde::de::IgnoredAny;

use crate::error::MatrixError;

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_body(parts: &Parts, body: Body, limit: usize) -> Result<Bytes, MatrixError> {
    // Refuse a declared oversize body before reading any of it.
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(MatrixError::TooLarge);
    }
    match Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(MatrixError::TooLarge),
        Err(e) => Err(MatrixError::BadJson(format!(
            "could not read the body: {e}"
        ))),
    }
}

/// Decodes a request of type `R` from its head, body and path arguments.
pub fn decode<R: IncomingRequest>(
    parts: &Parts,
    body: &[u8],
    path_args: &[String],
) -> Result<R, MatrixError> {
    if !body.is_empty() && serde_json::from_slice::<IgnoredAny>(body).is_err() {
        return Err(MatrixError::NotJson);
    }
    // Clients send some bodies that have only optional fields as nothing at
    // all (matrix-nio's POST /join, for one); Synapse reads an empty body
    // as `{}`, and so does Axon. A missing required field is still 400.
    let body: &[u8] =
        if body.is_empty() && matches!(parts.method, http::Method::POST | http::Method::PUT) {
            b"{}"
        } else {
            body
        };
    let mut builder = http::Request::builder()
        .method(parts.method.clone())
        .uri(parts.uri.clone());
    if let Some(headers) = builder.headers_mut() {
        headers.clone_from(&parts.headers);
    }
    let request = builder
        .body(body)
        .map_err(|e| MatrixError::Internal(format!("rebuilding the request: {e}")))?;
    let args: Vec<&str> = path_args.iter().map(String::as_str).collect();
    // ruma's decoders index JSON objects in places (`data["type"]` in
    // login), which panics on a missing key: a malformed body must be a
    // 400, never a dead connection.
    let decoded = std::panic::catch_unwind(AssertUnwindSafe(|| {
        R::try_from_http_request(request, &args)
    }))
    .map_err(|_| MatrixError::BadJson("malformed request body".into()))?;
    decoded.map_err(|e| match e {
        FromHttpRequestError::Deserialization(e) => match e {
            DeserializationError::Json(e) => MatrixError::BadJson(e.to_string()),
            DeserializationError::Utf8(_) => MatrixError::NotJson,
            other => MatrixError::InvalidParam(other.to_string()),
        },
        FromHttpRequestError::MethodMismatch { .. } => MatrixError::WrongMethod,
        other => MatrixError::BadJson(other.to_string()),
    })
}

/// Encodes a ruma response.
pub fn encode<T: OutgoingResponse>(response: T) -> Response {
    match response.try_into_http_response::<Vec<u8>>() {
        Ok(response) => response.map(Body::from).into_response(),
        Err(e) => MatrixError::Internal(format!("encoding a response: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ruma::api::client::account::get_username_availability;
    use ruma::api::client::session::login;

    fn parts(method: http::Method, uri: &str) -> Parts {
        http::Request::builder()
            .method(method)
            .uri(uri)
            .body(())
            .map(|r| r.into_parts().0)
            .unwrap()
    }

    #[test]
    fn body_errors_have_their_codes() {
        let post = parts(http::Method::POST, "/_matrix/client/v3/login");
        let not_json = decode::<login::v3::Request>(&post, b"{nope", &[]);
        assert!(
            matches!(not_json, Err(MatrixError::NotJson)),
            "{not_json:?}"
        );
        let wrong_shape = decode::<login::v3::Request>(&post, b"[1, 2]", &[]);
        assert!(
            matches!(wrong_shape, Err(MatrixError::BadJson(_))),
            "{wrong_shape:?}"
        );
        // No "type": ruma's decoder would panic on it.
        let untyped = decode::<login::v3::Request>(&post, br#"{"password":"x"}"#, &[]);
        assert!(
            matches!(untyped, Err(MatrixError::BadJson(_))),
            "{untyped:?}"
        );
        let ok = decode::<login::v3::Request>(
            &post,
            br#"{"type":"m.login.password","user":"a","password":"b"}"#,
            &[],
        );
        assert!(ok.is_ok(), "{ok:?}");
    }

    #[test]
    fn a_missing_query_parameter_is_invalid_param() {
        let get = parts(http::Method::GET, "/_matrix/client/v3/register/available");
        let r = decode::<get_username_availability::v3::Request>(&get, b"", &[]);
        assert!(matches!(r, Err(MatrixError::InvalidParam(_))), "{r:?}");
    }

    #[test]
    fn an_empty_body_reads_as_an_empty_object() {
        use ruma::api::client::membership::join_room_by_id_or_alias;
        let post = parts(http::Method::POST, "/_matrix/client/v3/join/!r:x");
        let join = decode::<join_room_by_id_or_alias::v3::Request>(&post, b"", &["!r:x".into()]);
        assert!(join.is_ok(), "{join:?}");
        // Required fields are still required.
        let login = parts(http::Method::POST, "/_matrix/client/v3/login");
        let r = decode::<login::v3::Request>(&login, b"", &[]);
        assert!(matches!(r, Err(MatrixError::BadJson(_))), "{r:?}");
    }
}
