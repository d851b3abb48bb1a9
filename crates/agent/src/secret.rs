//! API keys and tokens: held so that they cannot reach the ledger, a log or an error by
//! accident (no `Display`, no `Serialize`, a `Debug` that prints stars), and scrubbed from
//! any peer's answer quoted in an error.

use std::fmt;

/// A secret (an API key, a bearer token). Sent only in request headers; never in a
/// payload, a record, a message or a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret in environment variable `name`, if set and not empty.
    pub fn from_env(name: &str) -> Option<Secret> {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .map(Secret)
    }

    /// The value itself, for a request header.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of the secret replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        if self.0.is_empty() {
            return text.to_owned();
        }
        text.replace(&self.0, "***")
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// `url` with any user info (`user:password@`) replaced by `***@`, for messages.
pub(crate) fn url_for_messages(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let tail = tail.split(['?', '#']).next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://***@{host}{tail}"),
        None => format!("{scheme}://{authority}{tail}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints_and_is_scrubbed_from_text() {
        let key = Secret::new("sk-live-abc123");
        assert_eq!(format!("{key:?}"), "Secret(***)");
        assert_eq!(
            key.scrub("Incorrect API key provided: sk-live-abc123."),
            "Incorrect API key provided: ***."
        );
        assert_eq!(
            url_for_messages("https://user:pw@api.example.com/v1?key=k#x"),
            "https://***@api.example.com/v1"
        );
        assert_eq!(
            url_for_messages("http://127.0.0.1:8080/v1"),
            "http://127.0.0.1:8080/v1"
        );
    }
}
