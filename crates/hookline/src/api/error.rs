//! The API's error answer: a service error ([`crate::service::Error`]) as the platform's JSON
//! shape `{"header": {"isSuccessful": false, "resultCode": -N, "resultMessage": "field: ..."}}`,
//! with `Retry-After` on 429.

use axum::Json;
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub use crate::service::{Error as ApiError, ErrorKind, Result as ApiResult};

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "header": {
                "isSuccessful": false,
                "resultCode": self.kind.code(),
                "resultMessage": self.message,
            }
        });
        let mut response = (self.kind.status(), Json(body)).into_response();
        if let Some(secs) = self.retry_after_secs {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}
