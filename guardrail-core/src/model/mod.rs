//! Who acts, from where, why, and what kind of action: the vocabulary of a decision.
//!
//! Owns `ActionKind`, `Endpoint`, `Purpose`, `Principal`, `Category`/`CategorySet`.
//! Uses no other room: every other room may use this one.

mod category;

pub use category::{Category, CategorySet};

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

/// Why a name is not one of a closed set (`kind`, `endpoint`, `purpose`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} `{value}`, expected one of: {expected}")]
pub struct UnknownName {
    /// Which set (`action kind`, `endpoint`, `purpose`).
    pub what: &'static str,
    /// The name given.
    pub value: String,
    /// The accepted names.
    pub expected: &'static str,
}

macro_rules! closed_enum {
    (
        $(#[$meta:meta])*
        $name:ident, $what:literal {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            const EXPECTED: &'static str = concat!($($wire, " "),+);

            /// The name used in policies and audit events.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $wire),+ }
            }

            /// Position in [`Self::ALL`] (a small dense index for bitsets).
            pub const fn index(self) -> usize {
                self as usize
            }

            /// The name as shared text: cloning it into an event does not allocate.
            pub(crate) fn label(self) -> Arc<str> {
                static LABELS: std::sync::LazyLock<Vec<Arc<str>>> = std::sync::LazyLock::new(|| {
                    $name::ALL.iter().map(|v| Arc::from(v.as_str())).collect()
                });
                LABELS
                    .get(self.index())
                    .cloned()
                    .unwrap_or_else(|| Arc::from(self.as_str()))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, UnknownName> {
                match s {
                    $($wire => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: $what,
                        value: s.to_owned(),
                        expected: Self::EXPECTED.trim_ascii_end(),
                    }),
                }
            }
        }
    };
}

closed_enum! {
    /// What a guarded action does to PHI.
    ActionKind, "action kind" {
        /// Creates a record.
        Create = "create",
        /// Reads a record.
        Read = "read",
        /// Changes a record.
        Update = "update",
        /// Deletes a record.
        Delete = "delete",
        /// Exports records in bulk.
        Export = "export",
        /// Discloses records outside the covered entity.
        Disclose = "disclose",
    }
}

closed_enum! {
    /// Which surface of the service a call came through.
    Endpoint, "endpoint" {
        /// Administrative console.
        Admin = "admin",
        /// Clinician-facing application.
        Provider = "provider",
        /// Patient portal.
        Patient = "patient",
        /// Service-to-service or batch job.
        System = "system",
    }
}

closed_enum! {
    /// Purpose of use, after HL7 v3 PurposeOfUse (code system
    /// `http://terminology.hl7.org/CodeSystem/v3-ActReason`).
    Purpose, "purpose" {
        /// TREAT: treatment.
        Treatment = "treatment",
        /// ETREAT: emergency treatment (the purpose break-glass declares).
        EmergencyTreatment = "emergency_treatment",
        /// HPAYMT: payment.
        Payment = "payment",
        /// HOPERAT: healthcare operations.
        Operations = "operations",
        /// HRESCH: research.
        Research = "research",
        /// PUBHLTH: public health.
        PublicHealth = "public_health",
        /// PATRQT: at the patient's request.
        PatientRequest = "patient_request",
    }
}

impl Purpose {
    /// The HL7 v3 ActReason code (`TREAT`, `ETREAT`, …).
    pub const fn hl7_code(self) -> &'static str {
        match self {
            Purpose::Treatment => "TREAT",
            Purpose::EmergencyTreatment => "ETREAT",
            Purpose::Payment => "HPAYMT",
            Purpose::Operations => "HOPERAT",
            Purpose::Research => "HRESCH",
            Purpose::PublicHealth => "PUBHLTH",
            Purpose::PatientRequest => "PATRQT",
        }
    }
}

/// The person or service acting: a unique id, roles, a jurisdiction and, for patients, the
/// patient they are. Cheap to clone.
///
/// ```
/// use guardrail_core::Principal;
/// let dr = Principal::new("dr-grey").role("provider").jurisdiction("US-CA");
/// assert!(dr.has_role("provider"));
/// let pat = Principal::new("user-17").role("patient").patient("p-100");
/// assert_eq!(pat.get_patient(), Some("p-100"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Principal {
    id: Arc<str>,
    roles: Arc<[Arc<str>]>,
    jurisdiction: Option<Arc<str>>,
    patient_id: Option<Arc<str>>,
}

