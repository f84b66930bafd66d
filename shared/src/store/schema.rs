//! The physical table: key attributes, secondary indexes and TTL, in one place for the
//! stores, the table creation code and the infrastructure template's cross-check.

/// A global secondary index: its name and the attributes that form its key. Items
/// without both attributes are not in the index (a sparse index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub pk: &'static str,
    pub sk: &'static str,
}

/// Unverified accounts by the day they were created, for the cleanup job.
pub const UNVERIFIED_BY_DAY: Index = Index {
    name: "gsi1",
    pk: "gsi1pk",
    sk: "gsi1sk",
};

/// Items that hot paths list by query (sessions, login history) by the day they expire,
/// so the cleanup job can delete the ones DynamoDB's lazy TTL sweep has not reached.
pub const EXPIRING_BY_DAY: Index = Index {
    name: "gsi2",
    pk: "gsi2pk",
    sk: "gsi2sk",
};

/// Every secondary index of the table.
pub const INDEXES: &[Index] = &[UNVERIFIED_BY_DAY, EXPIRING_BY_DAY];

/// The partition of [`EXPIRING_BY_DAY`] for a Unix time.
pub fn expiring_day(expires_at: i64) -> String {
    format!("EXPIRES#{}", expires_at.div_euclid(86_400))
}

/// Puts an item that hot paths list into [`EXPIRING_BY_DAY`]; its `expires_at` must be
/// set already.
pub fn index_expiry(item: super::Item) -> super::Item {
    match item.n(super::EXPIRES_AT) {
        Some(expires_at) => {
            let sk = format!(
                "{expires_at:012}#{}#{}",
                item.s(super::PK).unwrap_or_default(),
                item.s(super::SK).unwrap_or_default()
            );
            item.with(EXPIRING_BY_DAY.pk, expiring_day(expires_at))
                .with(EXPIRING_BY_DAY.sk, sk)
        }
        None => item,
    }
}

/// Looks up an index by name.
pub fn index(name: &str) -> Option<&'static Index> {
    INDEXES.iter().find(|index| index.name == name)
}
