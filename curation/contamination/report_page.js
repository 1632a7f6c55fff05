// The contamination report's flagged pairs: filters, sorting, paging, the whole conversation of each pair,
// and the reviewer's keep/remove choices exported as a decisions CSV. Everything from the data becomes text
// nodes (textContent), never markup. No network: the data is the JSON block beside this script.
"use strict";
(function () {
  const block = document.getElementById("pairs-data");
  const data = JSON.parse(block.textContent);
  block.remove(); // the parsed data is all the page needs: no second copy of every text in the DOM
  const pairs = data.pairs;
  const PAGE = data.page_size;
  const $ = (id) => document.getElementById(id);
  const keyOf = (p) => [p.conversation_id, p.benchmark, p.item_id].join("\u0000");
  // The reviewer's choices, keyed by (conversation, benchmark, item); seeded with this run's decisions.
  const choices = new Map();
  for (const p of pairs) if (p.decision) choices.set(keyOf(p), { decision: p.decision, note: "" });
  const state = { benchmark: "", category: "", source: "", min: 0, sort: "desc", page: 0 };

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (name === "text") node.textContent = value;
      else if (name === "class") node.className = value;
      else node.setAttribute(name, value);
    }
    for (const child of children) if (child !== null) node.append(child);
    return node;
  }

  // The text with its [start, end) spans (merged, in order) wrapped in <mark>.
  function marked(text, spans) {
    const out = el("pre", { class: "text" });
    let at = 0;
    for (const [start, end] of spans) {
      out.append(text.slice(at, start), el("mark", { text: text.slice(start, end) }));
      at = end;
    }
    out.append(text.slice(at));
    return out;
  }

  function options(select, values) {
    for (const value of values) select.append(el("option", { value: value, text: value }));
  }
  const distinct = (field) => [...new Set(pairs.map((p) => p[field]))].sort();
  options($("f-benchmark"), distinct("benchmark"));
  options($("f-category"), data.categories.filter((c) => pairs.some((p) => p.category === c)));
  options($("f-source"), distinct("source"));

  function shown() {
    const kept = pairs.filter(
      (p) =>
        (!state.benchmark || p.benchmark === state.benchmark) &&
        (!state.category || p.category === state.category) &&
        (!state.source || p.source === state.source) &&
        p.score >= state.min
    );
    const sign = state.sort === "desc" ? -1 : 1;
    return kept.sort((a, b) => sign * (a.score - b.score) || a.order - b.order);
  }

  function evidence(p) {
    const parts = [
      ["score", p.score.toFixed(3)],
      ["embedding", p.embedding_score ? p.embedding_score.toFixed(3) + " (" + p.embedding_unit + ")" : "-"],
      ["n-gram coverage", p.ngram_coverage.toFixed(2)],
      ["fuzzy containment", p.fuzzy_containment.toFixed(2)],
    ];
    if (p.rephrase_view)
      parts.push(["rephrase tier", "the item's " + p.rephrase_view + ", " + Math.round(p.rephrase_anchor_share * 100) + "% of its anchor terms"]);
    parts.push(["action", p.action]);
    const list = el("dl", { class: "evidence" });
    for (const [name, value] of parts) list.append(el("dt", { text: name }), el("dd", { text: value }));
    return list;
  }

  function conversation(p) {
    const box = el("details", { class: "conversation" });
    const turns = p.conversation;
    box.append(el("summary", { text: "Whole conversation (" + turns.length + " turns" + (p.cut_at === null ? "" : ", cut at turn " + p.cut_at) + ")" }));
    if (p.conversation_title) box.append(el("p", { class: "title", text: "Title: " + p.conversation_title }));
    if (!turns.length) box.append(el("p", { class: "muted", text: "Not in this report." }));
    turns.forEach(([role, text], k) => {
      if (k === p.cut_at) box.append(el("div", { class: "cut", text: "cut here: turns " + k + " to " + (turns.length - 1) + " are removed, the turns above stay" }));
      const classes = "turn" + (k === p.turn_index ? " flagged" : "") + (p.cut_at !== null && k >= p.cut_at ? " removed" : "");
      const label = "turn " + k + " · " + role + (k === p.turn_index ? " · flagged" : "");
      box.append(el("div", { class: classes }, el("div", { class: "who", text: label }), el("pre", { class: "text", text: text })));
    });
    return box;
  }

  function controls(p) {
    const key = keyOf(p);
    const box = el("div", { class: "decide" });
    const status = el("span", { class: "status" });
    const note = el("input", { type: "text", placeholder: "note (optional)", class: "note" });
    const update = () => {
      const choice = choices.get(key);
      status.textContent = choice ? "your decision: " + choice.decision : "no decision";
      for (const b of box.querySelectorAll("button")) b.setAttribute("aria-pressed", String(!!choice && b.dataset.decision === choice.decision));
      $("decided").textContent = String(choices.size);
    };
    note.value = choices.has(key) ? choices.get(key).note : "";
    note.addEventListener("input", () => choices.has(key) && (choices.get(key).note = note.value));
    for (const [decision, label] of [["keep", "Keep (not contamination)"], ["remove", "Remove"]]) {
      const button = el("button", { type: "button", class: "decision " + decision, text: label });
      button.dataset.decision = decision;
      button.addEventListener("click", () => {
        choices.set(key, { decision: decision, note: note.value });
        update();
      });
      box.append(button);
    }
    const clear = el("button", { type: "button", class: "decision clear", text: "Clear" });
    clear.addEventListener("click", () => {
      choices.delete(key);
      update();
    });
    box.append(clear, note, status);
    update();
    return box;
  }

  function card(p) {
    const head = el(
      "div",
      { class: "head" },
      el("span", { class: "badge " + p.category, text: p.category }),
      el("b", { text: p.benchmark + " / " + p.item_id }),
      " · conversation ",
      el("code", { text: p.conversation_id }),
      " · source " + p.source + " · turn " + p.turn_index
    );
    const turnSide = el("div", { class: "side" }, el("h4", { text: "Training turn (" + p.role + ")" }), marked(p.turn_text, p.turn_spans));
    const itemSide = el("div", { class: "side" }, el("h4", { text: "Benchmark item" }), marked(p.item_text, p.item_spans));
    if (p.item_answer) itemSide.append(el("h4", { text: "Reference answer" }), el("pre", { class: "text answer", text: p.item_answer }));
    return el("div", { class: "pair " + p.category }, head, evidence(p), el("div", { class: "sides" }, turnSide, itemSide), conversation(p), controls(p));
  }

  function render() {
    const all = shown();
    const pages = Math.max(1, Math.ceil(all.length / PAGE));
    state.page = Math.min(state.page, pages - 1);
    const slice = all.slice(state.page * PAGE, (state.page + 1) * PAGE);
    $("pair-list").replaceChildren(...slice.map(card));
    if (!all.length) $("pair-list").append(el("p", { class: "muted", text: pairs.length ? "No pair matches these filters." : "No flagged pairs: nothing matched a benchmark item." }));
    $("showing").textContent = all.length
      ? "Showing " + (state.page * PAGE + 1) + "-" + (state.page * PAGE + slice.length) + " of " + all.length + " pairs (" + pairs.length + " flagged)"
      : "Showing 0 of " + pairs.length + " pairs";
    $("page-of").textContent = "page " + (state.page + 1) + " of " + pages;
    $("prev").disabled = state.page === 0;
    $("next").disabled = state.page >= pages - 1;
  }

  const csvCell = (value) => (/[",\n\r]/.test(value) ? '"' + value.replace(/"/g, '""') + '"' : value);
  function decisionsCsv() {
    const reviewer = $("reviewer").value.trim();
    const lines = [data.decision_columns.join(",")];
    const written = new Set();
    for (const p of pairs) {
      const key = keyOf(p);
      const choice = choices.get(key);
      if (!choice || written.has(key)) continue;
      written.add(key);
      lines.push([p.conversation_id, p.benchmark, p.item_id, choice.decision, reviewer, choice.note].map(csvCell).join(","));
    }
    return lines.join("\n") + "\n";
  }

  const watch = (id, field, read) =>
    $(id).addEventListener("input", () => {
      state[field] = read($(id).value);
      state.page = 0;
      render();
    });
  watch("f-benchmark", "benchmark", (v) => v);
  watch("f-category", "category", (v) => v);
  watch("f-source", "source", (v) => v);
  watch("f-min", "min", (v) => Number(v) || 0);
  watch("f-sort", "sort", (v) => v);
  $("prev").addEventListener("click", () => {
    state.page -= 1;
    render();
  });
  $("next").addEventListener("click", () => {
    state.page += 1;
    render();
  });
  $("export").addEventListener("click", () => {
    const link = el("a", { download: data.decisions_file_name, href: URL.createObjectURL(new Blob([decisionsCsv()], { type: "text/csv" })) });
    document.body.append(link);
    link.click();
    link.remove();
    $("exported").textContent = "Exported " + choices.size + " decisions as " + data.decisions_file_name + ".";
  });
  render();
})();
