//! Native notifications for prompts (notify-rust posts them), and the listener for the
//! person's answer on the D-Bus session bus.
//!
//! Any process on the session bus can emit an `ActionInvoked` signal. So an action counts
//! only when the signal comes from the unique bus name that owned
//! `org.freedesktop.Notifications` when Countersign posted the notification, and names a
//! notification Countersign posted; the answer then still goes through the approver with
//! the prompt's nonce and argument hash. The notification is a convenience over the app's
//! own state, never the authority: dismissing it denies, and the app's window can answer
//! too. It must never turn a signal it cannot attribute into an approval.

use crate::approvals::{DesktopApprover, PendingPrompt};
use countersign_gateway::api::{AnswerRequest, ControlError};
use countersign_gateway::approver::{Answer, Binding};
use countersign_policy::{shown, GrantLength};
use futures::TryStreamExt;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use zbus::message::Type as MessageType;
use zbus::MatchRule;

const SERVER: &str = "org.freedesktop.Notifications";
const INTERFACE: &str = "org.freedesktop.Notifications";
const PATH: &str = "/org/freedesktop/Notifications";

#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("no session bus: {0}")]
    Bus(#[from] zbus::Error),
    #[error("no notification server on the session bus: {0}")]
    NoServer(String),
    #[error("the notification could not be shown: {0}")]
    Show(String),
}

/// One notification Countersign posted.
#[derive(Debug, Clone)]
struct Posted {
    prompt: String,
    /// The unique bus name of the notification server that took it.
    server: String,
}

/// What a verified action asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Answer(Answer),
    /// The person clicked the notification body: open the full prompt in a window.
    Open,
}

/// The notification's title: always Countersign's own words. What clients and servers
/// chose goes into the body, in labelled, quoted fields shown with [`shown::visible`].
pub const TITLE: &str = "Countersign: approve a tool call?";

/// How much of a name (tool, server, client) the notification shows. A tool or server
/// name cut to fit can be approved only from the full view.
const NAME_MAX: usize = 80;

