// Analytics: headline figures, volumes and active participants over time, response times,
// the delivery funnel, AI usage and cost, handoffs, calls and emails, per number; CSV export.
import { call, el } from "./api.js";

const SVG = "http://www.w3.org/2000/svg";

function svg(tag, attributes, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// Bars per bucket, one colour per series; the y axis starts at 0.
function barChart(buckets, series) {
  const width = 720, height = 180, pad = 24;
  const max = Math.max(1, ...buckets.flatMap((b) => series.map(([key]) => b[key])));
  const slot = (width - pad) / Math.max(buckets.length, 1);
  const bar = Math.min(36, Math.max(2, slot / (series.length + 1)));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 16}`, width: "100%", role: "img",
    "aria-label": series.map(([, label]) => label).join(", ") });
  chart.append(svg("text", { x: 0, y: 10 }, String(max)), svg("text", { x: 0, y: height }, "0"));
  series.forEach(([, label, colour], j) => chart.append(
    svg("rect", { x: width - 150, y: 4 + j * 14, width: 10, height: 10, fill: colour }),
    svg("text", { x: width - 135, y: 13 + j * 14 }, label)));
  buckets.forEach((b, i) => {
    series.forEach(([key, label, colour], j) => {
      const h = (b[key] / max) * (height - 14);
      chart.append(svg("rect", { x: pad + i * slot + j * bar, y: height - h, width: bar - 1,
        height: h, fill: colour, class: "bar" }, svg("title", {}, `${label}: ${b[key]}`)));
    });
    if (i % Math.ceil(buckets.length / 8) === 0) {
      chart.append(svg("text", { x: pad + i * slot, y: height + 14 }, b.start.slice(5, 13).replace("T", " ")));
    }
  });
  return chart;
}

function funnel(f) {
  const steps = [["attempted", f.attempted], ["sent", f.sent], ["delivered", f.delivered],
    ["read", f.read], ["undelivered", f.undelivered], ["failed", f.failed]];
  const max = Math.max(1, f.attempted);
  return el("table", {}, steps.map(([name, n]) => el("tr", {}, el("td", {}, name),
    el("td", { style: "width:60%" }, el("div", { class: "bar", style:
      `background:#4c6ef5;height:12px;width:${(100 * n) / max}%` })), el("td", {}, String(n)))));
}

const ms = (v) => (v === null || v === undefined ? "–" : `${Math.round(v)} ms`);

