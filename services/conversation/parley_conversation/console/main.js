// The console's shell: sign-in, navigation between views, who is signed in.
import { ApiError, call, el, loadConfig, signIn, signOut, token } from "./api.js";
import { renderAnalytics } from "./analytics.js";
import { renderInbox } from "./inbox.js";
import { renderSettings } from "./settings.js";

const view = document.getElementById("view");
const NOTHING = { page: null, leave: () => {}, open: null };
let mounted = NOTHING; // the view on screen: its page, how to leave it, how to open an item
let me = null;

function unmount() {
  mounted.leave();
  mounted = NOTHING;
}

function showSignIn(message = "") {
  document.getElementById("nav").hidden = true;
  document.getElementById("sign-out").hidden = true;
  document.getElementById("who").textContent = "";
  const input = el("input", { type: "password", name: "token", placeholder: "pt_… or the admin token", autocomplete: "off" });
  const agent = el("input", { name: "agent", placeholder: "Your name, as shown to colleagues" });
  view.replaceChildren(el("form", { class: "card signin", onsubmit: (e) => {
    e.preventDefault();
    signIn(input.value);
    sessionStorage.setItem("parley.agent", agent.value.trim() || "operator");
    route();
  } }, el("h3", {}, "Sign in"), input, agent, el("button", { class: "primary", type: "submit" }, "Sign in"),
  el("p", { class: "error" }, message)));
}

async function route() {
  if (!token()) {
    unmount();
    return showSignIn();
  }
  if (!me) {
    try { me = await call("conversation", "/v1/me"); } catch (error) {
      unmount();
      signOut();
      return showSignIn(error instanceof ApiError && error.status === 401 ? "That token is not valid (or was revoked)." : String(error));
    }
  }
  document.getElementById("nav").hidden = false;
  document.getElementById("sign-out").hidden = false;
  document.getElementById("who").textContent = `${me.tenant ? me.tenant.name : "admin"} · ${me.scope}`;
  const [, where, id] = location.hash.split("/");
  const page = ["analytics", "settings"].includes(where) ? where : "inbox";
  for (const link of document.querySelectorAll("nav a")) link.classList.toggle("active", link.hash === `#/${page}`);
  if (page === mounted.page && mounted.open) return mounted.open(id);
  unmount();
  if (page === "analytics") mounted = { ...NOTHING, page, leave: renderAnalytics(view) };
  else if (page === "settings") mounted = { ...NOTHING, page, leave: renderSettings(view, me) };
  else mounted = { page: "inbox", ...renderInbox(view, id, me) };
}

document.getElementById("sign-out").addEventListener("click", () => { signOut(); me = null; location.hash = ""; route(); });
window.addEventListener("hashchange", route);
loadConfig().then(route);