/// What a prompt's notification says and offers.
pub struct Content {
    pub summary: String,
    /// Plain text: every name and argument already shown with visible escapes. Escape it
    /// with [`markup_escaped`] for a server that renders markup.
    pub body: String,
    /// (action key, label), in the order shown.
    pub actions: Vec<(std::borrow::Cow<'static, str>, String)>,
}

/// A name as a quoted field, cut to fit; true when cut.
fn field(text: &str) -> (String, bool) {
    let (shown, cut) = shown::visible_within(text, NAME_MAX);
    (shown::quoted(&if cut { format!("{shown}…") } else { shown }), cut)
}

impl Content {
    pub fn of(p: &PendingPrompt, lengths: &[GrantLength]) -> Self {
        let waiting = p.prompt.waiting;
        let (tool, tool_cut) = field(&p.prompt.tool);
        let (server, server_cut) = field(&p.prompt.server);
        // Who asks is the client's token; what it says it is shows only as a claim.
        let (token, token_cut) = field(&p.prompt.client);
        let claim = p.prompt.client_name.as_deref().filter(|n| *n != p.prompt.client).map(|n| field(n).0);
        let mut actions = Vec::new();
        // Arguments or names too long for the notification can be approved only from the
        // full view.
        if let Some(plan) = &p.prompt.plan {
            // A session plan is approved as a whole, for the session: no other lengths. Its
            // body lists every scope; one cut to fit is approved from the window only.
            let cut = token_cut
                || field(&plan.title).1
                || plan.items.iter().any(|i| shown::visible_within(&i.words, 4 * NAME_MAX).1);
            if !cut {
                actions.push(("allow-once".into(), format!("Allow plan ({} for this session)", plan.items.len())));
            }
        } else if !(p.truncated || tool_cut || server_cut || token_cut) {
            actions.push(("allow-once".into(), "Allow once".to_string()));
            // A request routed here is answered once, at the hub: it leaves no grant here
            // or there, so no lengths and no similar scope are offered for it.
            let routed = p.prompt.asked_by.is_some();
            if let Some(offer) = p.prompt.similar.as_ref().filter(|_| !routed) {
                actions.push(("allow-similar".into(), format!("Allow similar {}", similar_length(offer.length))));
            }
            if waiting > 1 {
                // The count is in the action's key: the answer releases what was shown.
                actions.push((format!("allow-all-{waiting}").into(), format!("Allow all {waiting}")));
            }
            for (length, key, label) in [
                (GrantLength::Minutes15, "allow-15m", "Allow for 15 minutes"),
                (GrantLength::Hour1, "allow-1h", "Allow for 1 hour"),
            ] {
                if !routed && lengths.contains(&length) {
                    actions.push((key.into(), label.to_string()));
                }
            }
        }
        actions.push(("deny".into(), "Deny".to_string()));
        actions.push(("default".into(), "Show full arguments".to_string()));
        let mut body = match &p.prompt.asked_by {
            // The token is a name on the asking device, not a client of this computer.
            Some(_) => format!("Tool: {tool} of server {server}\nClient there: token {token}"),
            None => format!("Tool: {tool} of server {server}\nClient: token {token}"),
        };
        if let Some(claim) = claim {
            body.push_str(&format!(" (says it is {claim})"));
        }
        if let Some(asked) = &p.prompt.asked_by {
            // Routed here by the hub: who asks, as the hub verified them, and from where.
            let (requester, _) = field(&asked.requester);
            let (device, _) = field(&asked.device);
            body.push_str(&format!("\nAsked by: {requester} on {device}"));
        }
        // The summary is already shown with visible escapes (approvals::summarize).
        body.push_str(&format!("\nArguments: {}", p.summary));
        if waiting > 1 {
            body.push_str(&format!("\n{waiting} identical calls wait; Allow once runs one of them"));
        }
        if let Some(offer) = &p.prompt.similar {
            let (words, _) = shown::visible_within(&offer.words, 4 * NAME_MAX);
            body.push_str(&format!("\nAllow similar: {words}"));
        }
        if let Some(plan) = &p.prompt.plan {
            let (title, _) = field(&plan.title);
            body = format!("Session plan {title}\nClient: token {token}");
            for item in &plan.items {
                let (words, _) = shown::visible_within(&item.words, 4 * NAME_MAX);
                body.push_str(&format!("\nAllows: {words}"));
            }
            if !plan.refused.is_empty() {
                body.push_str(&format!("\n{} more still ask each time", plan.refused.len()));
            }
        }
        Content { summary: TITLE.to_string(), body, actions }
    }
}

/// A similar grant's length as its button says it.
fn similar_length(length: GrantLength) -> &'static str {
    match length {
        GrantLength::Minutes15 => "for 15 min",
        GrantLength::Hour1 => "for 1 h",
        GrantLength::Today => "today",
        GrantLength::Session => "this session",
        GrantLength::Once => "once",
    }
}

/// `text` for a notification body the server renders as markup (the Desktop
/// Notifications spec's subset): `&`, `<`, `>` and quotes as entities, so arguments such
/// as `<s>rm</s>` show as written instead of striking through what is approved.
pub fn markup_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

/// What the notification server that owns the name now can show (asked once per server
/// start: a restarted server has a new unique name and is asked again).
#[derive(Debug, Clone)]
struct Capabilities {
    /// The server's unique bus name.
    owner: String,
    actions: bool,
    body: bool,
    markup: bool,
}

/// Shows a prompt with notify-rust's macOS or Windows backend, where the platform
/// delivers the answer to this process alone.
#[cfg(not(target_os = "linux"))]
pub fn show_elsewhere(p: &PendingPrompt, lengths: &[GrantLength], on_action: impl FnOnce(&str) + Send + 'static) {
    let content = Content::of(p, lengths);
    let mut n = notify_rust::Notification::new();
    n.appname("Countersign").summary(&content.summary).body(&content.body);
    for (key, label) in &content.actions {
        n.action(key, label);
    }
    if let Ok(handle) = n.show() {
        std::thread::spawn(move || handle.wait_for_action(|action| on_action(action)));
    }
}

