//! How an [`Error`] travels in a gRPC status, and which gRPC code each
//! [`ErrorKind`] maps to. Both sides use these functions so the mapping lives
//! in one place.

use prost::Message;
use tonic::{Code, Status};

pub use crate::v1::{Error, ErrorKind};

impl Error {
    /// A new error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind: kind as i32,
            message: message.into(),
            ..Self::default()
        }
    }

    /// Encodes the error as a gRPC status: code from the kind, message from
    /// the error, the whole error in the status details.
    pub fn into_status(self) -> Status {
        let code = code_for(self.kind());
        let message = self.message.clone();
        Status::with_details(code, message, self.encode_to_vec().into())
    }

    /// Decodes the error a worker put into `status`. A status without
    /// details (for example one produced by the transport) becomes an error
    /// whose kind is derived from the gRPC code.
    pub fn from_status(status: &Status) -> Self {
        if !status.details().is_empty()
            && let Ok(err) = Error::decode(status.details())
        {
            return err;
        }
        let kind = kind_for(status.code());
        Error {
            kind: kind as i32,
            message: status.message().to_string(),
            retry_safe: matches!(kind, ErrorKind::Unavailable),
            ..Error::default()
        }
    }
}

impl ErrorKind {
    /// Stable snake_case name of a kind, as clients, logs and metrics show it.
    pub fn snake_name(self) -> &'static str {
        match self {
            ErrorKind::Unspecified => "unspecified",
            ErrorKind::InvalidRequest => "invalid_request",
            ErrorKind::UnknownDatabase => "unknown_database",
            ErrorKind::Syntax => "syntax",
            ErrorKind::UndefinedObject => "undefined_object",
            ErrorKind::ConstraintViolation => "constraint_violation",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::ReadOnly => "read_only",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Connection => "connection",
            ErrorKind::PoolExhausted => "pool_exhausted",
            ErrorKind::Overloaded => "overloaded",
            ErrorKind::Data => "data",
            ErrorKind::Statement => "statement",
            ErrorKind::Database => "database",
            ErrorKind::Internal => "internal",
            ErrorKind::Conflict => "conflict",
            ErrorKind::Unavailable => "unavailable",
        }
    }
}

/// The gRPC status code used for an error kind.
pub fn code_for(kind: ErrorKind) -> Code {
    match kind {
        ErrorKind::InvalidRequest | ErrorKind::Syntax | ErrorKind::Statement | ErrorKind::Data => {
            Code::InvalidArgument
        }
        ErrorKind::UnknownDatabase | ErrorKind::UndefinedObject => Code::NotFound,
        ErrorKind::ConstraintViolation | ErrorKind::ReadOnly => Code::FailedPrecondition,
        ErrorKind::PermissionDenied => Code::PermissionDenied,
        ErrorKind::Timeout => Code::DeadlineExceeded,
        ErrorKind::Cancelled => Code::Cancelled,
        ErrorKind::Conflict => Code::Aborted,
        ErrorKind::Connection | ErrorKind::Unavailable => Code::Unavailable,
        ErrorKind::PoolExhausted | ErrorKind::Overloaded => Code::ResourceExhausted,
        ErrorKind::Database | ErrorKind::Internal | ErrorKind::Unspecified => Code::Internal,
    }
}

/// The error kind assumed for a status that carries no [`Error`] details,
/// i.e. one raised by the gRPC transport rather than by a worker.
pub fn kind_for(code: Code) -> ErrorKind {
    match code {
        Code::Unavailable | Code::Unknown => ErrorKind::Unavailable,
        Code::DeadlineExceeded => ErrorKind::Timeout,
        // tonic reports an expired server-side deadline as CANCELLED.
        Code::Cancelled => ErrorKind::Timeout,
        Code::ResourceExhausted => ErrorKind::PoolExhausted,
        Code::InvalidArgument | Code::OutOfRange => ErrorKind::InvalidRequest,
        Code::PermissionDenied => ErrorKind::PermissionDenied,
        // The worker refused the gateway's own credentials: an operator's
        // configuration problem, not the caller's.
        Code::Unauthenticated => ErrorKind::Internal,
        Code::NotFound => ErrorKind::UnknownDatabase,
        _ => ErrorKind::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_round_trips_through_status() {
        let mut err = Error::new(ErrorKind::Syntax, "syntax error at or near \"SELEC\"");
        err.sqlstate = "42601".into();
        err.position = 1;
        let status = err.clone().into_status();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(Error::from_status(&status), err);
    }

    #[test]
    fn transport_status_maps_to_a_kind() {
        let err = Error::from_status(&Status::unavailable("connection refused"));
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(err.retry_safe);
        // A worker refusing the gateway's credentials is the operators' problem.
        let err = Error::from_status(&Status::unauthenticated("no token"));
        assert_eq!(err.kind(), ErrorKind::Internal);
    }

    #[test]
    fn overloaded_is_resource_exhausted() {
        let status = Error::new(ErrorKind::Overloaded, "at its limit").into_status();
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(Error::from_status(&status).kind(), ErrorKind::Overloaded);
    }
}
