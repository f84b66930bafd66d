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

/// Every secondary index of the table.
pub const INDEXES: &[Index] = &[UNVERIFIED_BY_DAY];

/// Looks up an index by name.
pub fn index(name: &str) -> Option<&'static Index> {
    INDEXES.iter().find(|index| index.name == name)
}