export function renderAnalytics(view) {
  const state = { days: "7", channel: "", our_number: "", granularity: "day" };
  const body = el("div");
  const pick = (name, options) => el("select", { name, onchange: (e) => { state[name] = e.target.value; load(); } },
    options.map(([v, label]) => el("option", { value: v, selected: v === state[name] ? "" : null }, label)));
  const numbers = pick("our_number", [["", "All numbers"]]);
  view.replaceChildren(el("div", { class: "filters" },
    pick("days", [["1", "Last 24 hours"], ["7", "Last 7 days"], ["30", "Last 30 days"], ["90", "Last 90 days"]]),
    pick("channel", [["", "All channels"], ["sms", "SMS"], ["whatsapp", "WhatsApp"]]),
    numbers, pick("granularity", [["day", "By day"], ["hour", "By hour"]]),
    el("button", { onclick: exportCsv }, "Export CSV")), body);

  function query(extra = {}) {
    const to = new Date();
    const from = new Date(to - Number(state.days) * 86400e3);
    const q = new URLSearchParams({ from: from.toISOString(), to: to.toISOString(), ...extra });
    if (state.channel) q.set("channel", state.channel);
    if (state.our_number) q.set("our_number", state.our_number);
    return q;
  }
  async function exportCsv() {
    const response = await call("analytics", `/v1/export/messages.csv?${query()}`, { raw: true });
    const link = el("a", { href: URL.createObjectURL(await response.blob()), download: "messages.csv" });
    link.click();
  }
  async function load() {
    const [stats, engagement, times, delivery, usage, handoffs, breakdown, contacts] = await Promise.all([
      call("analytics", `/v1/stats?${query()}`),
      call("analytics", `/v1/engagement?${query({ granularity: state.granularity })}`),
      call("analytics", `/v1/response-times?${query()}`),
      call("analytics", `/v1/delivery?${query()}`),
      call("analytics", `/v1/ai-usage?${query()}`),
      call("analytics", `/v1/handoffs?${query()}`),
      call("analytics", `/v1/breakdown?${query()}`),
      call("analytics", `/v1/contacts?${query()}`),
    ]);
    const voice = contacts.channels.find((c) => c.channel === "voice");
    const email = contacts.channels.find((c) => c.channel === "email");
    if (numbers.options.length === 1) {
      breakdown.rows.forEach((r) => numbers.append(el("option", { value: r.key }, r.key)));
    }
    const card = (label, value) => el("div", { class: "card" },
      el("div", { class: "muted" }, label), el("div", { class: "figure" }, String(value)));
    body.replaceChildren(
      el("div", { class: "cards", id: "figures" },
        card("Messages in", stats.messages.inbound), card("Messages out", stats.messages.outbound),
        card("Conversations", stats.conversations.total), card("Participants", stats.participants),
        card("Opt-outs", stats.opt_outs), card("Reply p50", ms(times.reply.p50_ms)),
        card("Handed to a person", handoffs.handed_off_conversations),
        card("Calls (missed)", voice ? `${voice.total} (${voice.missed})` : "0"),
        card("Emails", email ? email.total : 0),
        card("AI cost", usage.totals.cost_usd === null ? "–" : `$${usage.totals.cost_usd.toFixed(4)}`)),
      el("div", { class: "card" }, el("h4", {}, "Messages and active participants"),
        barChart(engagement.buckets, [["messages_in", "in", "#4c6ef5"], ["messages_out", "out", "#82c91e"],
          ["active_participants", "active participants", "#fab005"]])),
      el("div", { class: "split" },
        el("div", { class: "card" }, el("h4", {}, "Delivery"), funnel(delivery.funnel),
          el("p", { class: "muted" }, delivery.top_error_codes.map((e) => `${e.error_code}: ${e.count}`).join(" · "))),
        el("div", { class: "card" }, el("h4", {}, "Response times"), el("table", {},
          el("tr", {}, el("th", {}), el("th", {}, "p50"), el("th", {}, "p95"), el("th", {}, "count")),
          ["reply", "delivered", "ai"].map((k) => el("tr", {}, el("td", {}, k),
            el("td", {}, ms(times[k].p50_ms)), el("td", {}, ms(times[k].p95_ms)), el("td", {}, String(times[k].count))))))),
      el("div", { class: "card" }, el("h4", {}, "AI usage"), el("table", {},
        el("tr", {}, ["model", "replies", "fallbacks", "tokens in", "tokens out", "cost"].map((h) => el("th", {}, h))),
        usage.models.map((m) => el("tr", {}, el("td", {}, m.model), el("td", {}, String(m.replies)),
          el("td", {}, String(m.fallback)), el("td", {}, String(m.prompt_tokens)),
          el("td", {}, String(m.completion_tokens)), el("td", {}, m.cost_usd === null ? "–" : `$${m.cost_usd.toFixed(4)}`))))),
      el("div", { class: "card" }, el("h4", {}, "By number"), el("table", { id: "breakdown" },
        el("tr", {}, ["number", "in", "out", "conversations", "participants", "opt-outs", "takeovers",
          "outside window"].map((h) => el("th", {}, h))),
        breakdown.rows.map((r) => el("tr", {}, [r.key, r.inbound, r.outbound, r.conversations,
          r.participants, r.opt_outs, r.takeovers, r.outside_window].map((v) => el("td", {}, String(v))))))));
  }
  load().catch((error) => body.replaceChildren(el("p", { class: "error" }, String(error.message || error))));
  return () => {};
}
