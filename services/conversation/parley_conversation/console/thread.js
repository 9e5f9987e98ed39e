// One conversation: its history with delivery ticks, media and locations, and what an
// operator can do: take over, hand back, write, send a template, close, reopen.
import { ApiError, call, el, when } from "./api.js";

// Twilio's error codes an operator meets most, in words.
const ERRORS = {
  21610: "the participant opted out (STOP)",
  30003: "unreachable: phone off or out of coverage",
  30005: "unknown or inactive number",
  30006: "landline or unreachable carrier",
  30007: "filtered by the carrier as spam",
  30008: "unknown carrier error",
  63016: "outside WhatsApp's 24-hour window: send a template",
};
const TICKS = { requested: "🕓", queued: "🕓", accepted: "🕓", sending: "🕓", sent: "✓", delivered: "✓✓", read: "✓✓ read",
  failed: "✗ failed", undelivered: "✗ undelivered", canceled: "✗ not sent" };

function agentName() {
  return sessionStorage.getItem("parley.agent") || "operator";
}

async function mediaNode(conversation, message, index, item) {
  if (!(item.content_type || "").startsWith("image/")) {
    return el("span", { class: "muted" }, `[${item.content_type || "attachment"}]`);
  }
  const img = el("img", { alt: "attachment", width: "180" });
  const path = `/v1/conversations/${conversation}/messages/${message}/media/${index}`;
  try {
    const response = await call("conversation", path, { raw: true });
    img.src = URL.createObjectURL(await response.blob());
  } catch { img.alt = "attachment (unavailable)"; }
  return img;
}

function seconds(total) {
  return total >= 60 ? `${Math.floor(total / 60)} min ${total % 60} s` : `${total} s`;
}

// A call or an email: a line of its own in the history, not a message bubble.
function contact(m) {
  const text = m.kind === "call"
    ? `📞 ${m.direction === "inbound" ? "Call from them" : "Call to them"}: ` + (
      m.call.outcome === "completed" ? `answered, ${seconds(m.call.duration_s || 0)}` :
      m.call.outcome === "missed" ? `missed (${m.status})` : `under way (${m.status})`)
    : `✉️ Email${m.email.sender_name ? ` from ${m.email.sender_name}` : ""}: ${m.email.subject}` +
      (m.email.attachments ? ` (${m.email.attachments} attachment${m.email.attachments > 1 ? "s" : ""})` : "");
  return el("div", { class: `bubble ${m.direction} ${m.kind}`, "data-id": m.id },
    el("div", { class: "muted" }, text),
    m.kind === "email" && m.body ? el("div", {}, m.body) : null,
    el("span", { class: "meta" }, when(m.at)));
}

function bubble(conversation, m) {
  if (m.kind === "call" || m.kind === "email") return contact(m);
  const status = m.status || (m.direction === "inbound" ? "" : "queued");
  const who = m.direction === "inbound" ? "" : m.agent ? `${m.agent} · ` :
    m.ai ? `AI ${m.ai.model || ""}${m.ai.source && m.ai.source !== "ai" ? ` (${m.ai.source})` : ""} · ` : "";
  const node = el("div", { class: `bubble ${m.direction}`, "data-id": m.id },
    m.body ? el("div", {}, m.body) : null,
    m.content_sid ? el("div", { class: "muted" }, `template ${m.content_sid}`) : null,
    m.location ? el("div", {}, `📍 ${m.location.label || m.location.address || ""} ` +
      `(${m.location.latitude}, ${m.location.longitude})`) : null,
    el("span", { class: "meta" }, `${who}${when(m.at)} `,
      m.direction === "outbound" ? el("span", { class: `ticks ${status}` }, TICKS[status] || status) : null,
      m.error_code ? el("span", { class: "error" },
        ` ${m.error_code}: ${ERRORS[m.error_code] || "see Twilio's error list"}`) : null));
  (m.media || []).forEach((item, i) => mediaNode(conversation, m.id, i, item).then((n) => node.append(n)));
  return node;
}

export function renderThread(container, id) {
  // Built once, so that live refreshes never touch what the operator is typing.
  const title = el("h3");
  const actions = el("div", { class: "filters" });
  const messages = el("div", { class: "messages" });
  const note = el("p", { class: "muted" });
  const errorLine = el("p", { class: "error" });
  const text = el("textarea", { name: "body", placeholder: "Write as a person…" });
  const template = el("input", { name: "content_sid", placeholder: "HX… template", size: "36" });
  const variables = el("input", { name: "variables", placeholder: '{"1": "value"}' });
  const templates = el("div", { class: "composer", hidden: true }, template, variables,
    el("button", { onclick: () => sendTemplate() }, "Send template"));

  async function act(path, body) {
    errorLine.textContent = "";
    try {
      await call("conversation", `/v1/conversations/${id}/${path}`, { method: "POST", body });
      await refresh();
      return true;
    } catch (error) {
      errorLine.textContent = error instanceof ApiError ? error.message : String(error);
      return false;
    }
  }
  async function send() {
    if (text.value.trim() && await act("messages", { agent: agentName(), body: text.value })) {
      text.value = "";
    }
  }
  async function sendTemplate() {
    let vars;
    try { vars = JSON.parse(variables.value || "{}"); } catch {
      errorLine.textContent = "variables must be JSON, e.g. {\"1\": \"Ana\"}";
      return;
    }
    await act("messages", { agent: agentName(), template: { content_sid: template.value.trim(), variables: vars } });
  }
  async function refresh() {
    const [c, page] = await Promise.all([
      call("conversation", `/v1/conversations/${id}`),
      call("conversation", `/v1/conversations/${id}/messages?limit=500`),
    ]);
    title.replaceChildren(c.profile_name || c.participant, el("span", { class: "muted" },
      ` ${c.channel} via ${c.our_address} · ${c.state} · answered by ` +
      (c.handoff === "agent" ? c.handoff_agent : "the AI")));
    actions.replaceChildren(
      c.handoff === "agent"
        ? el("button", { onclick: () => act("handback", { agent: agentName() }) }, "Hand back to the AI")
        : el("button", { class: "primary", onclick: () => act("takeover", { agent: agentName() }) }, "Take over"),
      c.state === "open"
        ? el("button", { onclick: () => act("close") }, "Close")
        : el("button", { onclick: () => act("reopen") }, "Reopen"));
    const atBottom = messages.scrollHeight - messages.scrollTop - messages.clientHeight < 40;
    messages.replaceChildren(...page.items.map((m) => bubble(id, m)));
    if (atBottom) messages.scrollTop = messages.scrollHeight;
    templates.hidden = c.channel !== "whatsapp";
    note.textContent = c.channel !== "whatsapp" ? "" : c.whatsapp_window_closes_at
      ? `Free-form messages until ${when(c.whatsapp_window_closes_at)}; after that, templates only.`
      : "No 24-hour window open: templates only.";
  }
  container.replaceChildren(title, actions, messages, note,
    el("div", { class: "composer" }, text, el("button", { class: "primary", onclick: send }, "Send")),
    templates, errorLine);
  refresh().then(() => { messages.scrollTop = messages.scrollHeight; }).catch((error) => {
    container.replaceChildren(el("p", { class: "error" }, String(error.message || error)));
  });
  return () => refresh().catch(() => {});
}