/// Maps an action key to what it means.
pub fn action_of(key: &str) -> Option<Action> {
    let allow = |length| Some(Action::Answer(Answer::Approved { length, condition: None, count: 1, similar: false }));
    if let Some(n) = key.strip_prefix("allow-all-").and_then(|n| n.parse::<usize>().ok()) {
        return Some(Action::Answer(Answer::once_for(n)));
    }
    match key {
        "allow-once" => allow(GrantLength::Once),
        "allow-15m" => allow(GrantLength::Minutes15),
        "allow-1h" => allow(GrantLength::Hour1),
        "allow-today" => allow(GrantLength::Today),
        "allow-session" => allow(GrantLength::Session),
        // The gateway grants the scope and length the prompt offered, nothing else.
        "allow-similar" => Some(Action::Answer(Answer::Approved {
            length: GrantLength::Once,
            condition: None,
            count: 1,
            similar: true,
        })),
        "deny" => Some(Action::Answer(Answer::Denied)),
        "default" | "open" => Some(Action::Open),
        _ => None,
    }
}

pub struct Notifier {
    conn: zbus::Connection,
    posted: Mutex<HashMap<u32, Posted>>,
    /// The capabilities of the notification server last asked.
    caps: Mutex<Option<Capabilities>>,
    approver: Arc<DesktopApprover>,
    /// Answers through the gateway's one answer path (which checks the policy's lengths).
    answer_with: AnswerFn,
}

/// How the notifier answers: the hosted gateway's [`countersign_gateway::Gateway::answer`].
pub type AnswerFn = Arc<dyn Fn(&str, AnswerRequest) -> Result<(), ControlError> + Send + Sync>;

impl Notifier {
    /// Connects to the session bus and starts listening; `open` is called with a prompt
    /// id when the person asks to see the full prompt.
    pub async fn start(
        approver: Arc<DesktopApprover>,
        answer_with: AnswerFn,
        open: impl Fn(String) + Send + Sync + 'static,
    ) -> Result<Arc<Self>, NotifyError> {
        let conn = zbus::Connection::session().await?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await?;
        for member in ["ActionInvoked", "NotificationClosed"] {
            let rule =
                MatchRule::builder().msg_type(MessageType::Signal).interface(INTERFACE).member(member).build()?;
            dbus.add_match_rule(rule).await.map_err(zbus::Error::from)?;
        }
        let me = Arc::new(Notifier {
            conn: conn.clone(),
            posted: Mutex::new(HashMap::new()),
            caps: Mutex::new(None),
            approver,
            answer_with,
        });
        let listener = me.clone();
        tokio::spawn(async move {
            let mut stream = zbus::MessageStream::from(&conn);
            while let Ok(Some(msg)) = stream.try_next().await {
                listener.on_message(&msg, &open);
            }
            tracing::warn!("the session bus closed: notification answers are no longer heard");
        });
        Ok(me)
    }

