//! The events the store applies. Every ingestion path (generic API, webhooks)
//! builds these; nothing downstream re-validates them.

use crate::model::time::Millis;

/// Where an event came in: the `source` label of the self-metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Ingress {
    Generic,
    Github,
    Gitlab,
    Jira,
    Sentry,
}

impl Ingress {
    /// Every ingress, for initialising counters at 0.
    pub const ALL: [Ingress; 5] = [
        Ingress::Generic,
        Ingress::Github,
        Ingress::Gitlab,
        Ingress::Jira,
        Ingress::Sentry,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Ingress::Generic => "generic",
            Ingress::Github => "github",
            Ingress::Gitlab => "gitlab",
            Ingress::Jira => "jira",
            Ingress::Sentry => "sentry",
        }
    }
}

/// Validity of a defect (docs/semantics.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Valid,
    Invalid,
    Duplicate,
}

impl Status {
    /// The stored and accepted spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Valid => "valid",
            Status::Invalid => "invalid",
            Status::Duplicate => "duplicate",
        }
    }

    /// Parses the stored or accepted spelling.
    pub fn parse(v: &str) -> Option<Self> {
        match v {
            "valid" => Some(Status::Valid),
            "invalid" => Some(Status::Invalid),
            "duplicate" => Some(Status::Duplicate),
            _ => None,
        }
    }
}

/// Accepted `detected_by` values.
pub const DETECTORS: [&str; 3] = ["user", "monitoring", "other"];

/// Which product a defect or release belongs to, as the source named it: the
/// configured mapping turns `(kind, namespace)` into a product at store time, so
/// a changed mapping re-keys stored rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRef {
    /// `""` for the generic API, else the source kind (`github`, `jira`, …).
    pub kind: String,
    /// The product (generic API) or the source's namespace (repository, project).
    pub namespace: String,
}

/// The classification of a defect: everything a count depends on.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Classification {
    /// Stage as the source gave it; adapters may pass names the pipeline does not
    /// know, which are stored and shown as data quality, never counted elsewhere.
    pub stage: Option<String>,
    /// Raw release name; `None` = unattributed.
    pub release: Option<String>,
    pub detected_by: Option<String>,
    pub cause: Option<String>,
    pub severity: Option<String>,
    pub team: Option<String>,
}

/// What an event does to its defect.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// Create or replace the defect's state.
    Upsert {
        class: Classification,
        status: Status,
        /// When it was found; `None` keeps the stored time (or now, when new).
        found_at: Option<Millis>,
    },
    /// Deleted at its source: leaves every count, kept as a tombstone.
    Delete,
    /// A deleted row restored as it was stored (the `import` of an export):
    /// ordered like [`Change::Delete`], but the tombstone keeps the values it
    /// held (a release a later event keeps, a stage), not those of the row
    /// it replaces.
    Restore {
        class: Classification,
        status: Status,
        /// When it was found; `None` keeps the stored time (or now, when new).
        found_at: Option<Millis>,
    },
    /// No longer a defect at its source (its bug label was removed, its type
    /// changed): applied like [`Change::Delete`] when the defect is stored;
    /// otherwise nothing is stored and the event is counted as ignored.
    Retract,
    /// Like [`Change::Upsert`], but a `None` release keeps the stored one: for
    /// sources whose events never carry the release (Sentry issues), attributed
    /// apart by [`Change::AttachRelease`].
    UpsertKeepRelease {
        class: Classification,
        status: Status,
        found_at: Option<Millis>,
    },
    /// Sets the release of a defect that has none yet; the first one wins. It
    /// does not take part in ordering (the defect's `updated_at` is kept). When
    /// the defect is not stored yet, a tombstone holding only the release is
    /// stored, so the event that announces the defect later finds it.
    AttachRelease { release: String },
}

/// One defect event.
#[derive(Debug, Clone, PartialEq)]
pub struct DefectEvent {
    /// Namespace of `id` (`generic`, `jira-payments`, `github`, …).
    pub source: String,
    pub id: String,
    pub product: ProductRef,
    pub change: Change,
    /// Orders updates; `None` = time received.
    pub updated_at: Option<Millis>,
    /// The records this one says it is the same defect as (docs/semantics.md,
    /// "Linked records"): `Some` replaces the links the record holds, `None`
    /// keeps them. Applied with the event, never when the event is stale.
    pub links: Option<Vec<LinkRef>>,
}

/// One record another record links to: the same defect in another source.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LinkRef {
    pub source: String,
    pub id: String,
}

/// Most links one record may hold; an event with more is refused by the
/// generic API, and an adapter keeps the first ones.
pub const MAX_LINKS_PER_RECORD: usize = 32;

/// Most records (stored or only named by a link) one link group may join:
/// a link that would make a group larger is refused (stored nowhere, counted
/// in the batch's outcome), so one description full of URLs cannot fold an
/// organisation's defects into one.
pub const MAX_GROUP_RECORDS: usize = 64;

/// A release time.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseEvent {
    pub product: ProductRef,
    /// Raw release name.
    pub release: String,
    pub released_at: Millis,
}

/// Longest accepted defect id.
pub const MAX_ID_LEN: usize = 256;
