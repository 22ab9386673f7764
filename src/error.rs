//! The one error type of the application. Handlers turn it into a JSON error (the API)
//! or an error page (the HTML pages); it is logged once, with its cause chain.

use std::borrow::Cow;

/// What went wrong, in terms a client can act on.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// 400: the input is wrong; `field` names the offending field.
    #[error("{field}: {message}")]
    BadInput { field: Cow<'static, str>, message: Cow<'static, str> },
    /// 401: no valid credentials.
    #[error("sign-in required")]
    Unauthenticated,
    /// 403: the caller can see the object but may not do this.
    #[error("forbidden: {0}")]
    Forbidden(Cow<'static, str>),
    /// 404: no such object.
    #[error("not found: {0}")]
    NotFound(Cow<'static, str>),
    /// 404 as well, to the client: the object exists but the caller cannot see it. Unlike
    /// [`AppError::NotFound`] it is logged as a refusal (SECURITY.md row 25).
    #[error("not found: {0}")]
    Hidden(Cow<'static, str>),
    /// 409: the object is in the wrong state for the action, or already exists.
    #[error("conflict: {0}")]
    Conflict(Cow<'static, str>),
    /// 413: the request body or an upload is too large.
    #[error("too large: {0}")]
    TooLarge(Cow<'static, str>),
    /// 429: too many attempts.
    #[error("too many attempts")]
    TooManyRequests { retry_after_secs: u64 },
    /// 500: a fault of ours; the cause is logged, never shown.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl AppError {
    pub fn bad_input(field: impl Into<Cow<'static, str>>, message: impl Into<Cow<'static, str>>) -> AppError {
        AppError::BadInput { field: field.into(), message: message.into() }
    }

    pub fn not_found(what: impl Into<Cow<'static, str>>) -> AppError {
        AppError::NotFound(what.into())
    }

    pub fn conflict(what: impl Into<Cow<'static, str>>) -> AppError {
        AppError::Conflict(what.into())
    }

    /// An object that exists but that the caller may not see: 404, logged as a refusal.
    pub fn hidden(what: impl Into<Cow<'static, str>>) -> AppError {
        AppError::Hidden(what.into())
    }

    /// Why this error is an access refusal to log, if it is one.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            AppError::Forbidden(_) => Some("forbidden"),
            AppError::Hidden(_) => Some("not_visible"),
            _ => None,
        }
    }

    pub fn forbidden(what: impl Into<Cow<'static, str>>) -> AppError {
        AppError::Forbidden(what.into())
    }

    /// The machine-readable code of the JSON error.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::BadInput { .. } => "bad_input",
            AppError::Unauthenticated => "unauthenticated",
            AppError::Forbidden(_) => "forbidden",
            AppError::NotFound(_) | AppError::Hidden(_) => "not_found",
            AppError::Conflict(_) => "conflict",
            AppError::TooLarge(_) => "too_large",
            AppError::TooManyRequests { .. } => "too_many_requests",
            AppError::Internal(_) => "internal",
        }
    }

    pub fn status(&self) -> u16 {
        match self {
            AppError::BadInput { .. } => 400,
            AppError::Unauthenticated => 401,
            AppError::Forbidden(_) => 403,
            AppError::NotFound(_) | AppError::Hidden(_) => 404,
            AppError::Conflict(_) => 409,
            AppError::TooLarge(_) => 413,
            AppError::TooManyRequests { .. } => 429,
            AppError::Internal(_) => 500,
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> AppError {
        // A constraint the database holds that the code did not check first: the input
        // was wrong or raced with another change, never a reason for a 500.
        if let sqlx::Error::Database(db) = &e {
            let constraint = db.constraint().unwrap_or("").to_owned();
            match db.code().as_deref() {
                Some("23505") => return AppError::Conflict(format!("already exists ({constraint})").into()),
                Some("23503") => {
                    return AppError::Conflict(format!("refers to something missing or in use ({constraint})").into());
                }
                Some("23514") => return AppError::bad_input(constraint_field(&constraint), "value not allowed"),
                Some("22001") => return AppError::bad_input("input", "value too long"),
                Some("22021") | Some("22P05") => {
                    return AppError::bad_input("input", "text may not contain the NUL character");
                }
                Some("22008") | Some("22007") => return AppError::bad_input("input", "a date or time out of range"),
                Some("22003") => return AppError::bad_input("input", "a number out of range"),
                Some("40001") | Some("40P01") => {
                    return AppError::Conflict("a concurrent change won; try again".into());
                }
                _ => {}
            }
        }
        AppError::Internal(anyhow::Error::new(e))
    }
}

/// The column a check constraint named `table_column_check` is about.
fn constraint_field(constraint: &str) -> String {
    let trimmed = constraint.strip_suffix("_check").unwrap_or(constraint);
    match trimmed.split_once('_') {
        Some((_, col)) if !col.is_empty() => col.to_owned(),
        _ => "input".to_owned(),
    }
}

pub type AppResult<T> = Result<T, AppError>;
