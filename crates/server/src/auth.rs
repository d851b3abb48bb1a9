//! Bearer tokens and their roles: the tokens file, finding the caller of a request, and
//! what each role may do.

use std::fmt;
use std::path::Path;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// Read runs, records, snapshots, the feed, stats and metrics; verify.
    Read,
    /// Everything `read` may, and the operator actions: start, respond, deliver, pause,
    /// unpause, cancel, fork, snapshot.
    Operate,
}

impl Role {
    /// The role's name in the tokens file: `read` or `operate`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Operate => "operate",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The shortest secret accepted: 16 characters.
pub const SECRET_CHARS_MIN: usize = 16;

/// A tokens file that cannot be used, with the line that is wrong.
#[derive(Debug, thiserror::Error)]
pub enum TokensError {
    /// The file could not be read.
    #[error("cannot read the tokens file {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not `NAME ROLE SECRET`, or one of the three is not acceptable.
    #[error("tokens file line {line}: {reason}")]
    Line {
        /// The line, from 1.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// No token in the file.
    #[error("the tokens file holds no token")]
    Empty,
}

/// One token: its name (recorded in the ledger as who acted), its role, and the blake3
/// digest of its secret (the secret itself is not kept).
#[derive(Clone)]
struct Token {
    name: String,
    role: Role,
    digest: blake3::Hash,
}

/// The tokens a server accepts. The file has one token a line, `NAME ROLE SECRET`
/// (`ROLE` is `read` or `operate`; `#` starts a comment):
///
/// ```
/// let tokens = ledgerflow_server::Tokens::parse(
///     "# who    role     secret\n\
///      alice    operate  4f9c2d1e8a7b6c5d4e3f\n\
///      grafana  read     a1b2c3d4e5f6a7b8c9d0\n",
/// )?;
/// assert_eq!(tokens.len(), 2);
/// # Ok::<(), ledgerflow_server::TokensError>(())
/// ```
#[derive(Clone)]
pub struct Tokens {
    tokens: Vec<Token>,
}

impl fmt::Debug for Tokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the digests: a debug print of a config must not help anyone guess.
        let names: Vec<(&str, Role)> = self
            .tokens
            .iter()
            .map(|t| (t.name.as_str(), t.role))
            .collect();
        f.debug_struct("Tokens").field("tokens", &names).finish()
    }
}

impl Tokens {
    /// Reads a tokens file.
    pub fn from_file(path: &Path) -> Result<Tokens, TokensError> {
        let text = std::fs::read_to_string(path).map_err(|source| TokensError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Tokens::parse(&text)
    }

    /// Parses the text of a tokens file.
    pub fn parse(text: &str) -> Result<Tokens, TokensError> {
        let mut tokens: Vec<Token> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = raw.split('#').next().unwrap_or_default().trim();
            if content.is_empty() {
                continue;
            }
            let bad = |reason: String| TokensError::Line { line, reason };
            let fields: Vec<&str> = content.split_whitespace().collect();
            let [name, role, secret] = fields.as_slice() else {
                return Err(bad(format!(
                    "expected NAME ROLE SECRET, found {} field(s)",
                    fields.len()
                )));
            };
            if name.len() > 64
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.@".contains(&b))
            {
                return Err(bad(format!(
                    "token name {name:?}: use 1 to 64 letters, digits or - _ . @"
                )));
            }
            let role = match *role {
                "read" => Role::Read,
                "operate" => Role::Operate,
                other => return Err(bad(format!("role {other:?}: expected read or operate"))),
            };
            if secret.chars().count() < SECRET_CHARS_MIN {
                return Err(bad(format!(
                    "the secret of {name:?} is shorter than {SECRET_CHARS_MIN} characters"
                )));
            }
            if tokens.iter().any(|t| t.name == *name) {
                return Err(bad(format!("token name {name:?} appears twice")));
            }
            let digest = blake3::hash(secret.as_bytes());
            if tokens.iter().any(|t| t.digest == digest) {
                return Err(bad(format!(
                    "the secret of {name:?} is another token's secret"
                )));
            }
            tokens.push(Token {
                name: (*name).to_owned(),
                role,
                digest,
            });
        }
        if tokens.is_empty() {
            return Err(TokensError::Empty);
        }
        Ok(Tokens { tokens })
    }

    /// How many tokens there are.
    pub fn len(&self) -> usize {
        self.tokens.len()
    }

    /// Whether there are none (never true for a parsed file).
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    /// The caller whose secret this is. Secrets are compared by their blake3 digests, in
    /// constant time.
    pub(crate) fn caller(&self, secret: &str) -> Option<Caller> {
        let digest = blake3::hash(secret.as_bytes());
        self.tokens
            .iter()
            .find(|t| t.digest == digest)
            .map(|t| Caller {
                name: Some(t.name.clone()),
                role: t.role,
            })
    }
}

/// Who made a request: a token's name and role, or, on a server without tokens (loopback
/// only), an unnamed caller who may operate.
#[derive(Clone, Debug)]
pub struct Caller {
    /// The token's name; `None` without tokens.
    pub name: Option<String>,
    /// What it may do.
    pub role: Role,
}

impl Caller {
    /// The caller of a server that has no tokens.
    pub(crate) fn unnamed() -> Caller {
        Caller {
            name: None,
            role: Role::Operate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tokens_file_is_parsed_and_checked() {
        let tokens = Tokens::parse("a operate 0123456789abcdef # ops\n\nb read fedcba9876543210\n")
            .expect("valid");
        let a = tokens.caller("0123456789abcdef").expect("a");
        assert_eq!((a.name.as_deref(), a.role), (Some("a"), Role::Operate));
        assert_eq!(
            tokens.caller("fedcba9876543210").map(|c| c.role),
            Some(Role::Read)
        );
        assert!(tokens.caller("0123456789abcdeX").is_none());
        assert!(!format!("{tokens:?}").contains("0123"));
    }

    #[test]
    fn bad_lines_name_what_is_wrong() {
        let err = |text: &str| Tokens::parse(text).err().map(|e| e.to_string());
        assert_eq!(
            err("a operate short").as_deref(),
            Some("tokens file line 1: the secret of \"a\" is shorter than 16 characters")
        );
        assert!(err("a admin 0123456789abcdef").is_some_and(|e| e.contains("admin")));
        assert!(err("a read").is_some_and(|e| e.contains("2 field")));
        assert!(err("a read 0123456789abcdef\na read 0123456789abcdeg")
            .is_some_and(|e| e.contains("line 2") && e.contains("twice")));
        assert!(err("a read 0123456789abcdef\nb read 0123456789abcdef")
            .is_some_and(|e| e.contains("another token")));
        assert!(err("bad/name read 0123456789abcdef").is_some_and(|e| e.contains("bad/name")));
        assert_eq!(
            err("# nothing\n").as_deref(),
            Some("the tokens file holds no token")
        );
    }
}