    fn posted(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Posted>> {
        self.posted.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn on_message(&self, msg: &zbus::Message, open: &impl Fn(String)) {
        let header = msg.header();
        if header.message_type() != MessageType::Signal || header.interface().map(|i| i.as_str()) != Some(INTERFACE) {
            return;
        }
        let sender = header.sender().map(|s| s.to_string()).unwrap_or_default();
        match header.member().map(|m| m.as_str()) {
            Some("ActionInvoked") => {
                let Ok((nid, key)) = msg.body().deserialize::<(u32, String)>() else { return };
                let Some(posted) = self.posted().get(&nid).cloned() else { return };
                if posted.server != sender {
                    tracing::warn!(
                        notification = nid,
                        %sender,
                        expected = %posted.server,
                        "ignored an ActionInvoked signal from a process that is not the notification server"
                    );
                    return;
                }
                match action_of(&key) {
                    Some(Action::Answer(answer)) => self.answer(&posted.prompt, answer, &key),
                    Some(Action::Open) => open(posted.prompt.clone()),
                    None => tracing::warn!(notification = nid, key, "ignored an unknown notification action"),
                }
            }
            Some("NotificationClosed") => {
                let Ok((nid, reason)) = msg.body().deserialize::<(u32, u32)>() else { return };
                let posted = self.posted().get(&nid).cloned();
                let Some(posted) = posted.filter(|p| p.server == sender) else { return };
                self.posted().remove(&nid);
                // 1: expired, 2: dismissed by the person. A dismissal is a denial; a
                // prompt already answered is simply gone.
                if matches!(reason, 1 | 2) && self.approver.get(&posted.prompt).is_some() {
                    self.answer(&posted.prompt, Answer::Denied, "dismissed");
                }
            }
            _ => {}
        }
    }

    fn answer(&self, prompt: &str, answer: Answer, how: &str) {
        let Some(p) = self.approver.get(prompt) else { return };
        let binding = Binding { nonce: p.nonce, args_hash: p.prompt.args_hash };
        match (self.answer_with)(prompt, AnswerRequest::from_answer(answer, Some(binding))) {
            Ok(()) => tracing::info!(prompt, how, "answered from the notification"),
            Err(e) => tracing::warn!(prompt, "notification answer refused: {e}"),
        }
    }

    /// The capabilities of the notification server `owner`, asked once per server start.
    async fn capabilities(&self, owner: &str) -> Result<Capabilities, NotifyError> {
        let cached = self.caps.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(caps) = cached.filter(|c| c.owner == owner) {
            return Ok(caps);
        }
        let reply = self.conn.call_method(Some(owner), PATH, Some(INTERFACE), "GetCapabilities", &()).await?;
        let list: Vec<String> = reply.body().deserialize().map_err(|e| NotifyError::Show(e.to_string()))?;
        let has = |name: &str| list.iter().any(|c| c == name);
        let caps = Capabilities {
            owner: owner.to_string(),
            actions: has("actions"),
            body: has("body"),
            markup: has("body-markup"),
        };
        tracing::info!(server = owner, capabilities = ?list, "notification server");
        *self.caps.lock().unwrap_or_else(|p| p.into_inner()) = Some(caps.clone());
        Ok(caps)
    }

    /// Posts the notification for a prompt. Returns its id on the notification server.
    ///
    /// On Linux it is sent on the listener's own bus connection: notification servers
    /// (dunst, for one) send `ActionInvoked` only to the connection that posted, and
    /// notify-rust posts on a connection of its own whose listener does not check who
    /// sent the signal. The message is the same `Notify` call notify-rust makes, sent to
    /// the unique name whose capabilities decided how the body is written.
    pub async fn post(&self, p: &PendingPrompt, lengths: &[GrantLength]) -> Result<u32, NotifyError> {
        let dbus = zbus::fdo::DBusProxy::new(&self.conn).await?;
        let name = zbus::names::BusName::try_from(SERVER)?;
        let owner = dbus.get_name_owner(name).await.map_err(|e| NotifyError::NoServer(e.to_string()))?.to_string();
        let caps = self.capabilities(&owner).await?;
        // A server that cannot show actions cannot take an answer, and one that shows no
        // body would ask for an answer without showing what it is for: the caller opens
        // the approval window instead.
        if !caps.actions {
            return Err(NotifyError::Show("the notification server does not show actions".into()));
        }
        if !caps.body {
            return Err(NotifyError::Show("the notification server does not show a body".into()));
        }
        let content = Content::of(p, lengths);
        // The body is markup only where the server renders it; elsewhere it is plain text.
        let body = if caps.markup { markup_escaped(&content.body) } else { content.body.clone() };
        let actions: Vec<&str> = content.actions.iter().flat_map(|(k, l)| [k.as_ref(), l.as_str()]).collect();
        let mut hints: HashMap<&str, zbus::Variant<'_>> = HashMap::new();
        hints.insert("urgency", zbus::Variant::U8(2));
        hints.insert("desktop-entry", zbus::Variant::from("countersign"));
        let reply = self
            .conn
            .call_method(
                Some(owner.as_str()),
                PATH,
                Some(INTERFACE),
                "Notify",
                &(
                    "Countersign",
                    0u32,
                    "dialog-question",
                    content.summary.as_str(),
                    body.as_str(),
                    actions,
                    hints,
                    0i32,
                ),
            )
            .await
            .map_err(|e| NotifyError::Show(e.to_string()))?;
        let nid: u32 = reply.body().deserialize().map_err(|e| NotifyError::Show(e.to_string()))?;
        self.posted().insert(nid, Posted { prompt: p.prompt.id.clone(), server: owner });
        Ok(nid)
    }

    /// Takes down the notification of a prompt answered elsewhere.
    pub async fn withdraw(&self, prompt: &str) {
        let nid = self.posted().iter().find(|(_, p)| p.prompt == prompt).map(|(n, _)| *n);
        if let Some(nid) = nid {
            self.posted().remove(&nid);
            let _ = self.conn.call_method(Some(SERVER), PATH, Some(INTERFACE), "CloseNotification", &(nid,)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(arguments: serde_json::Value) -> PendingPrompt {
        let mut prompt = crate::approvals::tests::prompt_with("p", arguments.clone());
        prompt.client_name = Some("Cursor".into());
        let (summary, truncated) = crate::approvals::summarize(&arguments, 120);
        PendingPrompt { prompt, nonce: "n".into(), summary, truncated }
    }

    #[test]
    fn sec_18_truncated_arguments_are_approved_only_from_the_full_view() {
        let short = Content::of(&pending(serde_json::json!({"path": "/a"})), &[GrantLength::Hour1]);
        assert_eq!(short.summary, TITLE);
        assert_eq!(
            short.body,
            "Tool: “write_file” of server “fs”\nClient: token “c” (says it is “Cursor”)\nArguments: path=/a",
            "the token, then the claim"
        );
        let keys: Vec<&str> = short.actions.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["allow-once", "allow-1h", "deny", "default"]);
        let long = Content::of(&pending(serde_json::json!({"content": "x".repeat(400)})), &[GrantLength::Hour1]);
        let keys: Vec<&str> = long.actions.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["deny", "default"]);
    }

    #[test]
    fn sec_i15_9_names_stay_in_their_fields_and_the_title_is_ours() {
        let mut p = pending(serde_json::json!({"content": "<s>rm</s> <small>-rf /</small> a\u{202e}b r\u{200b}m"}));
        p.prompt.client_name = Some("x\nCountersign: verified safe read-only call".into());
        p.prompt.tool = "write_file\u{2028}Countersign: read-only”".into();
        let c = Content::of(&p, &[]);
        assert_eq!(c.summary, TITLE, "no client or server text in the title");
        let lines: Vec<&str> = c.body.lines().collect();
        assert_eq!(lines.len(), 3, "{}", c.body);
        assert!(
            lines[0].starts_with("Tool: “write_file\\u{2028}Countersign: read-only\\u{201d}” of server “fs”"),
            "{}",
            lines[0]
        );
        assert_eq!(lines[1], "Client: token “c” (says it is “x\\nCountersign: verified safe read-only call”)");
        assert_eq!(lines[2], "Arguments: content=<s>rm</s> <small>-rf /</small> a\\u{202e}b r\\u{200b}m");
        assert!(!c.body.chars().filter(|&ch| ch != '\n').any(shown::is_hidden), "{}", c.body);
        let markup = markup_escaped(&c.body);
        assert!(markup.contains("content=&lt;s&gt;rm&lt;/s&gt; &lt;small&gt;-rf /&lt;/small&gt;"), "{markup}");
        assert!(!markup.contains('<') && !markup.contains('>'), "{markup}");
    }

    #[test]
    fn a_request_routed_here_is_answered_once_only() {
        let mut p = pending(serde_json::json!({"path": "/w/site/a"}));
        p.prompt.asked_by = Some(countersign_gateway::approver::AskedBy {
            request: "r1".into(),
            requester: "agent:builder".into(),
            device: "build-box".into(),
        });
        let c = Content::of(&p, &[GrantLength::Hour1, GrantLength::Minutes15]);
        let keys: Vec<&str> = c.actions.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["allow-once", "deny", "default"], "the hub takes one answer for one call");
        assert!(c.body.contains("\nClient there: token “c”"), "{}", c.body);
    }

    #[test]
    fn a_session_plan_is_allowed_as_a_whole_and_lists_its_scopes() {
        let mut p = pending(serde_json::json!({"title": "t", "items": []}));
        // The summary of a plan's arguments may be cut: its body lists every scope instead.
        p.truncated = true;
        let item = countersign_policy::SimilarOffer {
            server: "fs".into(),
            tool: "write_file".into(),
            tools: countersign_policy::SimilarTools::Tool,
            folder: Some("/w/site".into()),
            exact: Default::default(),
            length: GrantLength::Session,
            words: "`write_file` calls via fs under /w/site/, for this session".into(),
            exclude: vec![],
            strict_paths: false,
        };
        p.prompt.plan = Some(countersign_gateway::approver::PlanOffer {
            title: "Refactor\nCountersign: safe".into(),
            items: vec![item],
            refused: vec![countersign_gateway::approver::PlanRefusal {
                server: "fs".into(),
                tool: "move_file".into(),
                why: "never for a destructive tool".into(),
            }],
        });
        let c = Content::of(&p, &[GrantLength::Hour1, GrantLength::Minutes15]);
        let keys: Vec<&str> = c.actions.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["allow-once", "deny", "default"], "no lengths: a plan lasts the session");
        assert_eq!(c.actions[0].1, "Allow plan (1 for this session)");
        let lines: Vec<&str> = c.body.lines().collect();
        assert_eq!(lines[0], "Session plan “Refactor\\nCountersign: safe”", "the title is a quoted claim");
        assert_eq!(lines[2], "Allows: `write_file` calls via fs under /w/site/, for this session");
        assert_eq!(lines[3], "1 more still ask each time");
        let plan = p.prompt.plan.as_mut().unwrap();
        plan.items[0].words = "w".repeat(4 * NAME_MAX + 1);
        let c = Content::of(&p, &[]);
        assert!(c.actions.iter().all(|(k, _)| k != "allow-once"), "a scope cut to fit is approved in the window");
    }

    #[test]
    fn a_similar_offer_is_an_action_and_its_scope_is_in_the_body() {
        let mut p = pending(serde_json::json!({"path": "/w/site/a"}));
        p.prompt.similar = Some(countersign_policy::SimilarOffer {
            server: "fs".into(),
            tool: "write_file".into(),
            tools: countersign_policy::SimilarTools::Writes,
            folder: Some("/w/site".into()),
            exact: Default::default(),
            length: GrantLength::Hour1,
            words: "writes under /w/site/\u{202e} via fs, for 1 hour".into(),
            exclude: vec![],
            strict_paths: false,
        });
        let c = Content::of(&p, &[GrantLength::Hour1]);
        let keys: Vec<&str> = c.actions.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["allow-once", "allow-similar", "allow-1h", "deny", "default"]);
        assert_eq!(c.actions[1].1, "Allow similar for 1 h");
        assert!(c.body.ends_with("\nAllow similar: writes under /w/site/\\u{202e} via fs, for 1 hour"), "{}", c.body);
        match action_of("allow-similar") {
            Some(Action::Answer(Answer::Approved { similar: true, condition: None, .. })) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn markup_is_escaped_for_the_spec_subset() {
        assert_eq!(
            markup_escaped(r#"<b>&amp;</b> <a href='x'>"q"</a> <img src="y"/>"#),
            "&lt;b&gt;&amp;amp;&lt;/b&gt; &lt;a href=&apos;x&apos;&gt;&quot;q&quot;&lt;/a&gt; &lt;img src=&quot;y&quot;/&gt;"
        );
        assert_eq!(markup_escaped("plain text"), "plain text");
    }

    #[test]
    fn a_name_cut_to_fit_is_approved_only_from_the_full_view() {
        let mut p = pending(serde_json::json!({"path": "/a"}));
        p.prompt.tool = format!("write_file{}", "\u{200b}".repeat(40));
        let c = Content::of(&p, &[]);
        let keys: Vec<&str> = c.actions.iter().map(|(k, _)| k.as_ref()).collect();
        assert_eq!(keys, ["deny", "default"], "{}", c.body);
        assert!(c.body.contains("…”"), "{}", c.body);
    }

    #[test]
    fn action_keys_map_to_answers() {
        assert_eq!(action_of("allow-once"), Some(Action::Answer(Answer::once())));
        assert_eq!(action_of("deny"), Some(Action::Answer(Answer::Denied)));
        assert_eq!(action_of("allow-all-3"), Some(Action::Answer(Answer::once_for(3))));
        assert_eq!(action_of("allow-all-x"), None);
        assert_eq!(action_of("default"), Some(Action::Open));
        assert_eq!(action_of("allow-everything"), None);
    }
}
