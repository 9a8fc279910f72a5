//! Keeps credentials out of everything the tool prints or records (stdout,
//! stderr, logs, run records, reports, backup manifests).
//!
//! A MongoDB connection string carries secrets in two places: the password
//! of its user-info, and query options that hold passwords, keys or tokens
//! (`tlsCertificateKeyFilePassword`, `proxyPassword`, the
//! `AWS_SESSION_TOKEN` of `authMechanismProperties`, …). Option names are
//! matched as the driver matches them (any case, percent-decoded), and an
//! option is masked when its name *says* it is secret, so an option added to
//! the driver later is masked too.

use percent_encoding::percent_decode_str;

/// What a secret is replaced with.
pub const MASK: &str = "****";

/// Words in an option name that mark its value as secret.
const SECRET_WORDS: [&str; 5] = ["password", "passwd", "secret", "token", "passphrase"];

/// `authMechanismProperties` entries known to hold no secret (names of
/// services, realms, environments); every other entry's value is masked.
const PLAIN_PROPERTIES: [&str; 6] = [
    "SERVICE_NAME",
    "SERVICE_REALM",
    "SERVICE_HOST",
    "CANONICALIZE_HOST_NAME",
    "ENVIRONMENT",
    "TOKEN_RESOURCE",
];

/// Masks every secret of a connection URL and keeps the rest readable.
///
/// `mongodb://user:secret@host/db?tls=true&proxyPassword=p` becomes
/// `mongodb://user:****@host/db?tls=true&proxyPassword=****`.
/// Anything that is not a URL comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Some(scheme_end) = url.find("://") else {
        return url.to_string();
    };
    let (scheme, rest) = url.split_at(scheme_end + 3);
    let (before_query, query) = match rest.find('?') {
        Some(q) => (&rest[..q], Some(&rest[q + 1..])),
        None => (rest, None),
    };
    let mut out = String::with_capacity(url.len());
    out.push_str(scheme);
    out.push_str(&mask_userinfo(before_query));
    if let Some(query) = query {
        out.push('?');
        out.push_str(&mask_options(query));
    }
    out
}

/// Redacts every URL and every `name=value` secret option in a free text
/// (an error message, an argument list, a log line).
pub fn redact_text(text: &str) -> String {
    text.split_inclusive(char::is_whitespace)
        .map(|word| {
            let trimmed = word.trim_end();
            let tail = &word[trimmed.len()..];
            format!("{}{tail}", redact_word(trimmed))
        })
        .collect()
}

/// Whether a connection-string option holds a secret, by its name.
pub fn is_secret_option(name: &str) -> bool {
    let name = decode(name).to_ascii_lowercase();
    SECRET_WORDS.iter().any(|w| name.contains(w))
}

fn redact_word(word: &str) -> String {
    if word.contains("://") {
        redact_url(word)
    } else if word.contains('=') {
        match word.rfind('?') {
            Some(q) => format!("{}?{}", &word[..q], mask_options(&word[q + 1..])),
            None => mask_options(word),
        }
    } else {
        word.to_string()
    }
}

/// `user:password@hosts/db` → `user:****@hosts/db`. The user-info ends at the
/// last `@` before the query, so a password with a raw `/` or `@` is still
/// masked whole.
fn mask_userinfo(authority_and_path: &str) -> String {
    let Some(at) = authority_and_path.rfind('@') else {
        return authority_and_path.to_string();
    };
    let (userinfo, hosts) = authority_and_path.split_at(at);
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{user}:{MASK}{hosts}"),
        None => authority_and_path.to_string(),
    }
}

/// Masks the secret options of a query string (`a=1&proxyPassword=x`).
fn mask_options(query: &str) -> String {
    query
        .split_inclusive(['&', ';'])
        .map(|pair| {
            let (pair, sep) = match pair.strip_suffix(['&', ';']) {
                Some(p) => (p, &pair[p.len()..]),
                None => (pair, ""),
            };
            format!("{}{sep}", mask_pair(pair))
        })
        .collect()
}

fn mask_pair(pair: &str) -> String {
    let Some((name, value)) = pair.split_once('=') else {
        return pair.to_string();
    };
    if is_secret_option(name) {
        format!("{name}={MASK}")
    } else if decode(name).eq_ignore_ascii_case("authMechanismProperties") {
        format!("{name}={}", mask_properties(value))
    } else {
        pair.to_string()
    }
}

