//! The little URL handling the filter needs: splitting configured http(s) URLs into scheme,
//! authority and path. Configured URLs only; request data never goes through here.

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpUrl {
    pub scheme: String,
    pub authority: String,
    /// Always starts with `/`.
    pub path_and_query: String,
}

impl HttpUrl {
    pub fn parse(s: &str) -> Result<HttpUrl, String> {
        // Quotes and backslashes would break the quoted-string in a WWW-Authenticate challenge.
        if s.bytes().any(|b| {
            b.is_ascii_whitespace()
                || b.is_ascii_control()
                || !b.is_ascii()
                || b"\"\\<>".contains(&b)
        }) {
            return Err(
                "must be an absolute http(s) URL without spaces, quotes or backslashes".into()
            );
        }
        let (scheme, rest) =
            s.split_once("://").ok_or_else(|| "must be an absolute http(s) URL".to_string())?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(format!("scheme `{scheme}` is not http or https"));
        }
        if rest.contains('#') {
            return Err("must not contain a fragment".into());
        }
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.is_empty() {
            return Err("has no host".into());
        }
        if authority.contains('@') {
            return Err("must not contain user information".into());
        }
        let path_and_query = if path.is_empty() {
            "/".to_string()
        } else if path.starts_with('?') {
            format!("/{path}")
        } else {
            path.to_string()
        };
        Ok(HttpUrl { scheme, authority: authority.to_string(), path_and_query })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits() {
        let u = HttpUrl::parse("http://localhost:8080/realms/my-realm/certs?x=1").unwrap();
        assert_eq!(u.scheme, "http");
        assert_eq!(u.authority, "localhost:8080");
        assert_eq!(u.path_and_query, "/realms/my-realm/certs?x=1");
        let u = HttpUrl::parse("HTTPS://example.com").unwrap();
        assert_eq!(u.scheme, "https");
        assert_eq!(u.path_and_query, "/");
    }

    #[test]
    fn refuses() {
        for bad in [
            "localhost:8080/x",
            "ftp://x/y",
            "http:///x",
            "http://u:p@host/x",
            "http://host/x#frag",
            "http://host/a b",
            "http://host/a\"b",
            "",
        ] {
            assert!(HttpUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
