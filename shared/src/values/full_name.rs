//! A person's full name as they give it: shown in emails and on pages, so it may hold any
//! letters, marks, digits, punctuation and spaces, but nothing that changes how the text
//! around it is read.

use icu_normalizer::ComposingNormalizerBorrowed;
use icu_properties::CodePointMapData;
use icu_properties::props::GeneralCategory;

/// The longest full name kept, in characters (after NFC normalisation).
pub const MAX_CHARS: usize = 100;

/// A full name that passed [`FullName::parse`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FullName(String);

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an acceptable full name")]
pub struct InvalidFullName;

impl FullName {
    /// Trims and NFC-normalises `text`; `Ok(None)` when nothing is left. Refuses names
    /// over [`MAX_CHARS`] and names with control or format characters (Unicode categories
    /// Cc and Cf: bidi overrides and isolates such as U+202E and U+2066-2069, zero-width
    /// characters such as U+200B) or line and paragraph separators.
    pub fn parse(text: &str) -> Result<Option<FullName>, InvalidFullName> {
        let name = ComposingNormalizerBorrowed::new_nfc()
            .normalize(text.trim())
            .into_owned();
        if name.is_empty() {
            return Ok(None);
        }
        let categories = CodePointMapData::<GeneralCategory>::new();
        let refused = |c: char| {
            matches!(
                categories.get(c),
                GeneralCategory::Control
                    | GeneralCategory::Format
                    | GeneralCategory::LineSeparator
                    | GeneralCategory::ParagraphSeparator
            )
        };
        if name.chars().count() > MAX_CHARS || name.chars().any(refused) {
            return Err(InvalidFullName);
        }
        Ok(Some(FullName(name)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_in_any_script_are_kept_as_typed_but_composed() {
        let name = FullName::parse("  Zoë Ş. O'Brien-Núñez 李小龍 ")
            .unwrap()
            .unwrap();
        assert_eq!(name.as_str(), "Zoë Ş. O'Brien-Núñez 李小龍");
        let decomposed = FullName::parse("Zoe\u{308}").unwrap().unwrap();
        assert_eq!(decomposed.as_str(), "Zoë");
        assert_eq!(FullName::parse("   "), Ok(None));
    }

    #[test]
    fn control_format_and_bidi_characters_are_refused() {
        for bad in [
            "Alice\u{202e}gnp.exe",
            "Bob\u{2066}x\u{2069}",
            "Eve\u{200b}",
            "Mallory\u{feff}",
            "Tab\there",
            "Line\u{2028}break",
            "Null\u{0}",
        ] {
            assert_eq!(FullName::parse(bad), Err(InvalidFullName), "{bad:?}");
        }
    }

    #[test]
    fn a_name_holds_at_most_a_hundred_characters() {
        assert!(FullName::parse(&"é".repeat(MAX_CHARS)).is_ok());
        assert_eq!(
            FullName::parse(&"é".repeat(MAX_CHARS + 1)),
            Err(InvalidFullName)
        );
    }
}
