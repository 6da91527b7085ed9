// Chat page: a multi-turn conversation over POST /chat, streamed as server-sent events.
// Served at the site's root for the default collection and at {root}c/{name}/ for each; when
// the visitor may use several collections (GET /collections), a picker switches between them.
// Every piece of server data reaches the DOM as text (textContent / text nodes), never as HTML.
"use strict";

(() => {
  const K = 5;
  const MAX_HISTORY = 12; // messages sent back as context; older turns are dropped
  const SVG_NS = "http://www.w3.org/2000/svg";
  const ICONS = {
    up: "M7 10v11M2 12v7a2 2 0 0 0 2 2h12.3a2 2 0 0 0 2-1.7l1.4-8A2 2 0 0 0 17.7 9H14V5a3 3 0 0 0-3-3z",
    down: "M17 14V3m5 9V5a2 2 0 0 0-2-2H7.7a2 2 0 0 0-2 1.7l-1.4 8A2 2 0 0 0 6.3 15H10v4a3 3 0 0 0 3 3z",
  };

  const $ = (sel) => document.querySelector(sel);
  const form = $("#composer");
  const input = $("#question");
  const sendButton = $("#send");
  const log = $("#conversation");
  const emptyState = $("#empty-state");
  const newChat = $("#new-chat");
  const announcer = $("#announcer");
  const picker = $("#collection-picker");
  const select = $("#collection");

  // This page is {root} or {root}c/{name}/; a name is in the alphabet the server allows.
  const inCollection = /^(.*\/)c\/([a-z0-9][a-z0-9_-]{0,62})\/$/.exec(window.location.pathname);
  const root = new URL(inCollection ? inCollection[1] : "./", window.location.href);
  // Where chat and feedback are posted: this page's own collection until the picker says.
  let apiBase = new URL("./", window.location.href);

  /** @type {{role: "user" | "assistant", content: string}[]} */
  let history = [];
  let busy = false;
  let controller = null;

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value);
    }
    for (const child of children) {
      if (child != null) node.append(child); // strings become text nodes
    }
    return node;
  }

  function icon(name) {
    const svg = document.createElementNS(SVG_NS, "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("fill", "none");
    svg.setAttribute("stroke", "currentColor");
    svg.setAttribute("stroke-width", "2");
    svg.setAttribute("stroke-linecap", "round");
    svg.setAttribute("stroke-linejoin", "round");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS(SVG_NS, "path");
    path.setAttribute("d", ICONS[name]);
    svg.append(path);
    return svg;
  }

  /** An http(s) URL for a citation link, or null for anything else. */
  function safeHref(url) {
    try {
      const u = new URL(String(url), document.baseURI);
      return u.protocol === "http:" || u.protocol === "https:" ? u.href : null;
    } catch {
      return null;
    }
  }

  function sectionLabel(citation) {
    const path = Array.isArray(citation.section_path) ? citation.section_path.slice() : [];
    if (path.length && path[0] === citation.title) path.shift();
    return path.join(" › ");
  }

  function describeSource(result) {
    const c = result.citation || {};
    const section = sectionLabel(c);
    return section ? `${c.title} › ${section}` : String(c.title || "Source");
  }

  /** Fill `target` with `text`, turning [n] markers that match a result into viewer links. */
  function renderAnswerText(target, text, results) {
    target.replaceChildren();
    const parts = String(text).split(/\[(\d{1,3})\]/);
    parts.forEach((part, i) => {
      if (i % 2 === 0) {
        if (part) target.append(document.createTextNode(part));
        return;
      }
      const result = results[Number(part) - 1];
      const href = result && safeHref(result.citation && result.citation.url);
      if (!href) {
        target.append(document.createTextNode(`[${part}]`));
        return;
      }
      target.append(
        el("a", {
          class: "cite",
          href,
          target: "_blank",
          rel: "noopener",
          "aria-label": `Source ${part}: ${describeSource(result)}`,
          text: `[${part}]`,
        }),
      );
    });
  }

  function renderSources(results) {
    const list = el("ol");
    results.forEach((result, i) => {
      const c = result.citation || {};
      const href = safeHref(c.url);
      const section = sectionLabel(c);
      const title = String(c.title || "Untitled guide");
      const link = href
        ? el("a", { class: "source-link", href, target: "_blank", rel: "noopener" }, title)
        : el("span", { class: "source-link" }, title);
      const snippet = String(result.text || "").replace(/\s+/g, " ").trim();
      list.append(
        el(
          "li",
          {},
          el("span", { class: "source-num", "aria-hidden": "true" }, String(i + 1)),
          el(
            "span",
            { class: "source-body" },
            el("span", { class: "source-name" }, link,
              section ? el("span", { class: "source-section" }, ` › ${section}`) : null),
            snippet ? el("span", { class: "source-snippet", title: snippet }, snippet) : null,
          ),
        ),
      );
    });
    const id = `sources-${Math.random().toString(36).slice(2, 9)}`;
    return el("section", { class: "sources", "aria-labelledby": id },
      el("h2", { id }, "Sources"), list);
  }

  function feedbackBar(queryId, base) {
    const status = el("span", { class: "feedback-status", role: "status" });
    const buttons = [];
    const send = async (rating, button) => {
      buttons.forEach((b) => { b.disabled = true; });
      button.setAttribute("aria-pressed", "true");
      try {
        const res = await fetch(new URL("feedback", base), {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ query_id: queryId, rating }),
        });
        status.textContent = res.ok ? "Thanks for the feedback." : "Could not send feedback.";
      } catch {
        status.textContent = "Could not send feedback.";
      }
    };
    for (const [rating, label] of [["up", "Helpful"], ["down", "Not helpful"]]) {
      const button = el("button", { type: "button", "aria-label": label, title: label,
        "aria-pressed": "false" }, icon(rating));
      button.addEventListener("click", () => send(rating, button));
      buttons.push(button);
    }
    return el("div", { class: "feedback" }, el("span", {}, "Was this helpful?"), ...buttons, status);
  }

  // ---------------------------------------------------------------- network

  async function errorDetail(res) {
    try {
      const body = await res.json();
      const detail = body && body.detail;
      if (typeof detail === "string") return detail;
      if (Array.isArray(detail) && detail.length) return String(detail[0].msg || "invalid request");
    } catch {
      /* not JSON */
    }
    return `the server answered ${res.status}`;
  }

  /** Server-sent events from a fetch body: yields {event, data} with data parsed as JSON. */
  async function* sseEvents(body) {
    const reader = body.getReader();
    const decoder = new TextDecoder();
    let pending = "";
    let buffer = "";
    for (;;) {
      const { value, done } = await reader.read();
      pending += done ? decoder.decode() : decoder.decode(value, { stream: true });
      // A CR at the very end may be the first half of CRLF: keep it for the next read.
      const cut = !done && pending.endsWith("\r") ? pending.length - 1 : pending.length;
      buffer += pending.slice(0, cut).replace(/\r\n?/g, "\n");
      pending = pending.slice(cut);
      let idx;
      while ((idx = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, idx);
        buffer = buffer.slice(idx + 2);
        const parsed = parseBlock(block);
        if (parsed) yield parsed;
      }
      if (done) break;
    }
    const last = parseBlock(buffer);
    if (last) yield last;
  }

  function parseBlock(block) {
    let event = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (!line || line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (!data.length) return null;
    const raw = data.join("\n");
    try {
      return { event, data: JSON.parse(raw) };
    } catch {
      return { event, data: { text: raw } };
    }
  }

  /** POST {base}chat and report `sources`, `delta` and `done` through the handlers. */
  async function streamChat(base, messages, handlers, signal) {
    const res = await fetch(new URL("chat", base), {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ messages, k: K, stream: true }),
      signal,
    });
    if (!res.ok) throw new Error(await errorDetail(res));
    const type = res.headers.get("content-type") || "";
    if (!type.includes("text/event-stream")) {
      const body = await res.json(); // a server that does not stream answers in one piece
      handlers.sources(body);
      handlers.done(body);
      return;
    }
    let finished = false;
    for await (const { event, data } of sseEvents(res.body)) {
      if (event === "sources") handlers.sources(data);
      else if (event === "delta") handlers.delta(String(data.text || ""));
      else if (event === "done") { finished = true; handlers.done(data); }
      else if (event === "error") throw new Error(String(data.detail || "the answer failed"));
    }
    if (!finished) throw new Error("the answer was cut off");
  }

  // ---------------------------------------------------------------- conversation

  function scrollToBottom(force = false) {
    const nearBottom = window.innerHeight + window.scrollY >= document.body.scrollHeight - 160;
    if (force || nearBottom) window.scrollTo({ top: document.body.scrollHeight });
  }

  function setBusy(value) {
    busy = value;
    sendButton.disabled = value;
    log.setAttribute("aria-busy", String(value));
  }

  function ask(question) {
    question = question.trim();
    if (!question || busy) return;
    emptyState.hidden = true;
    newChat.hidden = false;
    log.append(el("div", { class: "msg msg-user" },
      el("p", { class: "visually-hidden" }, "You asked:"),
      el("div", { class: "bubble" }, question)));
    runTurn(question);
  }

  function runTurn(question) {
    const card = el("div", { class: "card" });
    const article = el("article", { class: "msg msg-assistant", "aria-label": "Answer" }, card);
    log.append(article);
    const status = el("p", { class: "status" }, el("span", { class: "spinner" }),
      "Searching the guides…");
    card.append(el("p", { class: "msg-label", "aria-hidden": "true" }, "Answer"), status);
    scrollToBottom(true);
    announcer.textContent = "Searching the guides…";

    const messages = [...history, { role: "user", content: question }].slice(-MAX_HISTORY);
    const answerEl = el("p", { class: "answer" });
    let results = [];
    let text = "";
    let queryId = null;

    setBusy(true);
    controller = new AbortController();
    const mine = controller;
    // The collection asked, kept for this turn's feedback even if the picker changes.
    const base = apiBase;

    collectionsLoaded.then(() => streamChat(base, messages, {
      sources(data) {
        results = Array.isArray(data.results) ? data.results : [];
        queryId = data.query_id || null;
        if (!results.length) return;
        status.replaceChildren(el("span", { class: "spinner" }), "Writing the answer…");
        card.append(renderSources(results));
        scrollToBottom();
      },
      delta(chunk) {
        if (!text) {
          status.remove();
          answerEl.classList.add("streaming");
          card.insertBefore(answerEl, card.querySelector(".sources"));
        }
        text += chunk;
        renderAnswerText(answerEl, text, results);
        scrollToBottom();
      },
      done(data) {
        const final = typeof data.answer === "string" ? data.answer : text;
        queryId = data.query_id || queryId;
        status.remove();
        answerEl.classList.remove("streaming");
        if (!results.length) {
          answerEl.remove();
          card.append(el("p", { class: "notice" },
            "I couldn't find anything about that in the guides. Try rephrasing, or ask about a specific role."));
        } else if (!final.trim()) {
          answerEl.remove();
          card.insertBefore(el("p", { class: "notice" },
            "The guides don't answer that directly, but these passages may help."),
          card.querySelector(".sources"));
        } else if (data.answered === false) {
          // The documents don't answer it: say so plainly, and that the sources are only near.
          answerEl.remove();
          card.classList.add("not-covered");
          card.insertBefore(el("p", { class: "notice not-covered-answer", role: "status" },
            el("strong", {}, "Not covered. "), final), card.querySelector(".sources"));
          card.insertBefore(el("p", { class: "sources-note" },
            "The nearest passages are below; they may not answer your question."),
          card.querySelector(".sources"));
        } else {
          renderAnswerText(answerEl, final, results);
          if (!answerEl.isConnected) card.insertBefore(answerEl, card.querySelector(".sources"));
          if (data.note) {
            card.insertBefore(el("p", { class: "answer-note" }, data.note), answerEl);
          }
        }
        if (queryId) card.append(feedbackBar(queryId, base));
        history.push({ role: "user", content: question },
          { role: "assistant", content: final });
        announcer.textContent = "";
      },
    }, mine.signal)).catch((err) => {
      if (mine.signal.aborted) return;
      status.remove();
      answerEl.classList.remove("streaming");
      const message = err instanceof TypeError
        ? "Could not reach the server. Check your connection and try again."
        : `Something went wrong: ${err.message}.`;
      const retry = el("button", { type: "button", class: "retry-button" }, "Try again");
      retry.addEventListener("click", () => {
        article.remove();
        runTurn(question);
      });
      card.append(el("p", { class: "error", role: "alert" }, el("span", {}, message), retry));
    }).finally(() => {
      if (controller === mine) {
        controller = null;
        setBusy(false);
      }
      scrollToBottom();
    });
  }

  /** Start over; `focus` false leaves the focus where it is (on the picker, say). */
  function resetConversation(focus = true) {
    if (controller) controller.abort();
    controller = null;
    setBusy(false);
    history = [];
    log.replaceChildren();
    emptyState.hidden = false;
    newChat.hidden = true;
    input.value = "";
    autoGrow();
    if (focus) input.focus();
  }

  function autoGrow() {
    input.style.height = "auto";
    input.style.height = `${Math.min(input.scrollHeight, 192)}px`;
  }

  // ---------------------------------------------------------------- collections

  /** The collections this visitor may use; with more than one, fill and show the picker. */
  async function loadCollections() {
    let listed = [];
    try {
      const res = await fetch(new URL("collections", root), { headers: { Accept: "application/json" } });
      const body = res.ok ? await res.json() : null;
      listed = body && Array.isArray(body.collections) ? body.collections : [];
    } catch {
      return; // an older server, or none: the page's own collection, as before
    }
    const names = listed.map((c) => String(c.name));
    let current = inCollection ? inCollection[2] : null;
    if (!current || !names.includes(current)) {
      const chosen = listed.find((c) => c.default) || listed[0];
      current = chosen ? String(chosen.name) : null;
      // No default collection behind the unprefixed routes: ask the first one by name.
      if (chosen && !chosen.default && !inCollection) apiBase = new URL(`c/${current}/`, root);
    }
    if (names.length < 2) return;
    select.replaceChildren(...listed.map((c) => el("option", { value: String(c.name) },
      c.ready === false ? `${c.name} (loading)` : String(c.name))));
    select.value = current;
    picker.hidden = false;
  }

  function switchCollection(name) {
    // Arrow keys on a closed select change it at each press: keep the focus there.
    resetConversation(false);
    apiBase = new URL(`c/${encodeURIComponent(name)}/`, root);
    // The address names the collection, so a reload or a shared link opens the same one.
    window.history.replaceState(null, "", apiBase.href);
    announcer.textContent = `Now asking the ${name} collection.`;
  }

  const collectionsLoaded = loadCollections();

  // ---------------------------------------------------------------- wiring

  select.addEventListener("change", () => switchCollection(select.value));

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    if (busy || !input.value.trim()) return;
    const question = input.value;
    input.value = "";
    autoGrow();
    ask(question);
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      form.requestSubmit();
    }
  });
  input.addEventListener("input", autoGrow);

  for (const button of document.querySelectorAll(".suggestion")) {
    button.addEventListener("click", () => {
      ask(button.textContent);
      input.focus();
    });
  }
  newChat.addEventListener("click", () => resetConversation());

  input.focus();
})();
