// The inbox: conversations with the newest activity first, filtered, live; the selected one
// opens beside the list. Opening another keeps the list, its filters and its stream.
import { call, el, stream, when } from "./api.js";
import { renderThread } from "./thread.js";

export function renderInbox(view, selected, me) {
  const filters = { state: "", channel: "", handoff: "", our_number: "" };
  const list = el("ul", { class: "list", id: "conversations" });
  const side = el("section", { class: "card", id: "thread" },
    el("p", { class: "muted" }, "Pick a conversation."));
  const picker = (name, options) => el("select", {
    name, onchange: (e) => { filters[name] = e.target.value; refresh(); },
  }, options.map(([value, label]) => el("option", { value }, label)));
  view.replaceChildren(el("div", { class: "split" },
    el("section", { class: "card" },
      el("div", { class: "filters" },
        picker("state", [["", "Any state"], ["open", "Open"], ["closed", "Closed"]]),
        picker("channel", [["", "Any channel"], ["sms", "SMS"], ["whatsapp", "WhatsApp"], ["email", "Email"]]),
        picker("handoff", [["", "Anyone answers"], ["ai", "AI"], ["requested", "Asked for a person"],
          ["agent", "A person"]]),
        me.tenant ? picker("our_number", [["", "All numbers"],
          ...me.tenant.numbers.map((n) => [n, n])]) : null),
      list),
    side));

  let current = selected;
  let refreshThread = null;
  async function refresh() {
    const query = new URLSearchParams({ limit: "100", order: "activity" });
    for (const [name, value] of Object.entries(filters)) if (value) query.set(name, value);
    const page = await call("conversation", `/v1/conversations?${query}`);
    const items = page.items;
    list.replaceChildren(...items.map((c) => el("li", {
      class: c.id === current ? "selected" : null, "data-id": c.id,
      onclick: () => { location.hash = `#/inbox/${c.id}`; },
    },
    el("div", {}, el("strong", {}, c.profile_name || c.participant),
      c.state === "closed" ? el("span", { class: "badge closed" }, "closed") : null,
      c.handoff !== "ai" ? el("span", { class: `badge ${c.handoff}` },
        c.handoff === "agent" ? "person" : "asked for a person") : null),
    el("div", { class: "meta" }, `${c.channel} · ${c.our_address} · ${c.messages_in} in / ` +
      `${c.messages_out} out` + (c.calls ? ` · ${c.calls} call${c.calls > 1 ? "s" : ""}` : "") +
      (c.emails ? ` · ${c.emails} email${c.emails > 1 ? "s" : ""}` : "") +
      ` · ${when(c.last_activity_at || c.opened_at)}`))));
    if (items.length === 0) list.append(el("li", { class: "muted" }, "No conversations yet."));
  }
  function open(id) {
    current = id;
    for (const row of list.querySelectorAll("li[data-id]")) {
      row.classList.toggle("selected", row.dataset.id === id);
    }
    refreshThread = id ? renderThread(side, id) : null;
  }
  open(selected);
  refresh();
  let pending = null;
  const stop = stream(() => {
    // News comes in bursts (a message, its reply, their statuses): refresh once per burst.
    clearTimeout(pending);
    pending = setTimeout(() => { refresh(); if (refreshThread) refreshThread(); }, 150);
  });
  return { leave: () => { stop(); clearTimeout(pending); }, open };
}
