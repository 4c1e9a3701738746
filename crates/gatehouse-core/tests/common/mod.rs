//! What the repository-document tests share.

/// Whether `source` defines a function `name` (`fn name(` or `fn name<`, `fn` standing alone).
pub fn defines(source: &str, name: &str) -> bool {
    ["(", "<"].iter().any(|open| {
        let needle = format!("fn {name}{open}");
        source.match_indices(&needle).any(|(at, _)| {
            source
                .get(..at)
                .and_then(|before| before.chars().next_back())
                .is_none_or(|c| !is_word(c))
        })
    })
}

pub fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}
