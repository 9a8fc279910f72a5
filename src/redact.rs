//! Keeps credentials out of everything the tool prints or records.

/// Replaces the password of a connection URL with `****`.
///
/// `mongodb://user:secret@host/db` becomes `mongodb://user:****@host/db`.
/// Anything that is not a URL with credentials comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let rest = &url[scheme_end + 3..];
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return url.to_string();
    };
    let userinfo = &authority[..at];
    let user = userinfo.split(':').next().unwrap_or("");
    format!("{}{}:****{}", &url[..scheme_end + 3], user, &rest[at..])
}

/// Redacts every URL-looking word of a free text (an error message, an argument list).
pub fn redact_text(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            if word.contains("://") {
                let trimmed = word.trim_end();
                format!("{}{}", redact_url(trimmed), &word[trimmed.len()..])
            } else {
                word.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_masked_and_the_rest_kept() {
        assert_eq!(
            redact_url("mongodb://admin:s3cr@t@db1:27017,db2/test?authSource=admin"),
            "mongodb://admin:****@db1:27017,db2/test?authSource=admin"
        );
        assert_eq!(
            redact_url("mongodb+srv://u:p@cluster0.example.net"),
            "mongodb+srv://u:****@cluster0.example.net"
        );
        assert_eq!(
            redact_url("mongodb://localhost:27017"),
            "mongodb://localhost:27017"
        );
        assert_eq!(
            redact_url("sqlite:./edn-migrate.db"),
            "sqlite:./edn-migrate.db"
        );
    }

    #[test]
    fn urls_inside_text_are_masked() {
        assert_eq!(
            redact_text("cannot reach mongodb://a:b@h:1/x now"),
            "cannot reach mongodb://a:****@h:1/x now"
        );
    }
}
