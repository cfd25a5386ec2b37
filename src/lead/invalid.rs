//! Why a request body or a lead is refused, in domain terms: the kind of
//! problem and the field at fault. `lead` and `wire` return it; only
//! `api::error` turns it into a status and a code (contract §8), so nothing
//! below `api` knows HTTP.

/// The kinds of problem a body or lead can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidKind {
    /// Not JSON, too deep, or not an object where one is required.
    Malformed,
    /// A required field is absent.
    Missing,
    /// A field the contract does not define.
    Unknown,
    /// A field present with a value it may not have.
    Invalid,
    /// Personal data sent at the ping.
    PiiInPing,
    /// A well-formed body of a shape no request has, or a document kind
    /// leadx refuses (an XML DOCTYPE, an attribute on an element, mixed
    /// content): contract §8's 400 `bad_request`, not `malformed_json`,
    /// which would misname an XML body.
    BadRequest,
}

/// A refused body or lead: what is wrong, where, and a message for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    pub kind: InvalidKind,
    /// The path of the one field at fault (`lead.zip`), when there is one.
    pub field: Option<String>,
    pub message: String,
}

impl Invalid {
    pub fn malformed(message: impl Into<String>) -> Invalid {
        Invalid {
            kind: InvalidKind::Malformed,
            field: None,
            message: message.into(),
        }
    }

    pub fn bad_request(field: Option<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            kind: InvalidKind::BadRequest,
            field,
            message: message.into(),
        }
    }

    pub fn bad_value(field: impl Into<String>, message: impl Into<String>) -> Invalid {
        Invalid {
            kind: InvalidKind::Invalid,
            field: Some(field.into()),
            message: message.into(),
        }
    }

    pub fn missing(field: impl Into<String>) -> Invalid {
        let field = field.into();
        let message = format!("{field} is required");
        Invalid {
            kind: InvalidKind::Missing,
            field: Some(field),
            message,
        }
    }

    pub fn unknown(field: impl Into<String>) -> Invalid {
        let field = field.into();
        let message = format!("{field} is not a known field");
        Invalid {
            kind: InvalidKind::Unknown,
            field: Some(field),
            message,
        }
    }

    pub fn pii_in_ping(field: impl Into<String>) -> Invalid {
        let field = field.into();
        let message = format!("{field} is personal data and is only accepted at the post");
        Invalid {
            kind: InvalidKind::PiiInPing,
            field: Some(field),
            message,
        }
    }
}