impl Principal {
    /// A principal with a unique id and no roles yet.
    pub fn new(id: impl AsRef<str>) -> Principal {
        // Every principal starts with the one shared empty role list (no allocation).
        static NO_ROLES: std::sync::LazyLock<Arc<[Arc<str>]>> =
            std::sync::LazyLock::new(|| Arc::from(Vec::new()));
        Principal {
            id: Arc::from(id.as_ref()),
            roles: NO_ROLES.clone(),
            jurisdiction: None,
            patient_id: None,
        }
    }

    /// Adds a role.
    pub fn role(mut self, role: impl AsRef<str>) -> Principal {
        let role: Arc<str> = Arc::from(role.as_ref());
        // One allocation of exactly the new length (the iterator knows its size).
        self.roles = self
            .roles
            .iter()
            .cloned()
            .chain(std::iter::once(role))
            .collect();
        self
    }

    /// Adds several roles.
    pub fn roles<I, S>(self, roles: I) -> Principal
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        roles.into_iter().fold(self, |p, r| p.role(r))
    }

    /// Sets the jurisdiction (`US-CA`, an ISO 3166-2 style code).
    pub fn jurisdiction(mut self, jurisdiction: impl AsRef<str>) -> Principal {
        self.jurisdiction = Some(Arc::from(jurisdiction.as_ref()));
        self
    }

    /// Marks this principal as the patient `patient_id` (for `self_only` rules).
    pub fn patient(mut self, patient_id: impl AsRef<str>) -> Principal {
        self.patient_id = Some(Arc::from(patient_id.as_ref()));
        self
    }

    /// The unique id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The roles, in the order given.
    pub fn get_roles(&self) -> &[Arc<str>] {
        &self.roles
    }

    /// True if the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| &**r == role)
    }

    /// The jurisdiction, if known.
    pub fn get_jurisdiction(&self) -> Option<&str> {
        self.jurisdiction.as_deref()
    }

    /// The patient this principal is, for patient-facing users.
    pub fn get_patient(&self) -> Option<&str> {
        self.patient_id.as_deref()
    }

    pub(crate) fn id_arc(&self) -> &Arc<str> {
        &self.id
    }

    pub(crate) fn roles_arc(&self) -> &Arc<[Arc<str>]> {
        &self.roles
    }

    pub(crate) fn jurisdiction_arc(&self) -> Option<&Arc<str>> {
        self.jurisdiction.as_ref()
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The patient id is PHI: never printed.
        f.debug_struct("Principal")
            .field("id", &self.id)
            .field("roles", &self.roles)
            .field("jurisdiction", &self.jurisdiction)
            .field("patient", &self.patient_id.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

/// The software agent a person acts through (an MCP client such as an AI assistant), if any.
///
/// Set only by server configuration ([`crate::Context::agent`]), never from a request's
/// arguments. Policy rules name agents by [`AgentId::name`] (`agents = [..]`, `direct_only`).
///
/// ```
/// use guardrail_core::AgentId;
/// let agent = AgentId::new("clinic-assistant").version("1.2.0");
/// assert_eq!(agent.name(), "clinic-assistant");
/// assert_eq!(agent.label(), "clinic-assistant/1.2.0");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AgentId {
    name: Arc<str>,
    version: Option<Arc<str>>,
    label: Arc<str>,
}

impl AgentId {
    /// An agent known by `name` (what policy rules match).
    pub fn new(name: impl AsRef<str>) -> AgentId {
        let name: Arc<str> = Arc::from(name.as_ref());
        AgentId {
            label: name.clone(),
            name,
            version: None,
        }
    }

    /// Adds the agent's version (recorded, not matched by rules).
    pub fn version(mut self, version: impl AsRef<str>) -> AgentId {
        let version: Arc<str> = Arc::from(version.as_ref());
        self.label = Arc::from(format!("{}/{}", self.name, version));
        self.version = Some(version);
        self
    }

    /// The name rules match.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The version, if known.
    pub fn get_version(&self) -> Option<&str> {
        self.version.as_deref()
    }

    /// `name` or `name/version`, as events record it in `via`.
    pub fn label(&self) -> &str {
        &self.label
    }

    pub(crate) fn label_arc(&self) -> &Arc<str> {
        &self.label
    }
}

impl fmt::Debug for AgentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.label)
    }
}
