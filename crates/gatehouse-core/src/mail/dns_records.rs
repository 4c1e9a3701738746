//! The three DNS TXT records a sending domain publishes, read as far as the domain check needs
//! them: SPF (RFC 7208 section 4.6: space-separated terms), and the tag lists of DKIM keys
//! (RFC 6376 section 3.6.1) and DMARC policies (RFC 7489 section 6.3). Nothing here evaluates a
//! record for a sender; macros are carried as text.

/// A host name as the check accepts it: ASCII (IDNs in their `xn--` form), 2 to 127 labels of 1
/// to 63 letters, digits and hyphens (no hyphen at either end), at most 253 characters; one
/// trailing dot allowed. Returned lower-cased without the dot.
pub fn domain_name(raw: &str) -> Result<String, String> {
    name_with(raw, false)
}

/// Like [`domain_name`], also allowing `_` in labels, as names that are not hosts use it
/// (`_spf.mailer.example`, `_dmarc.example.com`).
pub fn dns_name(raw: &str) -> Result<String, String> {
    name_with(raw, true)
}

fn name_with(raw: &str, underscore: bool) -> Result<String, String> {
    let name = raw.strip_suffix('.').unwrap_or(raw).to_ascii_lowercase();
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters".to_owned());
    }
    let labels: Vec<&str> = name.split('.').collect();
    if labels.len() < 2 {
        return Err("must have at least two labels (example.com)".to_owned());
    }
    for label in labels {
        let ok = (1..=63).contains(&label.len())
            && label.bytes().all(|b| {
                b.is_ascii_lowercase()
                    || b.is_ascii_digit()
                    || b == b'-'
                    || (underscore && b == b'_')
            })
            && !label.starts_with('-')
            && !label.ends_with('-');
        if !ok {
            return Err(format!(
                "label {label:?} must be 1 to 63 letters, digits or hyphens, not starting or \
                 ending with a hyphen (IDNs in their xn-- form)"
            ));
        }
    }
    Ok(name)
}

/// An SPF qualifier (RFC 7208 section 4.6.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Pass,
    Fail,
    SoftFail,
    Neutral,
}

/// One SPF term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpfTerm {
    /// A mechanism: its qualifier, lower-cased name (`all`, `include`, `a`, `mx`, `ptr`, `ip4`,
    /// `ip6`, `exists`) and the text after `:` or `/` if any.
    Mechanism {
        qualifier: Qualifier,
        name: String,
        value: Option<String>,
    },
    /// A modifier `name=value` (`redirect`, `exp`, or one the RFC lets receivers ignore).
    Modifier { name: String, value: String },
}

impl SpfTerm {
    /// Whether evaluating the term costs a DNS lookup (RFC 7208 section 4.6.4).
    #[must_use]
    pub fn costs_a_lookup(&self) -> bool {
        match self {
            Self::Mechanism { name, .. } => {
                matches!(name.as_str(), "include" | "a" | "mx" | "ptr" | "exists")
            }
            Self::Modifier { name, .. } => name == "redirect",
        }
    }
}

const MECHANISMS: &[&str] = &["all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists"];

/// Whether a TXT record is an SPF record: `v=spf1` alone or followed by a space.
#[must_use]
pub fn is_spf(txt: &str) -> bool {
    let mut words = txt.split(' ');
    words
        .next()
        .is_some_and(|v| v.eq_ignore_ascii_case("v=spf1"))
}

/// The terms of an SPF record. An unknown mechanism, a mechanism that needs a value and has none
/// (`include`, `exists`, `ip4`, `ip6`), or a malformed term is an error naming the term:
/// receivers give `permerror` for it.
pub fn spf_terms(txt: &str) -> Result<Vec<SpfTerm>, String> {
    if !is_spf(txt) {
        return Err("does not start with v=spf1".to_owned());
    }
    let mut out = Vec::new();
    for term in txt.split([' ', '\t']).skip(1).filter(|t| !t.is_empty()) {
        out.push(spf_term(term).ok_or_else(|| format!("the term {term:?} is not valid SPF"))?);
    }
    Ok(out)
}

fn spf_term(term: &str) -> Option<SpfTerm> {
    let name_end = term.find([':', '/', '=']).unwrap_or(term.len());
    let (head, rest) = term.split_at(name_end);
    if let Some(value) = rest.strip_prefix('=') {
        // A modifier: name = ALPHA *( ALPHA / DIGIT / "-" / "_" / "." ).
        let ok = head.starts_with(|c: char| c.is_ascii_alphabetic())
            && head
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        return ok.then(|| SpfTerm::Modifier {
            name: head.to_ascii_lowercase(),
            value: value.to_owned(),
        });
    }
    let (qualifier, name) = match head.chars().next()? {
        '+' => (Qualifier::Pass, head.get(1..)?),
        '-' => (Qualifier::Fail, head.get(1..)?),
        '~' => (Qualifier::SoftFail, head.get(1..)?),
        '?' => (Qualifier::Neutral, head.get(1..)?),
        _ => (Qualifier::Pass, head),
    };
    let name = name.to_ascii_lowercase();
    if !MECHANISMS.contains(&name.as_str()) {
        return None;
    }
    let value = match rest.strip_prefix(':') {
        Some("") => return None,
        Some(v) => Some(v.to_owned()),
        None if rest.is_empty() => None,
        // `a/24`, `mx/24//64`: a CIDR length straight after the name.
        None => Some(rest.to_owned()),
    };
    let needs_value = matches!(name.as_str(), "include" | "exists" | "ip4" | "ip6");
    let takes_value = name != "all";
    if (needs_value && value.is_none()) || (!takes_value && value.is_some()) {
        return None;
    }
    Some(SpfTerm::Mechanism {
        qualifier,
        name,
        value,
    })
}

