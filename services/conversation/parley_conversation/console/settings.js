// Settings: how the AI answers per number, API tokens, the Twilio connection check.
import { ApiError, call, el, when } from "./api.js";

const FIELDS = [["system_prompt", "textarea"], ["model", "text"], ["max_tokens", "number"],
  ["temperature", "number"], ["fallback_reply", "textarea"], ["history_turns", "number"]];

function aiForm(number, s, done) {
  const inputs = {};
  const row = FIELDS.map(([name, kind]) => {
    const input = kind === "textarea" ? el("textarea", { name, rows: "2", cols: "60" })
      : el("input", { name, type: kind, step: name === "temperature" ? "0.1" : "1" });
    input.value = s.settings[name] ?? "";
    input.placeholder = String(s.effective[name]);
    inputs[name] = input;
    return el("tr", {}, el("td", {}, name), el("td", {}, input), el("td", { class: "muted" }, s.sources[name]));
  });
  const enabled = el("input", { type: "checkbox", name: "enabled" });
  enabled.checked = s.effective.enabled;
  const message = el("span", { class: "muted" });
  async function save() {
    const body = { changed_by: sessionStorage.getItem("parley.agent") || "operator", enabled: enabled.checked };
    for (const [name, kind] of FIELDS) {
      const value = inputs[name].value.trim();
      if (value !== "") body[name] = kind === "number" ? Number(value) : value;
    }
    try {
      const saved = await call("ai", `/v1/numbers/${encodeURIComponent(number)}/ai-settings`, { method: "PUT", body });
      message.textContent = `saved as version ${saved.version}`;
      done();
    } catch (error) { message.textContent = error instanceof ApiError ? error.message : String(error); }
  }
  return el("div", { class: "card", "data-number": number },
    el("h4", {}, number, el("span", { class: "muted" }, ` version ${s.version}` +
      (s.updated_by ? ` by ${s.updated_by}, ${when(s.updated_at)}` : ""))),
    el("table", {}, row, el("tr", {}, el("td", {}, "enabled"), el("td", {}, enabled))),
    el("button", { class: "primary", onclick: save }, "Save"), " ", message);
}

async function tokensCard(me) {
  const card = el("div", { class: "card" }, el("h4", {}, "API tokens"));
  if (!me.tenant) {
    const tenants = await call("conversation", "/v1/tenants");
    card.append(el("p", { class: "muted" }, "Signed in with the admin token. Tenants:"),
      el("table", {}, tenants.map((t) => el("tr", {}, el("td", {}, t.name),
        el("td", {}, t.numbers.join(", ")), el("td", { class: "muted" }, t.id)))));
    return card;
  }
  if (me.scope !== "write") {
    card.append(el("p", { class: "muted" }, "This token may only read."));
    return card;
  }
  const base = `/v1/tenants/${me.tenant.id}/tokens`;
  const issued = el("p", { class: "muted" });
  const scope = el("select", { name: "scope" }, el("option", { value: "read" }, "read"), el("option", { value: "write" }, "write"));
  const label = el("input", { name: "label", placeholder: "label" });
  const table = el("table");
  async function refresh() {
    const tokens = await call("conversation", base);
    table.replaceChildren(...tokens.map((t) => el("tr", {}, el("td", {}, t.label || "–"), el("td", {}, t.scope),
      el("td", {}, when(t.issued_at)), el("td", {}, t.revoked_at ? `revoked ${when(t.revoked_at)}` :
        el("button", { onclick: async () => { await call("conversation", `${base}/${t.id}`, { method: "DELETE" }); refresh(); } }, "Revoke")))));
  }
  card.append(table, el("div", { class: "filters" }, scope, label, el("button", { onclick: async () => {
    const t = await call("conversation", base, { method: "POST", body: { scope: scope.value, label: label.value } });
    issued.textContent = `New ${t.scope} token (copy it now, it is not shown again): ${t.token}`;
    refresh();
  } }, "Issue token")), issued);
  await refresh();
  return card;
}

async function optOutsCard() {
  const people = await call("conversation", "/v1/opt-outs");
  return el("div", { class: "card", id: "opt-outs" }, el("h4", {}, "Opted out"),
    people.length === 0 ? el("p", { class: "muted" }, "Nobody has opted out.") :
      el("table", {}, people.map((p) => el("tr", {}, el("td", {}, p.participant),
        el("td", {}, `${p.channel} via ${p.our_address}`), el("td", { class: "muted" }, when(p.since))))));
}

async function twilioCard() {
  const card = el("div", { class: "card" }, el("h4", {}, "Twilio connection"));
  try {
    const report = await call("sender", "/v1/twilio/check");
    card.append(el("p", {}, `${report.account}: ${report.ok ? "all set" : "needs attention"}`),
      el("table", {}, report.findings.map((f) => el("tr", {}, el("td", {}, f.ok ? "✓" : "✗"),
        el("td", {}, f.subject), el("td", {}, f.ok ? "" : `${f.problem} — fix: ${f.fix}`)))));
  } catch (error) { card.append(el("p", { class: "error" }, String(error.message || error))); }
  return card;
}

export function renderSettings(view, me) {
  const ai = el("div", { id: "ai-settings" });
  async function loadAi() {
    const all = await call("ai", "/v1/ai-settings");
    ai.replaceChildren(el("h3", {}, "AI settings per number"),
      ...(all.length ? all.map((s) => aiForm(s.number, s, loadAi)) : [el("p", { class: "muted" }, "No numbers yet.")]));
  }
  view.replaceChildren(ai);
  Promise.all([loadAi(), tokensCard(me), optOutsCard(), twilioCard()])
    .then(([, tokens, optOuts, twilio]) => view.append(tokens, optOuts, twilio))
    .catch((error) => view.append(el("p", { class: "error" }, String(error.message || error))));
  return () => {};
}
