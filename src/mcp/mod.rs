//! MCP-aware authorization: which caller may use which tool, prompt and resource.
//!
//! Pure logic, like the rest of the crate: the JSON-RPC reader, the policy (scopes and CEL
//! rules) and the list rewriter return decisions; the glue reads bodies and carries them out.

use serde_json::Value;

pub mod config;
pub mod jsonrpc;
pub mod policy;

pub use config::{compile, compile_value, McpConfigRaw};
pub use policy::{
    response, BadBody, Caller, McpHeaders, McpOutcome, McpPolicy, McpVerdict, Target,
};

/// The list methods whose results the filter may shorten.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListKind {
    Tools,
    Prompts,
    Resources,
    ResourceTemplates,
}

impl ListKind {
    pub const ALL: [ListKind; 4] =
        [ListKind::Tools, ListKind::Prompts, ListKind::Resources, ListKind::ResourceTemplates];

    /// The JSON-RPC method that lists these items.
    pub fn method(self) -> &'static str {
        match self {
            ListKind::Tools => "tools/list",
            ListKind::Prompts => "prompts/list",
            ListKind::Resources => "resources/list",
            ListKind::ResourceTemplates => "resources/templates/list",
        }
    }

    pub fn from_method(method: &str) -> Option<ListKind> {
        ListKind::ALL.into_iter().find(|kind| kind.method() == method)
    }

    /// The member of the result that holds the items.
    pub fn member(self) -> &'static str {
        match self {
            ListKind::Tools => "tools",
            ListKind::Prompts => "prompts",
            ListKind::Resources => "resources",
            ListKind::ResourceTemplates => "resourceTemplates",
        }
    }

    /// The member of an item that names it: what the policy judges the item by.
    pub fn naming_member(self) -> &'static str {
        match self {
            ListKind::Tools | ListKind::Prompts => "name",
            ListKind::Resources => "uri",
            ListKind::ResourceTemplates => "uriTemplate",
        }
    }
}

/// A JSON-RPC request id (a string or a number), compared as JSON values.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestId(pub Value);

/// A list request waiting for its response: the id to find it by, and what it lists.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingList {
    pub id: RequestId,
    pub kind: ListKind,
}

pub mod lists;
pub mod sse;
