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

/// A duty attached to a permission (or the duty of an obligation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Duty {
    pub uid: String,
    pub action: String,
    pub constraints: Vec<Constraint>,
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