/// A tag list (`tag=value; tag=value`): tags lower-cased, values trimmed. A tag without `=`, an
/// empty tag name, or a tag given twice is an error (RFC 6376 section 3.2: a duplicate makes
/// the whole list invalid).
pub fn tag_list(txt: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for spec in txt.split(';') {
        if spec.trim().is_empty() {
            continue;
        }
        let (tag, value) = spec
            .split_once('=')
            .ok_or_else(|| format!("{:?} is not tag=value", spec.trim()))?;
        let tag = tag.trim().to_ascii_lowercase();
        let tag_ok = tag.starts_with(|c: char| c.is_ascii_alphabetic())
            && tag.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !tag_ok {
            return Err(format!("{tag:?} is not a tag name"));
        }
        if out.iter().any(|(t, _)| *t == tag) {
            return Err(format!("the tag {tag:?} appears twice"));
        }
        out.push((tag, value.trim().to_owned()));
    }
    Ok(out)
}

/// The value of `tag` in a parsed tag list.
#[must_use]
pub fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter()
        .find(|(t, _)| t == name)
        .map(|(_, v)| v.as_str())
}

/// Whether a TXT record is a DMARC policy record: its first tag is `v=DMARC1`.
#[must_use]
pub fn is_dmarc(txt: &str) -> bool {
    txt.split(';')
        .next()
        .and_then(|first| first.split_once('='))
        .is_some_and(|(t, v)| t.trim().eq_ignore_ascii_case("v") && v.trim() == "DMARC1")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn spf_terms_are_read_with_their_qualifiers_and_values() {
        let terms =
            spf_terms("v=spf1 ip4:192.0.2.0/24 a/24 include:_spf.mailer.test ~all exp=x.test")
                .unwrap();
        assert_eq!(terms.len(), 5);
        assert_eq!(
            terms[2],
            SpfTerm::Mechanism {
                qualifier: Qualifier::Pass,
                name: "include".into(),
                value: Some("_spf.mailer.test".into())
            }
        );
        assert_eq!(
            terms[3],
            SpfTerm::Mechanism {
                qualifier: Qualifier::SoftFail,
                name: "all".into(),
                value: None
            }
        );
        assert_eq!(terms.iter().filter(|t| t.costs_a_lookup()).count(), 2);
        for bad in [
            "v=spf1 include",
            "v=spf1 include:",
            "v=spf1 bogus:x",
            "v=spf1 -all:x",
            "v=spf1 =x",
            "v=spf2 -all",
        ] {
            assert!(spf_terms(bad).is_err(), "{bad}");
        }
        assert!(is_spf("v=spf1") && is_spf("V=SPF1 -all") && !is_spf("v=spf10 -all"));
    }

    #[test]
    fn tag_lists_refuse_duplicates_and_bare_words() {
        let t = tag_list("v=DKIM1; k=rsa;\tp=MIIB AQAB ; ").unwrap();
        assert_eq!(tag(&t, "p"), Some("MIIB AQAB"));
        assert!(tag_list("v=DKIM1; p=a; p=b").is_err());
        assert!(tag_list("v=DKIM1; junk").is_err());
        assert!(is_dmarc("v=DMARC1; p=none") && !is_dmarc("p=none; v=DMARC1"));
    }

    #[test]
    fn domain_names_are_bounded_and_lower_cased() {
        assert_eq!(
            domain_name("Mail.Example.COM.").unwrap(),
            "mail.example.com"
        );
        let long = format!("{}.com", "a".repeat(64));
        for bad in [
            "",
            "com",
            "-a.com",
            "a-.com",
            "a..com",
            "ex ample.com",
            "é.com",
            &long,
        ] {
            assert!(domain_name(bad).is_err(), "{bad}");
        }
        let too_long = vec!["a".repeat(60); 5].join(".");
        assert!(too_long.len() > 253 && domain_name(&too_long).is_err());
        assert!(domain_name("_spf.mailer.test").is_err());
        assert_eq!(dns_name("_spf.Mailer.test").unwrap(), "_spf.mailer.test");
    }

    proptest! {
        #[test]
        fn the_parsers_never_panic_and_accepted_names_are_canonical(s in "\\PC{0,300}") {
            let _ = spf_terms(&s);
            let _ = tag_list(&s);
            let _ = is_dmarc(&s);
            if let Ok(name) = domain_name(&s) {
                prop_assert!(name.len() <= 253);
                prop_assert_eq!(domain_name(&name).ok(), Some(name.clone()));
            }
        }
    }
}
