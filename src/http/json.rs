//! [`Json`]: how every JSON answer of the HTTP API is written — one value
//! and a line end, so `curl` output ends its line as other tools' do. The
//! handlers' answers, [`AppError`](super::error::AppError) and the edge's
//! own errors ([`super::edge`]) all go through [`body`]; the body is
//! complete before it is sent, so its `Content-Length` (a `HEAD`'s too)
//! counts the line end.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// A JSON answer: `T` serialised, then `\n`, as `application/json`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json<T>(pub T);

/// `value` as a JSON body: serialised, then `\n`.
pub fn body<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(128);
    serde_json::to_writer(&mut out, value)?;
    out.push(b'\n');
    Ok(out)
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        match body(&self.0) {
            Ok(bytes) => (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                )],
                bytes,
            )
                .into_response(),
            // A plain-text 500, which the edge turns into the JSON error shape.
            Err(e) => {
                tracing::error!(error = %e, "an answer could not be serialised");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "the answer could not be encoded",
                )
                    .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_body_is_one_value_and_a_line_end() {
        let b = body(&serde_json::json!({"a": [1, "x"]})).expect("serialises");
        assert_eq!(b, b"{\"a\":[1,\"x\"]}\n");
        assert!(super::super::read::OPENAPI.ends_with('\n'));
    }
}
