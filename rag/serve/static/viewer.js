// Source viewer: shows one guide with its section outline and marks the cited span.
// The document is built from text nodes only; nothing from the server is parsed as HTML.
"use strict";

(() => {
  const main = document.getElementById("viewer");
  const top = document.getElementById("viewer-top");
  const base = new URL("../", window.location.href); // this page lives at {base}view/{doc_id}

  function el(tag, props = {}, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props)) {
      if (value == null) continue;
      if (key === "class") node.className = value;
      else if (key === "text") node.textContent = value;
      else node.setAttribute(key, value);
    }
    for (const child of children) if (child != null) node.append(child);
    return node;
  }

  function docIdFromPath() {
    const last = window.location.pathname.split("/").pop() || "";
    try {
      return decodeURIComponent(last);
    } catch {
      return last;
    }
  }

  function intParam(params, name) {
    const raw = params.get(name);
    return raw !== null && /^\d+$/.test(raw) ? Number(raw) : null;
  }

  function showMessage(title, text, extra, alert = false) {
    const className = "not-found";
    main.setAttribute("aria-busy", "false");
    const back = el("a", { class: "ghost-button", href: base.href }, "Back to the chat");
    main.replaceChildren(
      el("section", { class: className, role: alert ? "alert" : null },
        el("h1", {}, title), el("p", {}, text), el("p", {}, back, extra || null)),
    );
  }

  /** Where each section's heading sits in the text (or just an anchor at its start), and
   * which runs of text are hidden: the title lines the page header already shows, and the
   * spaces around headings that were flattened into a paragraph. */
  function locateHeadings(text, sections, title) {
    const heads = [];
    const anchors = new Map();
    const hidden = [];
    const clamp = (n) => Math.min(Math.max(n, 0), text.length);
    let prevEnd = 0;
    if (sections.length) {
      const first = clamp(sections[0].start);
      const lines = text.slice(0, first).split("\n").map((l) => l.replace(/^#+\s*/, "").trim());
      if (lines.some(Boolean) && lines.every((l) => !l || l === title)) {
        hidden.push([0, first]);
        prevEnd = first;
      }
    }
    sections.forEach((s, i) => {
      const id = `sec-${i + 1}`;
      const name = s.path.length ? String(s.path[s.path.length - 1]) : "";
      const start = clamp(s.start);
      const lo = Math.min(prevEnd, start);
      const at = name && start - name.length >= lo ? text.lastIndexOf(name, start - name.length) : -1;
      if (at >= lo) {
        const marker = /#{1,6}[ \t]+$/.exec(text.slice(lo, at));
        const from = marker ? lo + marker.index : at;
        const to = at + name.length;
        const inline = from > 0 && text[from - 1] !== "\n";
        heads.push({ id, from, nameAt: at, to, depth: Math.max(1, s.path.length - 1), inline });
        if (inline) {
          let a = from;
          while (a > lo && (text[a - 1] === " " || text[a - 1] === "\t")) a--;
          let b = to;
          while (b < start && (text[b] === " " || text[b] === "\t")) b++;
          if (a < from) hidden.push([a, from]);
          if (to < b) hidden.push([to, b]);
        }
      } else {
        anchors.set(start, [...(anchors.get(start) || []), id]);
      }
      prevEnd = Math.max(prevEnd, clamp(s.end));
    });
    return { heads, anchors, hidden };
  }

  /** Append `text` to `article` as text nodes, with heading spans and one <mark> for the span. */
  function buildText(article, text, sections, title, markFrom, markTo) {
    const hasMark = markFrom !== null;
    const { heads, anchors, hidden } = locateHeadings(text, sections, title);
    const cuts = new Set([0, text.length, ...anchors.keys(), ...hidden.flat()]);
    if (hasMark) { cuts.add(markFrom); cuts.add(markTo); }
    for (const h of heads) { cuts.add(h.from); cuts.add(h.nameAt); cuts.add(h.to); }
    const points = [...cuts].filter((p) => p >= 0 && p <= text.length).sort((a, b) => a - b);

    let mark = null;
    let hi = 0;
    for (let i = 0; i < points.length - 1; i++) {
      const a = points[i];
      const b = points[i + 1];
      let parent = article;
      if (hasMark && a >= markFrom && b <= markTo) {
        if (!mark) {
          mark = el("mark", { id: "passage", tabindex: "-1" });
          article.append(mark);
        }
        parent = mark;
      }
      for (const id of anchors.get(a) || []) parent.append(el("span", { class: "anchor", id }));
      const piece = text.slice(a, b);
      if (hidden.some(([x, y]) => x <= a && b <= y)) {
        parent.append(el("span", { class: "ws" }, piece));
        continue;
      }
      while (hi < heads.length && heads[hi].to <= a) hi++;
      const head = hi < heads.length && heads[hi].from <= a && b <= heads[hi].to ? heads[hi] : null;
      if (!head) {
        parent.append(document.createTextNode(piece));
        continue;
      }
      if (!head.el || head.el.parentNode !== parent) {
        const span = el("span", {
          class: head.inline ? "doc-heading inline" : "doc-heading",
          role: "heading",
          "aria-level": String(Math.min(6, head.depth + 1)),
        });
        if (!head.el) span.id = head.id; // a heading split by the mark keeps one id
        head.el = span;
        parent.append(span);
      }
      head.el.append(a < head.nameAt ? el("span", { class: "md-marker" }, piece) : piece);
    }
    return mark;
  }

  function sectionLabel(path, title) {
    const rest = path[0] === title ? path.slice(1) : path.slice();
    return rest.length ? rest[rest.length - 1] : "Introduction";
  }

  function render(doc, params) {
    const text = String(doc.text || "");
    const offset = Number(doc.offset) || 0;
    const sections = (Array.isArray(doc.sections) ? doc.sections : []).map((s) => ({
      path: Array.isArray(s.path) ? s.path.map(String) : [],
      start: Number(s.start) - offset,
      end: Number(s.end) - offset,
    }));
    const start = intParam(params, "start");
    const end = intParam(params, "end");
    const asked = start !== null && end !== null;
    const valid = asked && start - offset >= 0 && end - offset <= text.length && start < end;
    const markFrom = valid ? start - offset : null;
    const markTo = valid ? end - offset : null;
    const page = intParam(params, "page");
    const title = String(doc.title || "Untitled guide");
    document.title = `${title} · Source · Career guides`;

    const jump = el("button", { type: "button", class: "ghost-button" }, "Jump to the passage");
    top.replaceChildren(
      el("h1", {}, title),
      el("p", { class: "viewer-meta" }, "From ", el("code", {}, String(doc.source || "")),
        ` · ${sections.length} section${sections.length === 1 ? "" : "s"}`),
    );
    if (valid) {
      top.append(el("p", { class: "passage-bar" }, el("span", { class: "swatch" }),
        el("span", {}, "The highlighted passage is the one cited in the answer"
          + (page !== null && page > 0 ? `, from page ${page} of ${String(doc.source || "the file")}.` : ".")),
        jump));
    } else if (asked) {
      top.append(el("p", { class: "passage-bar", role: "status" },
        "The cited passage is not in the current version of this guide."));
    }

    const article = el("article", { class: "doc", id: "doc", tabindex: "-1", "aria-label": title });
    const mark = buildText(article, text, sections, title, markFrom, markTo);

    let current = -1;
    if (valid) {
      sections.forEach((s, i) => { if (s.start <= markFrom) current = i; });
    }
    const list = el("ol");
    sections.forEach((s, i) => {
      const link = el("a", { href: `#sec-${i + 1}` }, sectionLabel(s.path, title));
      if (i === current) link.setAttribute("aria-current", "location");
      const depth = Math.min(4, Math.max(1, s.path.length - 1));
      list.append(el("li", { class: `depth-${depth}` }, link));
    });
    const outline = el("nav", { class: "outline", "aria-labelledby": "outline-title" },
      el("h2", { id: "outline-title" }, "Sections"), list);

    main.replaceChildren(top, outline, article);
    main.setAttribute("aria-busy", "false");

    if (mark) {
      const reveal = (smooth) => {
        mark.scrollIntoView({ block: "center", behavior: smooth ? "smooth" : "auto" });
        mark.focus({ preventScroll: true });
      };
      jump.addEventListener("click", () => reveal(true));
      reveal(false);
    } else if (/^#sec-\d+$/.test(window.location.hash)) {
      // The text arrived after the browser looked for the fragment: go to the section now.
      const target = document.getElementById(window.location.hash.slice(1));
      if (target) target.scrollIntoView();
    }
  }

  async function load() {
    const docId = docIdFromPath();
    const params = new URLSearchParams(window.location.search);
    let res;
    try {
      res = await fetch(new URL(`documents/${encodeURIComponent(docId)}`, base), {
        headers: { Accept: "application/json" },
      });
    } catch {
      const retry = el("button", { type: "button", class: "ghost-button" }, "Try again");
      retry.addEventListener("click", () => window.location.reload());
      showMessage("Could not load this guide",
        "The server could not be reached. Check your connection and try again.", retry, true);
      return;
    }
    if (res.status === 404) {
      document.title = "Guide not found · Career guides";
      showMessage("Guide not found",
        `There is no guide called “${docId}”. It may have been renamed or removed when the guides were last updated.`);
      return;
    }
    if (!res.ok) {
      const retry = el("button", { type: "button", class: "ghost-button" }, "Try again");
      retry.addEventListener("click", () => window.location.reload());
      const why = res.status === 503
        ? "The guides are still loading. Try again in a moment."
        : `The server answered ${res.status}.`;
      showMessage("Could not load this guide", why, retry, true);
      return;
    }
    render(await res.json(), params);
  }

  load();
})();