/// `AWS_SESSION_TOKEN:abc,SERVICE_NAME:x` → `AWS_SESSION_TOKEN:****,SERVICE_NAME:x`.
fn mask_properties(value: &str) -> String {
    decode(value)
        .split(',')
        .map(|entry| match entry.split_once(':') {
            Some((key, _)) if PLAIN_PROPERTIES.contains(&key) => entry.to_string(),
            Some((key, _)) => format!("{key}:{MASK}"),
            None => MASK.to_string(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

fn decode(s: &str) -> String {
    percent_decode_str(s).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One URL per kind of secret a connection string can carry, with the
    /// secret value in it.
    const KINDS: [(&str, &str); 7] = [
        ("mongodb://admin:pw-SECRET@db1:27017,db2/test?authSource=admin", "pw-SECRET"),
        ("mongodb://db1/?tls=true&tlsCertificateKeyFile=/k.pem&tlsCertificateKeyFilePassword=kp-SECRET", "kp-SECRET"),
        ("mongodb://db1/?authMechanism=MONGODB-AWS&authMechanismProperties=AWS_SESSION_TOKEN:tok-SECRET", "tok-SECRET"),
        ("mongodb://db1/?authMechanismProperties=AWS_SESSION_TOKEN%3Atok%2BSECRET", "tok%2BSECRET"),
        ("mongodb://db1/?proxyHost=p&proxyUsername=u&proxyPassword=px-SECRET", "px-SECRET"),
        ("mongodb://db1/?sslPEMKeyPassword=legacy-SECRET&w=1", "legacy-SECRET"),
        ("mongodb://db1/?PROXYPASSWORD=upper-SECRET", "upper-SECRET"),
    ];

    #[test]
    fn every_kind_of_secret_is_masked() {
        for (url, secret) in KINDS {
            let redacted = redact_url(url);
            assert!(!redacted.contains(secret), "{url} → {redacted}");
            let decoded = decode(secret);
            assert!(!redacted.contains(&decoded), "{url} → {redacted}");
            assert!(redacted.contains(MASK), "{url} → {redacted}");
            let text = redact_text(&format!("cannot reach {url} (timeout)"));
            assert!(!text.contains(secret), "{text}");
        }
    }

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
    fn a_password_with_a_raw_slash_is_masked_whole() {
        assert_eq!(
            redact_url("mongodb://u:pa/ss@h/db"),
            "mongodb://u:****@h/db"
        );
    }

    #[test]
    fn a_user_without_password_is_kept() {
        assert_eq!(
            redact_url("mongodb://CN=client@h/?authMechanism=MONGODB-X509"),
            "mongodb://CN=client@h/?authMechanism=MONGODB-X509"
        );
    }

    #[test]
    fn options_that_hold_no_secret_are_kept() {
        let url = "mongodb://h/?tls=true&tlsCAFile=/ca.pem&tlsCertificateKeyFile=/k.pem&compressors=zstd,zlib&proxyUsername=u&authMechanismProperties=SERVICE_NAME:mongo,CANONICALIZE_HOST_NAME:true";
        assert_eq!(redact_url(url), url);
    }

    #[test]
    fn only_the_secret_entries_of_mechanism_properties_are_masked() {
        assert_eq!(
            redact_url(
                "mongodb://h/?authMechanismProperties=SERVICE_NAME:m,AWS_SESSION_TOKEN:t,X:y"
            ),
            "mongodb://h/?authMechanismProperties=SERVICE_NAME:m,AWS_SESSION_TOKEN:****,X:****"
        );
    }

    #[test]
    fn urls_and_loose_options_inside_text_are_masked() {
        assert_eq!(
            redact_text("cannot reach mongodb://a:b@h:1/x now"),
            "cannot reach mongodb://a:****@h:1/x now"
        );
        assert_eq!(
            redact_text(
                "invalid tlsCertificateKeyFilePassword=abc\tand proxyPassword=d&proxyPort=1"
            ),
            "invalid tlsCertificateKeyFilePassword=****\tand proxyPassword=****&proxyPort=1"
        );
        assert_eq!(
            redact_text("--store=mongodb://u:p@h/?proxyPassword=x"),
            "--store=mongodb://u:****@h/?proxyPassword=****"
        );
    }
}
