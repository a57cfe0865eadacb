//! The page's HTML: one escaping function every value goes through, the list of pending
//! requests with their forms, the result of a decision, and the refusal page.
//!
//! Every string that did not come from this file (ids, principal ids, action names, labels,
//! tokens, error kinds) is written through [`Esc`]; nothing here reads PHI, because an
//! [`ApprovalRequest`] holds labels and keyed tokens only. The page needs no script: plain
//! forms, so the content security policy can forbid every script.

use std::fmt::{self, Write as _};

use guardrail_core::approval::{ApprovalRequest, ApprovalState};

/// `value` escaped for HTML text and double- or single-quoted attribute values.
pub(crate) struct Esc<'a>(pub(crate) &'a str);

impl fmt::Display for Esc<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rest = self.0;
        while let Some(at) = rest.find(['&', '<', '>', '"', '\'']) {
            f.write_str(&rest[..at])?;
            f.write_str(match rest.as_bytes()[at] {
                b'&' => "&amp;",
                b'<' => "&lt;",
                b'>' => "&gt;",
                b'"' => "&quot;",
                _ => "&#39;",
            })?;
            rest = &rest[at + 1..];
        }
        f.write_str(rest)
    }
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;max-width:60rem;color:#1b1b1b}\
h1{font-size:1.5rem}section.request{border:1px solid #bbb;border-radius:6px;padding:1rem;\
margin:1rem 0}dl{display:grid;grid-template-columns:14rem 1fr;gap:.25rem 1rem;margin:0 0 1rem}\
dt{font-weight:600}dd{margin:0;overflow-wrap:anywhere;font-family:ui-monospace,monospace}\
form{display:inline}button{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem}\
.own{color:#8a4b00}.state{font-weight:700}.refused{color:#a00}";

/// The document around `body`, titled `title`.
fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>{STYLE}</style></head>\n<body>\n{body}</body></html>\n",
        Esc(title)
    )
}

/// The list page's address under `base`.
fn home(base: &str) -> &str {
    if base.is_empty() { "/" } else { base }
}

fn dash(value: Option<&str>) -> &str {
    value.unwrap_or("—")
}

/// The fields a grant of `request` is bound to, as a definition list whose `dd`s carry
/// `data-field` names (what the browser test reads).
fn bound_fields(out: &mut String, request: &ApprovalRequest) {
    let b = &request.binding;
    let s = &b.scope;
    let count = b.count.map(|c| c.to_string());
    let requested = request.requested_at.to_string();
    let expires = request.expires_at.to_string();
    let reveal: &str = if s.reveal.is_empty() {
        "nothing (every category masked)"
    } else {
        &s.reveal
    };
    let rows: [(&str, &str, &str); 14] = [
        ("id", "Request", request.id.as_str()),
        ("action", "Action", &*b.action),
        ("principal", "Requested by", &*b.principal),
        (
            "agent",
            "Via agent",
            s.agent.as_deref().unwrap_or("— (in person)"),
        ),
        ("session", "Agent session", dash(s.session.as_deref())),
        ("purpose", "Purpose of use", dash(s.purpose.as_deref())),
        ("endpoint", "Endpoint", dash(s.endpoint.as_deref())),
        ("rule", "Deciding rule", dash(s.rule.as_deref())),
        ("reveal", "Shown unmasked", reveal),
        (
            "subject",
            "Patient (keyed token)",
            dash(b.subject.as_deref()),
        ),
        ("count", "Records", dash(count.as_deref())),
        (
            "arguments",
            "Recorded arguments (digest)",
            dash(s.arguments.as_deref()),
        ),
        ("policy", "Policy SHA-256", &*s.policy_hash),
        ("expires", "Expires", &expires),
    ];
    out.push_str("<dl>");
    for (field, label, value) in rows {
        let _ = write!(
            out,
            "<dt>{}</dt><dd data-field=\"{}\">{}</dd>",
            Esc(label),
            Esc(field),
            Esc(value)
        );
    }
    let _ = write!(
        out,
        "<dt>Requested</dt><dd data-field=\"requested\">{}</dd></dl>",
        Esc(&requested)
    );
}

