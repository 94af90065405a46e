//! The errors of every operation, whichever front end asked: a kind (with its HTTP status and
//! its stable negative `resultCode`, both part of the API contract) and a message that names the
//! offending field (`hooks[3].messageStatus: ...`). The API answers them as JSON
//! (`api/error.rs`), the dashboard as a page.

use axum::http::StatusCode;
use hookline_wire::{ValidationError, ValidationErrorKind};

use crate::store::StoreError;

/// Every kind of error an operation ends with. The codes are part of the contract: never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    InvalidJson,
    NotAnObject,
    MissingField,
    WrongType,
    NotInEnum,
    BadFormat,
    UnknownProduct,
    UnknownEvent,
    EventNotForProduct,
    EmptyHooks,
    TooManyHooks,
    HookTooLarge,
    InvalidHookId,
    StringTooLong,
    InvalidField,
    BodyTooLarge,
    NotJson,
    Unauthorized,
    Forbidden,
    NotFound,
    MethodNotAllowed,
    Conflict,
    StoreUnavailable,
    RateLimited,
    TooManyFailedAuthentications,
    Internal,
}

impl ErrorKind {
    pub fn status(self) -> StatusCode {
        use ErrorKind::*;
        match self {
            InvalidJson | NotAnObject | MissingField | WrongType | NotInEnum | BadFormat
            | UnknownProduct | UnknownEvent | EventNotForProduct | EmptyHooks | InvalidHookId
            | StringTooLong | InvalidField => StatusCode::BAD_REQUEST,
            TooManyHooks | HookTooLarge | BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Unauthorized => StatusCode::UNAUTHORIZED,
            Forbidden => StatusCode::FORBIDDEN,
            NotFound => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Conflict => StatusCode::CONFLICT,
            StoreUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            RateLimited | TooManyFailedAuthentications => StatusCode::TOO_MANY_REQUESTS,
            Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(self) -> i32 {
        use ErrorKind::*;
        match self {
            InvalidJson => -1001,
            NotAnObject => -1002,
            MissingField => -1003,
            WrongType => -1004,
            NotInEnum => -1005,
            BadFormat => -1006,
            UnknownProduct => -1007,
            UnknownEvent => -1008,
            EventNotForProduct => -1009,
            EmptyHooks => -1010,
            TooManyHooks => -1011,
            HookTooLarge => -1012,
            InvalidHookId => -1013,
            StringTooLong => -1014,
            InvalidField => -1020,
            BodyTooLarge => -1030,
            NotJson => -1031,
            Unauthorized => -1040,
            Forbidden => -1041,
            NotFound => -1044,
            MethodNotAllowed => -1045,
            Conflict => -1049,
            StoreUnavailable => -1050,
            RateLimited => -1060,
            TooManyFailedAuthentications => -1061,
            Internal => -1099,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// Seconds for a `Retry-After` header (429 answers).
    pub retry_after_secs: Option<u64>,
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error {
            kind,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// 429 with `Retry-After: secs` (at least 1).
    pub fn rate_limited(message: impl Into<String>, secs: u64) -> Self {
        Error {
            retry_after_secs: Some(secs.max(1)),
            ..Error::new(ErrorKind::RateLimited, message)
        }
    }

    /// 429 for an address (or a target) with too many failed authentications: refused before
    /// its credentials are looked at, `Retry-After: secs` (at least 1).
    pub fn too_many_failed_authentications(field: &str, secs: u64) -> Self {
        let secs = secs.max(1);
        Error {
            retry_after_secs: Some(secs),
            ..Error::new(
                ErrorKind::TooManyFailedAuthentications,
                format!(
                    "{field}: too many failed authentications; this address must wait {secs} s \
                     (Retry-After) before trying again"
                ),
            )
        }
    }

    /// A bad value of a named field: `field: message`.
    pub fn field(field: &str, message: impl std::fmt::Display) -> Self {
        Error::new(ErrorKind::InvalidField, format!("{field}: {message}"))
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Error::new(ErrorKind::NotFound, what)
    }
}

impl From<ValidationError> for Error {
    fn from(e: ValidationError) -> Self {
        use ValidationErrorKind as V;
        let kind = match e.kind {
            V::InvalidJson => ErrorKind::InvalidJson,
            V::NotAnObject => ErrorKind::NotAnObject,
            V::MissingField => ErrorKind::MissingField,
            V::WrongType => ErrorKind::WrongType,
            V::NotInEnum => ErrorKind::NotInEnum,
            V::BadFormat => ErrorKind::BadFormat,
            V::UnknownProduct => ErrorKind::UnknownProduct,
            V::UnknownEvent => ErrorKind::UnknownEvent,
            V::EventNotForProduct => ErrorKind::EventNotForProduct,
            V::EmptyHooks => ErrorKind::EmptyHooks,
            V::TooManyHooks => ErrorKind::TooManyHooks,
            V::HookTooLarge => ErrorKind::HookTooLarge,
            V::InvalidHookId => ErrorKind::InvalidHookId,
            V::StringTooLong => ErrorKind::StringTooLong,
            // Rules only operators' schemas use: the message names the field and the rule.
            V::StringTooShort | V::OutOfRange | V::UnknownField => ErrorKind::InvalidField,
            V::NotIngestible => ErrorKind::UnknownProduct,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(detail) => {
                tracing::error!(error = %detail, "store unavailable");
                Error::new(
                    ErrorKind::StoreUnavailable,
                    "the store is unavailable; nothing was changed, try again",
                )
            }
            StoreError::Conflict(detail) => Error::new(ErrorKind::Conflict, detail),
            StoreError::BadCursor => Error::new(
                ErrorKind::InvalidField,
                "cursor: not a cursor returned by this server",
            ),
            StoreError::Corrupt(detail) => {
                tracing::error!(error = %detail, "corrupt stored data");
                Error::new(ErrorKind::Internal, "stored data could not be read")
            }
        }
    }
}
