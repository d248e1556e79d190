// Keyboard-first annotation. The page works without this file (plain form posts); with it:
//  - keys choose, submit, skip, undo and show help, and never fire while typing in a text field;
//  - on submit the item rendered ahead is shown at once, the label is posted in the background, and the
//    server's answer is the next item to render ahead.
(function () {
  "use strict";
  const $ = (sel, root) => (root || document).querySelector(sel);
  let shownAt = performance.now();
  let rankCounter = 0;

  function current() { return $("#current .item"); }

  function typing(target) {
    return target.closest && target.closest("textarea, select, input[type=text], input[type=search], input:not([type]), [contenteditable]");
  }

  function check(item, selector) {
    const input = item && $(selector, item);
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
  }

  function resetRanks(item) {
    rankCounter = 0;
    item.querySelectorAll(".ranking select").forEach((s) => { s.value = ""; });
  }

  function rank(item, key, tie) {
    const select = $(`.ranking .response[data-key="${key}"] select`, item);
    if (!select) return;
    if (!tie || rankCounter === 0) rankCounter += 1;
    select.value = String(Math.min(rankCounter, select.options.length - 1));
  }

  function promoteAhead() {
    const ahead = $("#ahead"), cur = $("#current");
    const next = ahead.firstElementChild;
    cur.replaceChildren(...(next ? [next] : []));
    ahead.replaceChildren();
    shownAt = performance.now();
    rankCounter = 0;
    if (window.htmx) window.htmx.process(cur);
    return next;
  }

  function showError(text) {
    const list = document.createElement("ul");
    list.className = "messages";
    list.innerHTML = '<li class="error"></li>';
    list.firstChild.textContent = text;
    $("#progress").after(list);
  }

  // Posts run one after another: a label submitted while the previous post is still in flight waits for it
  // (which is what refills the item rendered ahead), so items are never shown twice or out of order.
  let inflight = Promise.resolve();

  function submitLabel(form) {
    const data = new FormData(form);
    data.set("time_spent_ms", String(Math.round(performance.now() - shownAt)));
    form.closest(".item").classList.add("sent");
    inflight = inflight.then(() => send(form.action, data));
  }

  async function send(action, data) {
    const next = promoteAhead();
    if (next) data.set("showing", next.dataset.assignment);
    const done = document.getElementById("progress");
    if (done) { const n = done.querySelector("strong"); if (n) n.textContent = String(Number(n.textContent) + 1); }
    let response;
    try {
      response = await fetch(action, { method: "POST", body: data, headers: { "X-Juror-Ahead": "1" }, credentials: "same-origin" });
    } catch (e) {
      showError("Network problem: your last label may not be saved. Reloading…");
      setTimeout(() => location.reload(), 1500);
      return;
    }
    if (!response.ok) {
      let detail = "Your last label was not saved.";
      try { detail = (await response.json()).detail || detail; } catch (e) { /* not JSON */ }
      showError(detail + " Reloading…");
      setTimeout(() => location.reload(), 1500);
      return;
    }
    const html = await response.text();
    const target = next ? $("#ahead") : $("#current");
    target.innerHTML = html;
    if (!next) { shownAt = performance.now(); if (window.htmx) window.htmx.process(target); }
  }

  document.addEventListener("submit", (event) => {
    const form = event.target;
    if (!form.classList.contains("label-form") || !form.closest("#current")) return;
    event.preventDefault();
    if (form.closest(".item").classList.contains("sent")) return;  // already on its way
    if (!form.reportValidity()) return;
    submitLabel(form);
  });

  // htmx swaps (skip, undo, flag) bring a new current item: its clock starts now.
  document.addEventListener("htmx:afterSwap", (event) => {
    if (event.target.id === "workspace" || event.detail.target.id === "workspace") { shownAt = performance.now(); rankCounter = 0; }
  });

  // "Start from answer A" fills the demonstration box with that answer to edit.
  document.addEventListener("change", (event) => {
    const select = event.target;
    if (!select.classList || !select.classList.contains("based-on")) return;
    const form = select.closest("form");
    const source = form.querySelector(`template.source[data-id="${select.value}"]`);
    const box = form.querySelector("textarea[name=text]");
    if (source && box && !box.value.trim()) box.value = source.content.textContent;
  });

  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || typing(event.target)) return;
    const item = current();
    const key = event.key;
    const lower = key.length === 1 ? key.toLowerCase() : key;
    const dialog = document.getElementById("keymap");
    if (key === "?") { dialog.open ? dialog.close() : dialog.showModal(); event.preventDefault(); return; }
    if (lower === "u") { $("#undo-form").requestSubmit(); event.preventDefault(); return; }
    if (!item) return;
    const ranking = item.dataset.kind === "ranking";
    if (key === "Enter") {
      if (event.target.closest && event.target.closest("button, summary, a")) return;  // let them act
      $(".label-form", item).requestSubmit();
      event.preventDefault();
      return;
    }
    if (lower === "s") {
      const skip = $("details.skip", item);
      skip.open = true;
      $("input[name=reason]", skip).focus();
      event.preventDefault();
      return;
    }
    if (ranking) {
      if (key === "0") { resetRanks(item); return; }
      if (/^[a-f]$/.test(lower)) { rank(item, lower, event.shiftKey); event.preventDefault(); }
      return;
    }
    if (/^[1-4]$/.test(key)) { check(item, `input[name=choice][data-key="${key}"]`); event.preventDefault(); return; }
    if (/^[qwe]$/.test(lower)) { check(item, `input[name=strength][data-key="${lower}"]`); event.preventDefault(); }
  });

  document.addEventListener("DOMContentLoaded", () => {
    const button = document.getElementById("keys-button");
    if (button) button.addEventListener("click", () => document.getElementById("keymap").showModal());
  });
})();
