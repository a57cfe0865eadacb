//! A scripted ReAct-style agent: a deterministic plan stands in for the model (none is
//! available offline). Each step is a *thought*, an *action* (a tool call through the real
//! rmcp client over the real transport) and the *observation* — the text the model would
//! receive, which is everything [`Transcript`] keeps.

use std::fmt;

use guardrail_mcp::APPROVAL_ARGUMENT;
use rmcp::RoleClient;
use rmcp::model::CallToolRequestParams;
use rmcp::service::Peer;
use serde_json::{Map, Value, json};

/// Why the agent stopped before its plan was done.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The MCP transport or protocol failed.
    #[error("MCP request failed: {0}")]
    Mcp(String),
    /// An observation did not have the shape the plan expects (the plan's own fault).
    #[error("unexpected observation at step `{step}`: {why}")]
    Unexpected {
        /// The step.
        step: &'static str,
        /// What was wrong.
        why: String,
    },
    /// The approver did not approve.
    #[error("the export was not approved: {0}")]
    NotApproved(String),
}

/// What one tool call showed the model.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    /// The text of the result (JSON for a success, a PHI-free message for an error).
    pub text: String,
    /// True if the tool reported an error.
    pub is_error: bool,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// Why the model takes this step.
    pub thought: String,
    /// The tool called.
    pub tool: String,
    /// The arguments sent.
    pub arguments: Value,
    /// What came back.
    pub observation: Observation,
}

/// Everything the model saw in a session.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Transcript {
    /// The tools the server offered.
    pub tools: Vec<String>,
    /// The steps, in order.
    pub turns: Vec<Turn>,
    /// The final answer.
    pub answer: String,
}

impl fmt::Display for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "tools offered: {}", self.tools.join(", "))?;
        for (i, t) in self.turns.iter().enumerate() {
            writeln!(f, "\n[{}] thought: {}", i + 1, t.thought)?;
            writeln!(f, "    action: {}({})", t.tool, t.arguments)?;
            let tag = if t.observation.is_error {
                "error"
            } else {
                "ok"
            };
            writeln!(f, "    observation ({tag}): {}", t.observation.text)?;
        }
        writeln!(f, "\nanswer: {}", self.answer)
    }
}

/// The names of the tools `client`'s server offers.
pub async fn tools(client: &Peer<RoleClient>) -> Result<Vec<String>, AgentError> {
    let tools = client
        .list_all_tools()
        .await
        .map_err(|e| AgentError::Mcp(e.to_string()))?;
    Ok(tools.into_iter().map(|t| t.name.to_string()).collect())
}

/// Calls `tool` with `arguments` (a JSON object) and returns what the model would see.
pub async fn call(
    client: &Peer<RoleClient>,
    tool: &str,
    arguments: Value,
) -> Result<Observation, AgentError> {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    if let Value::Object(map) = arguments {
        params = params.with_arguments(map);
    }
    let result = client
        .call_tool(params)
        .await
        .map_err(|e| AgentError::Mcp(e.to_string()))?;
    let text = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n");
    Ok(Observation {
        text,
        is_error: result.is_error == Some(true),
    })
}

/// The approval request id named in a `needs approval` error, if any.
pub fn approval_id(observation: &Observation) -> Option<String> {
    if !observation.is_error || !observation.text.contains("needs approval") {
        return None;
    }
    observation.text.split('`').nth(1).map(str::to_owned)
}

struct Recorder<'a> {
    client: &'a Peer<RoleClient>,
    transcript: Transcript,
}

impl Recorder<'_> {
    async fn step(
        &mut self,
        thought: impl Into<String>,
        tool: &str,
        arguments: Value,
    ) -> Result<Observation, AgentError> {
        let observation = call(self.client, tool, arguments.clone()).await?;
        self.transcript.turns.push(Turn {
            thought: thought.into(),
            tool: tool.to_owned(),
            arguments,
            observation: observation.clone(),
        });
        Ok(observation)
    }
}

fn parse(step: &'static str, o: &Observation) -> Result<Value, AgentError> {
    if o.is_error {
        return Err(AgentError::Unexpected {
            step,
            why: format!("the tool failed: {}", o.text),
        });
    }
    serde_json::from_str(&o.text).map_err(|e| AgentError::Unexpected {
        step,
        why: format!("not JSON: {e}"),
    })
}

/// The plan: find the patient named `name`, read their chart, add a note, then export the
/// cohort of their diagnosis — which needs approval: the agent reports the request id,
/// `approve` stands for the second person acting through another channel (it must return
/// once the request is approved), and the agent retries once with the grant.
pub async fn run(
    client: &Peer<RoleClient>,
    name: &str,
    approve: &mut (dyn FnMut(&str) -> Result<(), String> + Send),
) -> Result<Transcript, AgentError> {
    let mut r = Recorder {
        client,
        transcript: Transcript {
            tools: tools(client).await?,
            ..Transcript::default()
        },
    };
    let hits = r
        .step(
            format!("The clinician asked about {name}; find the patient first."),
            "search_patients",
            json!({ "query": name }),
        )
        .await?;
    let hits = parse("search_patients", &hits)?;
    let id = hits
        .get(0)
        .and_then(|h| h.get("id"))
        .and_then(Value::as_str)
        .ok_or_else(|| AgentError::Unexpected {
            step: "search_patients",
            why: "no patient found".into(),
        })?
        .to_owned();

    let chart = r
        .step(
            format!("Patient {id} matches; read the chart."),
            "read_chart",
            json!({ "patient_id": id }),
        )
        .await?;
    let chart = parse("read_chart", &chart)?;
    let diagnosis = chart
        .get("diagnosis")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();

    r.step(
        "Record a summary for the clinician in the chart.",
        "add_note",
        json!({
            "patient_id": id,
            "text": format!("Assistant summary: {diagnosis}; review the current dose at the next visit."),
        }),
    )
    .await?;

    let mut export_args = Map::new();
    export_args.insert("diagnosis".into(), json!(diagnosis));
    let first = r
        .step(
            format!("Compare with every patient with {diagnosis}: export the cohort."),
            "export_cohort",
            Value::Object(export_args.clone()),
        )
        .await?;
    let rows = match approval_id(&first) {
        Some(request) => {
            approve(&request).map_err(AgentError::NotApproved)?;
            export_args.insert(APPROVAL_ARGUMENT.into(), json!(request));
            let retry = r
                .step(
                    format!("Request {request} was approved; retry the export with it."),
                    "export_cohort",
                    Value::Object(export_args),
                )
                .await?;
            parse("export_cohort", &retry)?
        }
        None => parse("export_cohort", &first)?,
    };
    let n = rows
        .get("rows")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    r.transcript.answer = format!(
        "Patient {id} has {diagnosis}; a note was added; {n} patients share the diagnosis."
    );
    Ok(r.transcript)
}