/// The state of `request` in words: `pending`, `granted by po-kim`…
fn state_words(request: &ApprovalRequest) -> String {
    match &request.state {
        ApprovalState::Granted { approver, .. } => format!("granted by {approver}"),
        ApprovalState::Rejected { approver, .. } => format!("rejected by {approver}"),
        other => other.as_str().to_owned(),
    }
}

/// What the list page needs besides the requests.
pub(crate) struct ListView<'a> {
    /// The signed-in approver.
    pub(crate) viewer: &'a str,
    /// Where the router is mounted (`""` at the root, else `/approvals`…).
    pub(crate) base: &'a str,
    /// The form token of this approver in this browser.
    pub(crate) token: &'a str,
    /// The most requests shown.
    pub(crate) limit: usize,
}

/// The list of pending requests, each with approve and reject forms.
pub(crate) fn list_page(view: &ListView<'_>, requests: &[ApprovalRequest]) -> String {
    let mut out = String::new();
    let _ = write!(
        out,
        "<h1>Pending approval requests</h1>\n<p>Signed in as <strong id=\"viewer\">{}</strong>. \
         A grant opens exactly the call described, once, before it expires.</p>\n",
        Esc(view.viewer)
    );
    if requests.is_empty() {
        out.push_str("<p id=\"empty\">No request is waiting for a decision.</p>\n");
    } else if requests.len() >= view.limit {
        let _ = writeln!(
            out,
            "<p>Showing the {} oldest requests; decide these to see more.</p>",
            view.limit
        );
    }
    for request in requests {
        let id = request.id.as_str();
        let _ = write!(
            out,
            "<section class=\"request\" id=\"request-{}\" data-request=\"{}\">",
            Esc(id),
            Esc(id)
        );
        bound_fields(&mut out, request);
        if *request.binding.principal == *view.viewer {
            out.push_str(
                "<p class=\"own\">You requested this call: separation of duties requires \
                 another approver to decide it.</p>",
            );
        }
        if crate::is_safe_id(id) {
            for (verb, label) in [("approve", "Approve"), ("reject", "Reject")] {
                let _ = write!(
                    out,
                    "<form method=\"post\" action=\"{}/{}/{verb}\">\
                     <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
                     <button type=\"submit\" id=\"{verb}-{}\">{label}</button></form>",
                    Esc(view.base),
                    Esc(id),
                    Esc(view.token),
                    Esc(id)
                );
            }
        } else {
            out.push_str(
                "<p>This request's id cannot be used in a form; decide it with the CLI.</p>",
            );
        }
        out.push_str("</section>\n");
    }
    document("Pending approval requests", &out)
}

/// The page after a decision took effect (and was recorded).
pub(crate) fn decided_page(base: &str, request: &ApprovalRequest) -> String {
    let mut out = String::new();
    let state = state_words(request);
    let _ = write!(
        out,
        "<h1>Request {}</h1>\n<p>The request is now <span class=\"state\" id=\"state\">{}</span>; \
         the decision is recorded in the audit trail.</p>\n<section class=\"request\">",
        Esc(request.state.as_str()),
        Esc(&state)
    );
    bound_fields(&mut out, request);
    let _ = write!(
        out,
        "</section>\n<p><a id=\"back\" href=\"{}\">Back to pending requests</a></p>\n",
        Esc(home(base))
    );
    document(&format!("Request {}", request.state.as_str()), &out)
}

/// A refusal: `title` and `message` are this crate's fixed texts, with values escaped.
pub(crate) fn refusal_page(base: &str, title: &str, message: &str) -> String {
    let body = format!(
        "<h1 class=\"refused\" id=\"refused\">{}</h1>\n<p id=\"message\">{}</p>\n\
         <p><a id=\"back\" href=\"{}\">Back to pending requests</a></p>\n",
        Esc(title),
        Esc(message),
        Esc(home(base))
    );
    document(title, &body)
}

#[cfg(test)]
mod tests {
    use super::Esc;

    #[test]
    fn every_special_character_is_escaped() {
        assert_eq!(
            Esc("<script>alert('x')</script> & \"q\"").to_string(),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
        assert_eq!(Esc("plain").to_string(), "plain");
        assert_eq!(Esc("").to_string(), "");
        assert_eq!(Esc("é<").to_string(), "é&lt;");
    }
}
