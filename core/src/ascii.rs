//! ASCII case-insensitive matching, for everything the core compares that way: DNS names (RFC 4343),
//! certificate issuer names (RFC 5280 7.1) and HTTP header values.

/// Whether `haystack` contains `needle`, ignoring ASCII case. An empty needle matches nothing: a
/// configured empty name or token must not match every text.
pub(crate) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    let (h, n) = (haystack.as_bytes(), needle.as_bytes());
    !n.is_empty() && h.windows(n.len()).any(|w| w.eq_ignore_ascii_case(n))
}

/// Whether the dotted name `name` is `domain` or lies under it, label by label, ignoring ASCII case
/// (`LHR-efz.ms-acdc.office.com` is under `office.com`, `xoffice.com` is not). Neither has a final dot.
pub(crate) fn is_at_or_under(name: &[u8], domain: &[u8]) -> bool {
    let Some(split) = name.len().checked_sub(domain.len()) else {
        return false;
    };
    let (head, tail) = name.split_at(split);
    tail.eq_ignore_ascii_case(domain) && (head.is_empty() || head.last() == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn containment_ignores_case_and_an_empty_needle_matches_nothing() {
        assert!(contains_ignore_case("1.1 proxy (Squid/5.7)", "squid"));
        assert!(!contains_ignore_case("squi", "squid"));
        assert!(!contains_ignore_case("anything", ""));
    }

    #[test]
    fn a_domain_matches_itself_and_names_under_it_only() {
        let under = |n: &str, d: &str| is_at_or_under(n.as_bytes(), d.as_bytes());
        assert!(under("office.com", "OFFICE.com"));
        assert!(under("LHR-efz.ms-acdc.office.com", "office.com"));
        assert!(!under("xoffice.com", "office.com"));
        assert!(!under("com", "office.com"));
    }
}
