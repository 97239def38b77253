//! The rule IR: what a policy means, with every IRI resolved and nothing left to interpret.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RuleKind {
    Permission,
    Prohibition,
    Obligation,
}

/// ODRL's conflict strategies (`odrl:conflict`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub enum Conflict {
    /// Permissions override prohibitions.
    Perm,
    /// Prohibitions override permissions.
    Prohibit,
    /// Any conflict voids the policy. ODRL's default.
    #[default]
    Invalid,
}

/// Who a rule is for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "iri")]
pub enum Party {
    One(String),
    /// An `odrl:PartyCollection`: its members are the parties that are `odrl:partOf` it.
    Collection(String),
}

/// What a rule is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "iri")]
pub enum Asset {
    One(String),
    /// An `odrl:AssetCollection`: its members are the assets that are `odrl:partOf` it.
    Collection(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum LeftOperand {
    DateTime,
    Purpose,
    Count,
    Recipient,
    Spatial,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Operator {
    Eq,
    Neq,
    Lt,
    Lteq,
    Gt,
    Gteq,
    IsA,
    IsAnyOf,
    IsNoneOf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum Operand {
    /// An `xsd:dateTime`, kept in its lexical form; compared as a date-time.
    DateTime(String),
    Integer(i64),
    Iri(String),
    Iris(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum Constraint {
    Atomic {
        uid: String,
        left: LeftOperand,
        operator: Operator,
        right: Operand,
    },
    And {
        uid: String,
        operands: Vec<Constraint>,
    },
    Or {
        uid: String,
        operands: Vec<Constraint>,
    },
    Xone {
        uid: String,
        operands: Vec<Constraint>,
    },
}

impl Constraint {
    pub fn uid(&self) -> &str {
        match self {
            Constraint::Atomic { uid, .. } | Constraint::And { uid, .. } | Constraint::Or { uid, .. } | Constraint::Xone { uid, .. } => uid,
        }
    }
}

/// The project's ODRL profile namespace, for the duty terms ODRL lacks (`policies/README.md`).
pub const KDR: &str = "https://w3id.org/kdr/odrl#";

/// How far a date or an age is coarsened (`kdr:granularity`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Granularity {
    Month,
    Year,
    /// Ages in bands of 5 years (20-24, 25-29, ...).
    AgeBand5,
    AgeBand10,
}

/// A duty attached to a permission (or the duty of an obligation). The profile's duty actions
/// carry their parameters here; the broker enforces them on the data (see `policies/README.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct Duty {
    pub uid: String,
    pub action: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub constraints: Vec<Constraint>,
    /// `kdr:field`: the fields a minimise, pseudonymise or generalise duty acts on.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<String>,
    /// `kdr:groupBy`: the fields an aggregate duty groups by.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub group_by: Vec<String>,
    /// `kdr:minGroupSize`: groups smaller than this are suppressed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_group_size: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granularity: Option<Granularity>,
    /// `kdr:retention`: an `xsd:duration` after which the consumer must delete the data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<String>,
    /// `odrl:informedParty` of an inform duty.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub informed_party: Option<String>,
    /// `kdr:epsilon` of an `kdr:addNoise` duty, in thousandths: the privacy loss ε one release
    /// may cost. Thousandths, so that budgets add up exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epsilon_milli: Option<u32>,
    /// `kdr:budget` of an `kdr:addNoise` duty, in thousandths: the ε one consumer may spend on
    /// the dataset for one purpose in a calendar month.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub budget_milli: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Rule {
    pub uid: String,
    pub kind: RuleKind,
    /// The action IRI; `None` means any action.
    pub action: Option<String>,
    pub target: Option<Asset>,
    pub assignee: Option<Party>,
    /// All must hold (ODRL: multiple constraints on a rule are a conjunction).
    pub constraints: Vec<Constraint>,
    pub duties: Vec<Duty>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Policy {
    pub uid: String,
    pub conflict: Conflict,
    pub rules: Vec<Rule>,
}
