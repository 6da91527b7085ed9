/*! career-rag widget. Embed with one tag:
 *  <script src="https://HOST/widget.js" data-api="https://HOST" defer></script>
 * Optional: data-accent="#0a7" data-position="bottom-left" data-title="Ask our guides",
 * data-collection="careers" (one public collection of a server that has several).
 * Everything lives in an open shadow root, so page CSS and widget CSS never meet, and all
 * server data is rendered as text (never as HTML). No dependencies, no build step. */
(() => {
  "use strict";
  if (window.__careerRagWidget) return;
  window.__careerRagWidget = true;

  const script =
    document.currentScript ||
    [...document.querySelectorAll("script[src]")].reverse().find((s) => /\/widget\.js([?#]|$)/.test(s.src));
  const ds = (script && script.dataset) || {};

  function apiBase() {
    try {
      const fallback = script && script.src ? new URL(script.src, location.href).origin : location.origin;
      const u = new URL(ds.api || fallback, location.href);
      if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error("bad scheme");
      return (u.origin + u.pathname).replace(/\/+$/, "");
    } catch {
      return location.origin;
    }
  }

  const API = apiBase();
  // Where chat and feedback go: the server's default collection, or /c/NAME of the one named.
  const COLLECTION = (ds.collection || "").trim();
  const ROUTES = COLLECTION ? `${API}/c/${encodeURIComponent(COLLECTION)}` : API;
  const TITLE = (ds.title || "Ask our career guides").slice(0, 80);
  const LEFT = ds.position === "bottom-left";
  const K = 3; // answers cite the top three passages; more would crowd the panel
  const MAC = /Mac|iPhone|iPad/.test(navigator.platform || navigator.userAgent);
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    chat: "M21 12a8 8 0 0 1-11.6 7.1L4 20.5l1.4-4.9A8 8 0 1 1 21 12z",
    close: "M18 6 6 18M6 6l12 12",
    send: "M22 2 11 13M22 2l-7 20-4-9-9-4z",
    up: "M7 10v11M2 12v7a2 2 0 0 0 2 2h12.3a2 2 0 0 0 2-1.7l1.4-8A2 2 0 0 0 17.7 9H14V5a3 3 0 0 0-3-3z",
    down: "M17 14V3m5 9V5a2 2 0 0 0-2-2H7.7a2 2 0 0 0-2 1.7l-1.4 8A2 2 0 0 0 6.3 15H10v4a3 3 0 0 0 3 3z",
  };

  const STYLE = `
:host{all:initial;--crw-accent:#3451d1;--crw-on-accent:#fff;--crw-link-l:var(--crw-accent);
--crw-link-d:color-mix(in srgb,var(--crw-accent) 45%,#fff);--crw-link:var(--crw-link-l);--crw-bg:#fff;--crw-fg:#1a1f2c;
--crw-muted:#5b6474;--crw-border:#e0e4ec;--crw-soft:#f2f4f9;--crw-danger:#b42318;
--crw-danger-soft:#fdecea;--crw-focus:#f59e0b}
@media (prefers-color-scheme:dark){:host{--crw-link:var(--crw-link-d);--crw-bg:#171c2c;--crw-fg:#e7eaf3;--crw-muted:#a3abbd;
--crw-border:#2d344b;--crw-soft:#20263a;--crw-danger:#ff8a80;--crw-danger-soft:#3a1d1f}}
*,*::before,*::after{box-sizing:border-box}
[hidden]{display:none!important}
.root{font:14.5px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue","Liberation Sans","DejaVu Sans",Arial,sans-serif;
color:var(--crw-fg);-webkit-font-smoothing:antialiased}
button,input{font:inherit;color:inherit}
:focus-visible{outline:3px solid var(--crw-focus);outline-offset:2px}
.launcher{position:fixed;bottom:20px;${LEFT ? "left" : "right"}:20px;z-index:2147483000;display:flex;
align-items:center;gap:8px;padding:12px 18px 12px 14px;border:0;border-radius:999px;cursor:pointer;
background:var(--crw-accent);color:var(--crw-on-accent);font-weight:600;font-size:15px;
box-shadow:0 6px 20px rgb(0 0 0/22%),0 2px 6px rgb(0 0 0/12%);transition:transform .15s}
.launcher:hover{transform:translateY(-1px)}
.launcher svg{width:20px;height:20px}
.kbd{font-size:12px;font-weight:500;padding:1px 6px;border-radius:6px;
border:1px solid currentColor}
.panel{position:fixed;bottom:84px;${LEFT ? "left" : "right"}:20px;z-index:2147483001;
width:min(420px,calc(100vw - 24px));min-height:min(300px,calc(100vh - 110px));max-height:min(720px,calc(100vh - 110px));display:flex;
flex-direction:column;background:var(--crw-bg);color:var(--crw-fg);border:1px solid var(--crw-border);
border-radius:18px;overflow:hidden;box-shadow:0 18px 50px rgb(0 0 0/25%),0 4px 14px rgb(0 0 0/10%);
animation:crw-in .16s ease-out}
@keyframes crw-in{from{opacity:0;transform:translateY(8px) scale(.98)}}
.head{display:flex;align-items:flex-start;gap:10px;padding:14px 14px 14px 18px;
background:var(--crw-accent);color:var(--crw-on-accent)}
.head h2{margin:0;font-size:16px;line-height:1.3;font-weight:700}
.head p{margin:2px 0 0;font-size:12.5px}
.head .grow{flex:1;min-width:0}
.icon-btn{display:grid;place-items:center;width:32px;height:32px;border:0;border-radius:8px;
background:transparent;color:inherit;cursor:pointer}
.icon-btn:hover{background:rgb(255 255 255/18%)}
.icon-btn svg{width:18px;height:18px}
.log{flex:1;overflow-y:auto;padding:14px 16px;display:flex;flex-direction:column;gap:12px;
overscroll-behavior:contain}
.intro{margin:0;color:var(--crw-muted);font-size:14px}
.q{align-self:flex-end;max-width:85%;margin:0;padding:8px 13px;border-radius:14px 14px 4px 14px;
background:var(--crw-accent);color:var(--crw-on-accent);white-space:pre-wrap;overflow-wrap:anywhere}
.a{align-self:stretch;padding:12px 14px;border-radius:4px 14px 14px 14px;background:var(--crw-soft);
border:1px solid var(--crw-border)}
.answer{margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
.cite{display:inline-block;padding:0 4px;margin:0 1px;border-radius:5px;font-size:12px;font-weight:700;
line-height:1.5;text-decoration:none;color:var(--crw-link);background:var(--crw-bg);
border:1px solid var(--crw-border);vertical-align:1px}
.cite:hover{border-color:var(--crw-link)}
.status{display:flex;align-items:center;gap:8px;margin:0;color:var(--crw-muted)}
.spin{width:15px;height:15px;border-radius:50%;border:2px solid var(--crw-border);
border-top-color:var(--crw-accent);animation:crw-spin .8s linear infinite}
@keyframes crw-spin{to{transform:rotate(360deg)}}
.note{margin:0;color:var(--crw-muted)}
.not-covered{margin:0;padding:8px 10px;border-radius:8px;border-left:3px solid var(--crw-muted);background:rgba(127,127,127,.12)}
.error{margin:0;padding:8px 10px;border-radius:8px;background:var(--crw-danger-soft);color:var(--crw-danger)}
.src-title{margin:12px 0 6px;font-size:11.5px;font-weight:700;letter-spacing:.05em;
text-transform:uppercase;color:var(--crw-muted)}
.sources{list-style:none;margin:0;padding:0;display:grid;gap:6px}
.sources li{display:flex;gap:8px;align-items:baseline;font-size:13.5px;line-height:1.4}
.num{flex:none;min-width:20px;text-align:center;border-radius:5px;font-size:11.5px;font-weight:700;
color:var(--crw-muted);background:var(--crw-bg);border:1px solid var(--crw-border)}
.sources a{color:var(--crw-link);font-weight:600;text-decoration:none}
.sources a:hover{text-decoration:underline}
.sec{display:block;color:var(--crw-muted)}
.fb{display:flex;align-items:center;gap:4px;margin-top:10px;font-size:12.5px;color:var(--crw-muted)}
.fb span:first-child{margin-right:4px}
.fb button{display:grid;place-items:center;width:28px;height:28px;border-radius:7px;cursor:pointer;
border:1px solid var(--crw-border);background:var(--crw-bg);color:var(--crw-muted)}
.fb button:hover,.fb button[aria-pressed=true]{color:var(--crw-link);border-color:var(--crw-link)}
.fb svg{width:14px;height:14px}
.fb .thanks{margin-left:6px}
form{display:flex;gap:8px;padding:10px 12px 6px;border-top:1px solid var(--crw-border);background:var(--crw-bg)}
input{flex:1;min-width:0;padding:10px 12px;border-radius:10px;border:1px solid var(--crw-border);
background:var(--crw-bg);font-size:15px}
input:focus{outline:0;border-color:var(--crw-accent);box-shadow:0 0 0 3px rgb(127 127 127/25%)}
input::placeholder{color:var(--crw-muted)}
.send{display:grid;place-items:center;width:42px;border:0;border-radius:10px;cursor:pointer;
background:var(--crw-accent);color:var(--crw-on-accent)}
.send:disabled{opacity:.5;cursor:progress}
.send svg{width:18px;height:18px}
.foot{margin:0;padding:0 14px 9px;font-size:11.5px;color:var(--crw-muted);background:var(--crw-bg)}
.sr{position:absolute;width:1px;height:1px;margin:-1px;overflow:hidden;clip:rect(0 0 0 0);white-space:nowrap}
@media (max-width:480px){.panel{left:8px;right:8px;bottom:76px;width:auto;max-height:calc(100vh - 92px)}
.launcher{bottom:14px;${LEFT ? "left" : "right"}:14px}}
@media (prefers-reduced-motion:reduce){.panel,.spin{animation:none}.launcher{transition:none}}`;

  // ------------------------------------------------------------------ helpers

  function h(tag, props, ...kids) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v == null) continue;
      if (k === "class") node.className = v;
      else node.setAttribute(k, v);
    }
    for (const kid of kids) if (kid != null) node.append(kid); // strings become text nodes
    return node;
  }

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    const attrs = { viewBox: "0 0 24 24", fill: "none", stroke: "currentColor", "stroke-width": "2",
      "stroke-linecap": "round", "stroke-linejoin": "round", "aria-hidden": "true" };
    for (const [k, v] of Object.entries(attrs)) svg.setAttribute(k, v);
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  /** An absolute http(s) link on the API origin, or null. */
  function href(url) {
    try {
      const u = new URL(String(url), API + "/");
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch {
      return null;
    }
  }

  function section(c) {
    const path = Array.isArray(c.section_path) ? c.section_path.map(String) : [];
    if (path.length && path[0] === c.title) path.shift();
    return path.join(" › ");
  }

  /** Whether a colour is light enough to need dark text on it. */
  function isLight(color, probe) {
    probe.style.color = color;
    const m = getComputedStyle(probe).color.match(/[\d.]+/g);
    probe.style.color = "";
    if (!m) return false;
    const [r, g, b] = m.slice(0, 3).map((v) => {
      const c = Number(v) / 255;
      return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * r + 0.7152 * g + 0.0722 * b > 0.4;
  }

  async function detail(res) {
    try {
      const body = await res.json();
      if (typeof body.detail === "string") return body.detail;
      if (Array.isArray(body.detail) && body.detail[0]) return String(body.detail[0].msg);
    } catch {
      /* not JSON */
    }
    return `the service answered ${res.status}`;
  }

  /** Server-sent events read from a fetch body: yields [event, data]. */
  async function* events(body) {
    const reader = body.getReader();
    const dec = new TextDecoder();
    let raw = "";
    let buf = "";
    for (;;) {
      const { value, done } = await reader.read();
      raw += done ? dec.decode() : dec.decode(value, { stream: true });
      const cut = !done && raw.endsWith("\r") ? raw.length - 1 : raw.length;
      buf += raw.slice(0, cut).replace(/\r\n?/g, "\n");
      raw = raw.slice(cut);
      let i;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const ev = parse(buf.slice(0, i));
        buf = buf.slice(i + 2);
        if (ev) yield ev;
      }
      if (done) break;
    }
    const ev = parse(buf);
    if (ev) yield ev;
  }

  function parse(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line[0] === ":") continue;
      const c = line.indexOf(":");
      const field = c < 0 ? line : line.slice(0, c);
      let v = c < 0 ? "" : line.slice(c + 1);
      if (v[0] === " ") v = v.slice(1);
      if (field === "event") name = v;
      else if (field === "data") data.push(v);
    }
    if (!data.length) return null;
    try {
      return [name, JSON.parse(data.join("\n"))];
    } catch {
      return [name, { text: data.join("\n") }];
    }
  }

  // ------------------------------------------------------------------ build

  function mount() {
    const host = document.createElement("career-rag-widget");
    host.setAttribute("data-api", API);
    if (COLLECTION) host.setAttribute("data-collection", COLLECTION);
    const root = host.attachShadow({ mode: "open" });
    if (root.adoptedStyleSheets && "replaceSync" in CSSStyleSheet.prototype) {
      const sheet = new CSSStyleSheet();
      sheet.replaceSync(STYLE);
      root.adoptedStyleSheets = [sheet];
    } else {
      root.append(h("style", {}, STYLE));
    }

    const wrap = h("div", { class: "root" });
    const shortcut = MAC ? "⌘K" : "Ctrl K";
    const launcher = h("button", { class: "launcher", type: "button", "aria-expanded": "false",
      "aria-controls": "crw-panel", "aria-keyshortcuts": "Control+K Meta+K",
      title: `${TITLE} (${shortcut})` }, icon("chat"), "Ask", h("span", { class: "sr" }, ` – ${TITLE}`),
      h("span", { class: "kbd", "aria-hidden": "true" }, shortcut));

    const close = h("button", { class: "icon-btn", type: "button", "aria-label": "Close" }, icon("close"));
    const intro = h("p", { class: "intro" }, "Ask about a career: what the role involves, the skills it needs or what it pays. Answers cite the guides they come from.");
    const log = h("div", { class: "log", role: "log", "aria-live": "polite", "aria-label": "Conversation" }, intro);
    const input = h("input", { id: "crw-q", type: "text", autocomplete: "off", maxlength: "1000",
      placeholder: "Ask about a role, its skills or pay", enterkeyhint: "send" });
    const send = h("button", { class: "send", type: "submit", "aria-label": "Send" }, icon("send"));
    const form = h("form", { novalidate: "" },
      h("label", { class: "sr", for: "crw-q" }, "Your question"), input, send);
    const panel = h("div", { class: "panel", id: "crw-panel", role: "dialog", "aria-modal": "false",
      "aria-labelledby": "crw-title", hidden: "" },
      h("div", { class: "head" },
        h("div", { class: "grow" }, h("h2", { id: "crw-title" }, TITLE),
          h("p", {}, "Answers from our career guides, with sources")),
        close),
      log, form,
      h("p", { class: "foot" }, `${shortcut} opens · Esc closes · Answers quote the guides`));
    wrap.append(panel, launcher);
    root.append(wrap);
    document.body.append(host);

    if (ds.accent && window.CSS && window.CSS.supports("color", ds.accent)) {
      const light = isLight(ds.accent, launcher);
      host.style.setProperty("--crw-accent", ds.accent);
      host.style.setProperty("--crw-on-accent", light ? "#111827" : "#fff");
      // A light accent is unreadable as link text on white: darken it there.
      if (light) host.style.setProperty("--crw-link-l", `color-mix(in srgb,${ds.accent} 40%,#000)`);
    }

    const history = [];
    let busy = false;

    function open() {
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      input.focus();
    }
    function shut() {
      panel.hidden = true;
      launcher.setAttribute("aria-expanded", "false");
      launcher.focus();
    }

    launcher.addEventListener("click", () => (panel.hidden ? open() : shut()));
    close.addEventListener("click", shut);
    panel.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        shut();
      }
    });
    document.addEventListener("keydown", (e) => {
      if ((e.ctrlKey || e.metaKey) && !e.altKey && !e.shiftKey && (e.key === "k" || e.key === "K")) {
        e.preventDefault();
        open();
      } else if (e.key === "Escape" && !panel.hidden && e.composedPath().includes(host)) {
        shut();
      }
    });

    function reveal(node) {
      log.scrollTop += node.getBoundingClientRect().top - log.getBoundingClientRect().top - 12;
    }

    function answerText(target, text, results) {
      target.replaceChildren();
      String(text).split(/\[(\d{1,3})\]/).forEach((part, i) => {
        if (i % 2 === 0) {
          if (part) target.append(part);
          return;
        }
        const r = results[Number(part) - 1];
        const link = r && href(r.citation && r.citation.url);
        if (!link) return target.append(`[${part}]`);
        const sec = section(r.citation);
        target.append(h("a", { class: "cite", href: link, target: "_blank", rel: "noopener",
          "aria-label": `Source ${part}: ${r.citation.title}${sec ? ` › ${sec}` : ""}` }, `[${part}]`));
      });
    }

    function sourceList(results) {
      const list = h("ol", { class: "sources", "aria-label": "Sources" });
      results.forEach((r, i) => {
        const c = r.citation || {};
        const link = href(c.url);
        const title = String(c.title || "Guide");
        const sec = section(c);
        list.append(h("li", {}, h("span", { class: "num", "aria-hidden": "true" }, String(i + 1)),
          h("span", {}, link ? h("a", { href: link, target: "_blank", rel: "noopener" }, title) : title,
            sec ? h("span", { class: "sec" }, sec) : null)));
      });
      return [h("p", { class: "src-title", "aria-hidden": "true" }, "Sources"), list];
    }

    function feedback(queryId) {
      const thanks = h("span", { class: "thanks", role: "status" });
      const buttons = [["up", "Helpful"], ["down", "Not helpful"]].map(([rating, label]) => {
        const b = h("button", { type: "button", "aria-label": label, title: label, "aria-pressed": "false" }, icon(rating));
        b.addEventListener("click", async () => {
          buttons.forEach((x) => { x.disabled = true; });
          b.setAttribute("aria-pressed", "true");
          try {
            const res = await fetch(`${ROUTES}/feedback`, { method: "POST", mode: "cors",
              headers: { "Content-Type": "application/json" },
              body: JSON.stringify({ query_id: queryId, rating }) });
            thanks.textContent = res.ok ? "Thanks!" : "Feedback not sent.";
          } catch {
            thanks.textContent = "Feedback not sent.";
          }
        });
        return b;
      });
      return h("div", { class: "fb" }, h("span", {}, "Helpful?"), ...buttons, thanks);
    }

    async function ask(question) {
      busy = true;
      send.disabled = true;
      if (intro.isConnected) intro.remove();
      const q = h("p", { class: "q" }, h("span", { class: "sr" }, "You: "), question);
      log.append(q);
      const box = h("div", { class: "a", "aria-busy": "true" });
      const status = h("p", { class: "status" }, h("span", { class: "spin", "aria-hidden": "true" }), "Searching the guides…");
      const answer = h("p", { class: "answer" });
      box.append(status);
      log.append(box);
      reveal(q);
      let results = [];
      let text = "";
      let queryId = null;
      let finished = false;
      const messages = [...history, { role: "user", content: question }].slice(-10);
      const onSources = (d) => {
        results = Array.isArray(d.results) ? d.results : [];
        queryId = d.query_id || queryId;
        if (results.length) box.append(...sourceList(results));
      };
      const onDone = (d) => {
        finished = true;
        const final = typeof d.answer === "string" ? d.answer : text;
        queryId = d.query_id || queryId;
        status.remove();
        if (!results.length) {
          box.prepend(h("p", { class: "note" }, "I couldn't find anything about that in the guides. Try asking about a specific role."));
        } else if (!final.trim()) {
          answer.remove();
          box.prepend(h("p", { class: "note" }, "The guides don't answer that directly; these passages may help."));
        } else if (d.answered === false) {
          // The documents don't answer it: say so plainly; the sources are only the nearest.
          answer.remove();
          box.classList.add("uncovered");
          box.prepend(h("p", { class: "not-covered", role: "status" }, h("strong", {}, "Not covered. "), final),
            h("p", { class: "note" }, "The nearest passages are below; they may not answer your question."));
        } else {
          answerText(answer, final, results);
          if (!answer.isConnected) box.prepend(answer);
          if (d.note) answer.before(h("p", { class: "note" }, d.note));
        }
        if (queryId) box.append(feedback(queryId));
        history.push({ role: "user", content: question }, { role: "assistant", content: final });
      };
      try {
        const res = await fetch(`${ROUTES}/chat`, { method: "POST", mode: "cors",
          headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
          body: JSON.stringify({ messages, k: K, stream: true }) });
        if (!res.ok) throw new Error(await detail(res));
        if (!(res.headers.get("content-type") || "").includes("text/event-stream")) {
          const d = await res.json();
          onSources(d);
          onDone(d);
        } else {
          for await (const [name, d] of events(res.body)) {
            if (name === "sources") onSources(d);
            else if (name === "delta") {
              if (!text) {
                status.remove();
                box.prepend(answer);
              }
              text += String(d.text || "");
              answerText(answer, text, results);
            } else if (name === "done") onDone(d);
            else if (name === "error") throw new Error(String(d.detail || "the answer failed"));
          }
          if (!finished) throw new Error("the answer was cut off");
        }
      } catch (err) {
        status.remove();
        const msg = err instanceof TypeError
          ? "Sorry, the help service can't be reached from this page right now."
          : `Sorry, something went wrong: ${err.message}.`;
        box.append(h("p", { class: "error", role: "alert" }, msg));
      } finally {
        box.setAttribute("aria-busy", "false");
        busy = false;
        send.disabled = false;
      }
    }

    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const q = input.value.trim();
      if (!q || busy) return;
      input.value = "";
      ask(q);
    });
  }

  if (document.body) mount();
  else document.addEventListener("DOMContentLoaded", mount, { once: true });
})();
